"""Sync's section of the account export and erasure (accounts.personal_data)."""

from accounts import personal_data
from syncsettings import services


def describe(*, user) -> list[str]:
    quota = services.get_quota(user=user)
    return [
        f"{quota['keys_used']} synced setting(s) ({quota['bytes_used']} bytes) with their change history",
        f"{quota['devices_used']} sync device(s) and {quota['snapshots_used']} snapshot(s)",
    ]


def register() -> None:
    personal_data.register(
        "sync",
        title="Settings sync",
        models=(
            "syncsettings.SyncState",
            "syncsettings.Entry",
            "syncsettings.Change",
            "syncsettings.Device",
            "syncsettings.Snapshot",
        ),
        export=services.export_sync_data,
        erase=services.delete_sync_data,
        describe=describe,
    )
