from django.urls import path

from syncsettings.api import views

urlpatterns = [
    path("sync/push", views.PushView.as_view(), name="sync-push"),
    path("sync/pull", views.PullView.as_view(), name="sync-pull"),
    path("sync/settings", views.SettingsView.as_view(), name="sync-settings"),
    path("sync/devices", views.DevicesView.as_view(), name="sync-devices"),
    path("sync/devices/<str:device_id>", views.DeviceDetailView.as_view(), name="sync-device"),
    path("sync/snapshots", views.SnapshotsView.as_view(), name="sync-snapshots"),
    path("sync/snapshots/<int:snapshot_id>/restore", views.SnapshotRestoreView.as_view(), name="sync-snapshot-restore"),
    path("sync/history", views.HistoryView.as_view(), name="sync-history"),
    path("sync/quota", views.QuotaView.as_view(), name="sync-quota"),
]
