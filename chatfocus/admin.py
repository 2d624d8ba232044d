"""Admin pieces shared by the apps."""


class ReadOnlyAdminMixin:
    """Staff read these rows; what writes them is a service, a webhook or a scheduled job, never the admin."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
