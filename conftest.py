"""Fixtures shared by every app's tests."""

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # bcrypt at 12 rounds costs ~0.3 s a hash; tests that check the real hasher override this.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def auth_client(db):
    """Make an APIClient authenticated as `user` (defaults to a new user)."""

    def make(user=None):
        client = APIClient()
        client.force_authenticate(user=user or UserFactory())
        return client

    return make
