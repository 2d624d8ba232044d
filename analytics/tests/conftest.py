import importlib

import pytest
from django.apps import apps

from accounts.services import update_preferences

seed_migration = importlib.import_module("analytics.migrations.0002_seed_event_registry")


@pytest.fixture(autouse=True)
def _event_registry(request):
    """The registry the data migration seeds: transactional tests (any app's) flush migration data."""
    if request.node.get_closest_marker("django_db"):
        seed_migration.seed(apps, None)


@pytest.fixture
def opted_in_user(user):
    update_preferences(user=user, analytics_opt_in=True)
    return user
