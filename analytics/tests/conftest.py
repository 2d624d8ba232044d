import pytest

from accounts.services import update_preferences


@pytest.fixture
def opted_in_user(user):
    update_preferences(user=user, analytics_opt_in=True)
    return user
