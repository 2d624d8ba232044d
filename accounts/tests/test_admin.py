"""Staff admin: user filters and the session revoke action."""

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from django.urls import reverse

from accounts.models import Session
from accounts.services import issue_session_tokens
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True, email="staff@example.com"))
    return client


def listed_emails(response):
    return {user.email for user in response.context["cl"].result_list}


def test_user_filters_verified_and_provider(staff_client):
    verified = UserFactory(email="verified@example.com")
    EmailAddress.objects.create(user=verified, email=verified.email, primary=True, verified=True)
    github = UserFactory(email="github@example.com")
    github.set_unusable_password()
    github.save()
    SocialAccount.objects.create(user=github, provider="github", uid="1")
    url = reverse("admin:accounts_user_changelist")
    assert listed_emails(staff_client.get(url, {"verified": "yes"})) == {"verified@example.com"}
    assert "verified@example.com" not in listed_emails(staff_client.get(url, {"verified": "no"}))
    assert listed_emails(staff_client.get(url, {"provider": "github"})) == {"github@example.com"}
    assert "github@example.com" not in listed_emails(staff_client.get(url, {"provider": "password"}))
    assert listed_emails(staff_client.get(url, {"q": "github"})) == {"github@example.com"}


def test_user_filter_by_tier_uses_the_recorded_effective_tier(staff_client):
    from billing.tests.factories import BillingAccountFactory

    BillingAccountFactory(user=UserFactory(email="pro@example.com"), tier="pro", effective_tier="pro")
    BillingAccountFactory(
        user=UserFactory(email="lapsed@example.com"), tier="pro", status="canceled", effective_tier="free"
    )
    UserFactory(email="never-paid@example.com")
    url = reverse("admin:accounts_user_changelist")
    assert listed_emails(staff_client.get(url, {"tier": "pro"})) == {"pro@example.com"}
    assert listed_emails(staff_client.get(url, {"tier": "premium"})) == set()
    free = listed_emails(staff_client.get(url, {"tier": "free"}))
    assert {"lapsed@example.com", "never-paid@example.com"} <= free and "pro@example.com" not in free


def test_user_page_lists_sessions(staff_client):
    user = UserFactory()
    issue_session_tokens(user=user, device_name="Work laptop")
    response = staff_client.get(reverse("admin:accounts_user_change", args=[user.id]))
    assert response.status_code == 200 and b"Work laptop" in response.content


def test_revoke_action_signs_sessions_out(staff_client):
    user = UserFactory()
    access, _, session = issue_session_tokens(user=user, device_name="Phone")
    _, _, kept = issue_session_tokens(user=user, device_name="Laptop")
    response = staff_client.post(
        reverse("admin:accounts_session_changelist"),
        {"action": "revoke_sessions", "_selected_action": [str(session.id)]},
    )
    assert response.status_code == 302
    session.refresh_from_db()
    kept.refresh_from_db()
    assert session.revoked_at is not None and session.revoked_reason == "staff"
    assert kept.revoked_at is None
    from rest_framework.test import APIClient

    assert APIClient(HTTP_AUTHORIZATION=f"Bearer {access}").get("/api/users/me").status_code == 401
    listing = staff_client.get(reverse("admin:accounts_session_changelist"), {"state": "active"})
    assert [s.device_name for s in listing.context["cl"].result_list] == ["Laptop"]
    assert Session.objects.count() == 2
