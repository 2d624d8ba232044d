from django.contrib import admin

from analytics.models import DailyActiveUsers, DailyEventRollup, DailyMetricRollup, EventDefinition
from analytics.services import forget_event_registry


@admin.register(EventDefinition)
class EventDefinitionAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "active", "description"]
    list_filter = ["kind", "active"]
    search_fields = ["name", "description"]
    actions = ["activate", "deactivate"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        forget_event_registry()

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        forget_event_registry()

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        forget_event_registry()

    @admin.action(description="Accept the selected names")
    def activate(self, request, queryset):
        queryset.update(active=True)
        forget_event_registry()

    @admin.action(description="Reject the selected names as unknown")
    def deactivate(self, request, queryset):
        queryset.update(active=False)
        forget_event_registry()


class ReadOnlyRollupAdmin(admin.ModelAdmin):
    """Rollups are computed by `analytics_rollup`; staff read them, never edit them."""

    date_hierarchy = "day"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(DailyEventRollup)
class DailyEventRollupAdmin(ReadOnlyRollupAdmin):
    list_display = ["day", "name", "tier", "client_version", "count", "unique_users"]
    list_filter = ["tier", "name"]
    search_fields = ["name", "client_version"]


@admin.register(DailyActiveUsers)
class DailyActiveUsersAdmin(ReadOnlyRollupAdmin):
    list_display = ["day", "dau", "wau", "mau"]


@admin.register(DailyMetricRollup)
class DailyMetricRollupAdmin(ReadOnlyRollupAdmin):
    list_display = ["day", "name", "count", "p50", "p95", "p99"]
    list_filter = ["name"]
