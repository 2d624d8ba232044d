"""Analytics' section of the account export and erasure (accounts.personal_data); rollups are anonymous and stay."""

from accounts import personal_data
from analytics import services
from analytics.models import Event


def describe(*, user) -> list[str]:
    return [f"{Event.objects.filter(user_id=user.id).count()} raw analytics event(s) (anonymous daily totals stay)"]


def register() -> None:
    personal_data.register(
        "analytics_events",
        title="Analytics",
        models=("analytics.Event",),
        export=services.export_user_events,
        erase=services.delete_user_events,
        describe=describe,
    )
