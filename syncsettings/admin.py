"""Staff view of sync: usage against quota per user, devices, snapshots, and the read-only change log.

Sync data is written only through the protocol (versions, HLCs, counters must stay consistent), so
everything here is read-only except deleting devices.
"""

from django.contrib import admin
from django.template.defaultfilters import filesizeformat

from chatfocus.admin import ReadOnlyAdminMixin
from syncsettings.models import Change, Device, Entry, Snapshot, SyncState
from syncsettings.services import UserRef, delete_device, get_limits


@admin.register(SyncState)
class SyncStateAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["user", "version", "storage", "keys", "pruned_version", "last_synced_at"]
    list_select_related = ["user"]
    search_fields = ["user__email"]
    ordering = ["-last_synced_at"]
    readonly_fields = ["user", "version", "bytes_used", "key_count", "pruned_version", "last_synced_at", "quota"]

    @admin.display(description="storage used / limit")
    def storage(self, state):
        limits = get_limits(user=UserRef(state.user_id))
        return f"{filesizeformat(state.bytes_used)} / {filesizeformat(limits.sync_bytes)}"

    @admin.display(description="keys used / limit")
    def keys(self, state):
        return f"{state.key_count} / {get_limits(user=UserRef(state.user_id)).keys}"

    @admin.display(description="quota")
    def quota(self, state):
        limits = get_limits(user=UserRef(state.user_id))
        over = state.bytes_used > limits.sync_bytes or state.key_count > limits.keys
        return "over quota: sets refused, deletes allowed" if over else "within quota"


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["user", "key", "deleted", "size", "version", "device_id", "updated_at"]
    list_filter = ["deleted"]
    search_fields = ["user__email", "key"]
    list_select_related = ["user"]
    ordering = ["-updated_at"]


@admin.register(Change)
class ChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "user", "key", "op", "status", "version", "device_id", "op_id"]
    list_filter = ["status", "op"]
    search_fields = ["user__email", "key", "op_id"]
    list_select_related = ["user"]
    ordering = ["-id"]
    show_full_result_count = False


@admin.register(Device)
class DeviceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["user", "device_id", "name", "browser", "platform", "created_at", "last_seen_at"]
    list_filter = ["browser", "platform"]
    search_fields = ["user__email", "device_id", "name"]
    list_select_related = ["user"]
    ordering = ["-last_seen_at"]

    def has_delete_permission(self, request, obj=None):
        # Forgetting a device frees a slot of the device limit; its data stays.
        return request.user.has_perm("syncsettings.delete_device")

    def delete_model(self, request, obj):
        delete_device(user=UserRef(obj.user_id), device_id=obj.device_id)

    def delete_queryset(self, request, queryset):
        for device in queryset:
            self.delete_model(request, device)


@admin.register(Snapshot)
class SnapshotAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["user", "created_at", "reason", "label", "version", "key_count", "bytes_used"]
    list_filter = ["reason"]
    search_fields = ["user__email", "label"]
    list_select_related = ["user"]
    exclude = ["document"]
    ordering = ["-created_at"]
