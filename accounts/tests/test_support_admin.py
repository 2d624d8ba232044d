"""Support's page per user in the admin: every action through its own URL, Stripe's recorded calls and the DB after."""

import json
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.auth.models import Permission
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from djstripe.models import Customer
from rest_framework.test import APIClient

from accounts.models import Session, User
from accounts.services import issue_session_tokens
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from accounts.tests.test_account_lifecycle import make_rich_user, rows_referencing
from billing.models import BillingAccount, TierChange
from billing.services import get_entitlements
from billing.tests.helpers import subscribe

pytestmark = pytest.mark.django_db

ACTIONS = (
    "cancel-at-period-end",
    "cancel-now",
    "resume",
    "refund",
    "grant-comp",
    "revoke-comp",
    "resend-verification",
    "sign-out",
    "deactivate",
    "reactivate",
)


@pytest.fixture
def staff():
    return UserFactory(is_staff=True, is_superuser=True, email="support@example.com")


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def action_url(user, action):
    return reverse("admin:accounts_user_support", args=[user.pk, action])


def support_log(user, staff) -> list[str]:
    return list(
        LogEntry.objects.filter(object_id=str(user.pk), user=staff, action_flag=CHANGE)
        .order_by("id")
        .values_list("change_message", flat=True)
    )


def api_status(access: str) -> int:
    return APIClient(HTTP_AUTHORIZATION=f"Bearer {access}").get("/api/users/me").status_code


def refresh_status(refresh: str) -> int:
    return APIClient().post("/api/auth/refresh", {"refresh": refresh}, format="json").status_code


def test_support_page_shows_tier_and_why_sync_usage_preferences_invoices_and_events(
    staff_client, stripe_fake, stripe_prices, event_registry
):
    from billing.tests.helpers import send

    user, _ = make_rich_user()
    subscription_id = subscribe(stripe_fake, user)
    invoice = stripe_fake.create_invoice(subscription_id, paid=True)
    assert send(APIClient(), stripe_fake.event("invoice.paid", invoice)).status_code == 200
    response = staff_client.get(reverse("admin:accounts_user_change", args=[user.pk]))
    assert response.status_code == 200
    support = response.context["support"]
    assert support["billing"]["entitlements"].tier == "pro" and support["email_verified"] is True
    assert [change.to_tier for change in support["tier_changes"]] == ["pro"]
    assert [invoice_row["id"] for invoice_row in support["invoices"]] == [invoice["id"]]
    assert [event.type for event in support["billing"]["webhook_events"]] == ["invoice.paid"]
    assert support["quota"]["keys_used"] == 2 and [d.device_id for d in support["devices"]] == ["laptop-1"]
    page = response.content.decode()
    for shown in ("laptop-1", "invoice.paid", "analytics opt-in: yes", "Europe/Rome", "5.00 USD"):
        assert shown in page
    # Only what fits the account now: it is verified, active, subscribed and not canceling.
    offered = [label for label, _ in support["actions"]]
    assert offered == [
        "Cancel at period end",
        "Cancel now",
        "Refund the last invoice",
        "Grant a comp tier",
        "Sign out every session",
        "Deactivate",
    ]


def test_cancel_now_ends_the_subscription_in_stripe_and_drops_the_tier(staff_client, staff, stripe_fake, stripe_prices):
    user = UserFactory()
    subscription_id = subscribe(stripe_fake, user)
    confirm = staff_client.get(action_url(user, "cancel-now"))
    assert confirm.status_code == 200 and b"Nothing is refunded" in confirm.content
    assert stripe_fake.calls("DELETE", "/v1/subscriptions") == []  # showing the page changes nothing
    response = staff_client.post(action_url(user, "cancel-now"))
    assert response.status_code == 302
    (cancel,) = stripe_fake.calls("DELETE", "/v1/subscriptions")
    assert cancel.path == f"/v1/subscriptions/{subscription_id}"
    account = BillingAccount.objects.get(user=user)
    assert account.status == "canceled" and get_entitlements(user=user).tier == "free"
    change = TierChange.objects.filter(user=user).first()
    assert (change.to_tier, change.source, change.actor) == ("free", "admin", staff)
    assert support_log(user, staff) == ["Support: canceled the subscription now, without a refund"]


def test_cancel_at_period_end_then_resume(staff_client, staff, stripe_fake, stripe_prices):
    user = UserFactory()
    subscribe(stripe_fake, user)
    assert staff_client.post(action_url(user, "cancel-at-period-end")).status_code == 302
    assert BillingAccount.objects.get(user=user).cancel_at_period_end is True
    assert staff_client.post(action_url(user, "resume")).status_code == 302
    assert BillingAccount.objects.get(user=user).cancel_at_period_end is False
    modifies = stripe_fake.calls("POST", "/v1/subscriptions/")
    assert [call.params["cancel_at_period_end"] for call in modifies] == ["true", "false"]
    assert get_entitlements(user=user).tier == "pro"
    assert [message.split(" (")[0] for message in support_log(user, staff)] == [
        "Support: canceled the subscription at period end",
        "Support: resumed the subscription",
    ]


def test_refund_of_the_last_paid_invoice_goes_through_a_confirmation(staff_client, staff, stripe_fake, stripe_prices):
    user = UserFactory()
    subscription_id = subscribe(stripe_fake, user)
    stripe_fake.create_invoice(subscription_id, paid=True)
    last = stripe_fake.create_invoice(subscription_id, paid=True)
    form_page = staff_client.get(action_url(user, "refund"))
    assert form_page.status_code == 200 and b"5.00 USD" in form_page.content
    hidden = form_page.context["form"].initial
    assert hidden["invoice_id"] == last["id"]
    body = {"amount": "2.50", "invoice_id": hidden["invoice_id"], "confirmation": hidden["confirmation"]}
    confirm_page = staff_client.post(action_url(user, "refund"), body)
    assert confirm_page.status_code == 200 and b"Refund 2.50 USD" in confirm_page.content
    assert stripe_fake.calls("POST", "/v1/refunds") == []

    # More than was paid: refused before Stripe is asked.
    too_much = staff_client.post(action_url(user, "refund"), {**body, "amount": "5.01", "confirm": "yes"})
    assert too_much.status_code == 302 and stripe_fake.calls("POST", "/v1/refunds") == []

    response = staff_client.post(action_url(user, "refund"), {**body, "confirm": "yes"})
    assert response.status_code == 302
    (refund,) = stripe_fake.calls("POST", "/v1/refunds")
    (payment,) = [
        o for o in stripe_fake.objects.values() if o["object"] == "invoice_payment" and o["invoice"] == last["id"]
    ]
    assert refund.params["payment_intent"] == payment["payment"]["payment_intent"] and refund.params["amount"] == "250"
    assert refund.idempotency_key == f"cf-refund-{last['id']}-{hidden['confirmation']}"
    assert stripe_fake.objects[payment["payment"]["payment_intent"]]["_refunded"] == 250
    (message,) = support_log(user, staff)
    assert message.startswith("Support: refunded 2.50 USD of invoice")


def test_refund_without_a_paid_invoice_does_nothing(staff_client, stripe_fake, stripe_prices):
    user = UserFactory()
    subscribe(stripe_fake, user)
    response = staff_client.get(action_url(user, "refund"))
    assert response.status_code == 302 and stripe_fake.calls("POST", "/v1/refunds") == []


def test_comp_grant_creates_the_missing_billing_row(staff_client, staff, stripe_fake):
    user = UserFactory()
    assert not BillingAccount.objects.filter(user=user).exists()
    until = (timezone.now() + timedelta(days=30)).strftime("%Y-%m-%d %H:%M")
    response = staff_client.post(action_url(user, "grant-comp"), {"tier": "premium", "until": until, "reason": "bug"})
    assert response.status_code == 302
    account = BillingAccount.objects.get(user=user)
    assert (account.comp_tier, account.comp_reason, account.comp_granted_by) == ("premium", "bug", staff)
    assert get_entitlements(user=user).tier == "premium"
    assert stripe_fake.requests == []
    # A date in the past is refused and nothing changes.
    past = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    staff_client.post(action_url(user, "grant-comp"), {"tier": "pro", "until": past})
    assert BillingAccount.objects.get(user=user).comp_tier == "premium"
    assert staff_client.post(action_url(user, "revoke-comp")).status_code == 302
    assert get_entitlements(user=user).tier == "free"
    assert [m.split(" until")[0] for m in support_log(user, staff)] == [
        "Support: granted comp tier premium",
        "Support: revoked the comp tier",
    ]


def test_resend_verification_and_sign_out(staff_client, staff, django_capture_on_commit_callbacks):
    user = UserFactory()
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=False)
    access, refresh, _ = issue_session_tokens(user=user)
    browser = Client()
    assert browser.post("/account/login/", {"login": user.email, "password": DEFAULT_PASSWORD}).status_code == 302
    assert browser.get("/account/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        assert staff_client.post(action_url(user, "resend-verification")).status_code == 302
    (verification,) = mail.outbox
    assert verification.to == [user.email]
    with django_capture_on_commit_callbacks(execute=True):
        assert staff_client.post(action_url(user, "sign-out")).status_code == 302
    assert api_status(access) == 401 and refresh_status(refresh) == 401
    # The hosted pages too: the browser's next page asks for a login.
    assert browser.get("/account/")["Location"] == "/account/login/?next=/account/"
    assert staff_client.get(reverse("admin:index")).status_code == 200
    assert support_log(user, staff) == [
        f"Support: sent the verification email again to {user.email}",
        "Support: signed out 1 session(s)",
    ]


def test_deactivate_signs_out_at_once_and_reactivate_lets_the_user_back(
    staff_client, staff, django_capture_on_commit_callbacks
):
    user = UserFactory()
    access, refresh, _ = issue_session_tokens(user=user)
    assert api_status(access) == 200  # the session's state is cached as active
    with django_capture_on_commit_callbacks(execute=True):
        assert staff_client.post(action_url(user, "deactivate")).status_code == 302
    assert api_status(access) == 401 and refresh_status(refresh) == 401
    user.refresh_from_db()
    assert user.is_active is False
    assert staff_client.post(action_url(user, "reactivate")).status_code == 302
    login = APIClient().post("/api/auth/login", {"email": user.email, "password": DEFAULT_PASSWORD}, format="json")
    assert login.status_code == 200
    assert support_log(user, staff) == [
        "Support: deactivated the account and signed out every session",
        "Support: reactivated the account",
    ]


def _deactivate_in_the_change_form(client, user):
    page = client.get(reverse("admin:accounts_user_change", args=[user.pk]))
    form = page.context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name != "password"}
    data.update(groups=[], user_permissions=[], is_active="")
    data.update({"sessions-TOTAL_FORMS": "1", "sessions-INITIAL_FORMS": "1", "sessions-MAX_NUM_FORMS": "1000"})
    data["sessions-0-id"] = str(Session.objects.get(user=user).id)
    data["sessions-0-user"] = str(user.pk)
    data["date_joined_0"], data["date_joined_1"] = "2026-01-01", "00:00:00"
    return client.post(reverse("admin:accounts_user_change", args=[user.pk]), data)


def _set_password(client, user):
    url = reverse("admin:auth_user_password_change", args=[user.pk])
    return client.post(url, {"password1": "a-new-long-password-9", "password2": "a-new-long-password-9"})


def _delete(client, user):
    return client.post(reverse("admin:accounts_user_delete", args=[user.pk]), {"confirm": "yes"})


@pytest.mark.parametrize("act", [_deactivate_in_the_change_form, _set_password, _delete])
def test_deactivating_setting_the_password_or_deleting_in_the_admin_signs_out_at_once(
    staff_client, act, django_capture_on_commit_callbacks
):
    user = UserFactory()
    access, refresh, _ = issue_session_tokens(user=user)
    assert api_status(access) == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = act(staff_client, user)
    assert response.status_code == 302, getattr(response, "context", None) and response.context.get("errors")
    assert api_status(access) == 401 and refresh_status(refresh) == 401


def test_admin_delete_of_a_user_with_sync_data_and_a_subscription_erases_everything(
    client, stripe_fake, stripe_prices, event_registry, django_capture_on_commit_callbacks
):
    # Not a superuser: deleting needs "Can delete user" only, not permissions on every app's tables.
    staff = UserFactory(is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_user", "delete_user"]))
    staff_client = client
    staff_client.force_login(staff)
    user, client = make_rich_user()
    subscription_id = subscribe(stripe_fake, user)
    customer_id = BillingAccount.objects.get(user=user).stripe_customer_id
    user_id = user.pk
    confirm = staff_client.get(reverse("admin:accounts_user_delete", args=[user_id]))
    page = confirm.content.decode()
    assert confirm.status_code == 200
    for erased in (f"Stripe subscription {subscription_id}", "2 synced setting(s)", "1 raw analytics event(s)"):
        assert erased in page
    assert User.objects.filter(pk=user_id).exists() and stripe_fake.calls("DELETE", "/v1/subscriptions") == []
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("admin:accounts_user_delete", args=[user_id]), {"confirm": "yes"})
    assert response.status_code == 302
    (cancel,) = stripe_fake.calls("DELETE", "/v1/subscriptions")
    assert cancel.path == f"/v1/subscriptions/{subscription_id}"
    assert len(stripe_fake.calls("POST", "/v1/payment_methods/")) == 1  # detached
    assert rows_referencing(user_id) == {}
    assert not Customer.objects.filter(id=customer_id).exists()
    assert client.get("/api/users/me").status_code == 401
    entry = LogEntry.objects.get(object_id=str(user_id), action_flag=DELETION)
    assert entry.user == staff and entry.object_repr == f"Deleted user {user_id}"
    (goodbye,) = mail.outbox
    assert goodbye.to == ["rich@example.com"]


def test_bulk_delete_goes_through_the_account_service_and_the_stock_one_is_gone(
    staff_client, stripe_fake, stripe_prices
):
    paying, free = UserFactory(), UserFactory()
    subscribe(stripe_fake, paying)
    changelist = reverse("admin:accounts_user_changelist")
    choices = [name for name, _ in staff_client.get(changelist).context["action_form"].fields["action"].choices]
    assert "delete_selected" not in choices and "delete_accounts" in choices
    selected = {"_selected_action": [str(paying.pk), str(free.pk)]}
    stock = staff_client.post(changelist, {"action": "delete_selected", **selected, "post": "yes"})
    assert stock.status_code in (200, 302) and User.objects.filter(pk__in=[paying.pk, free.pk]).count() == 2
    confirm = staff_client.post(changelist, {"action": "delete_accounts", **selected})
    assert confirm.status_code == 200 and b"Yes, delete and erase" in confirm.content
    assert User.objects.filter(pk__in=[paying.pk, free.pk]).count() == 2
    done = staff_client.post(changelist, {"action": "delete_accounts", **selected, "confirm": "yes"})
    assert done.status_code == 302
    assert not User.objects.filter(pk__in=[paying.pk, free.pk]).exists()
    assert len(stripe_fake.calls("DELETE", "/v1/subscriptions")) == 1


def test_export_from_the_admin_is_the_users_own_export(staff_client, staff, event_registry):
    user, client = make_rich_user()
    response = staff_client.get(reverse("admin:accounts_user_export", args=[user.pk]))
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    exported = json.loads(response.content)
    own = client.get("/api/users/me/export").json()
    exported.pop("exported_at"), own.pop("exported_at")
    assert exported == own
    assert support_log(user, staff) == ["Support: exported the account's data"]


def every_support_url(user) -> list[tuple[str, str]]:
    urls = [("get", action_url(user, action)) for action in ACTIONS]
    urls += [("post", action_url(user, action)) for action in ACTIONS]
    urls += [("get", reverse("admin:accounts_user_export", args=[user.pk]))]
    urls += [("get", reverse("admin:accounts_user_delete", args=[user.pk]))]
    urls += [("post", reverse("admin:accounts_user_delete", args=[user.pk]))]
    return urls


@pytest.mark.parametrize("who", ["customer", "staff_without_permission"])
def test_nobody_else_gets_anything_from_the_support_urls(client, who, stripe_fake, stripe_prices):
    target = UserFactory(email="target@example.com")
    subscribe(stripe_fake, target)
    access, _, _ = issue_session_tokens(user=target)
    calls_before = len(stripe_fake.requests)
    visitor = UserFactory(is_staff=who != "customer")
    if who != "customer":
        # Can open the user's page, but holds none of the permissions the actions need.
        visitor.user_permissions.add(Permission.objects.get(codename="view_user"))
    client.force_login(visitor)
    page = client.get(reverse("admin:accounts_user_change", args=[target.pk]))
    if who == "customer":
        assert page.status_code == 302
    else:
        assert page.status_code == 200 and page.context["support"]["actions"] == []
        assert not page.context["support"]["can_export"] and b"/support/" not in page.content
    for method, url in every_support_url(target):
        body = {"confirm": "yes", "tier": "pro", "until": "2099-01-01 00:00", "amount": "1.00"}
        response = getattr(client, method)(url, body if method == "post" else None)
        if who == "customer":
            assert response.status_code == 302 and "/login/" in response["Location"], url
        else:
            assert response.status_code == 403, url
        assert b"target@example.com" not in response.content
    target.refresh_from_db()
    assert target.is_active and api_status(access) == 200
    assert len(stripe_fake.requests) == calls_before
    assert BillingAccount.objects.get(user=target).status == "active" and not mail.outbox
    assert not LogEntry.objects.exists()


def test_a_stripe_failure_changes_nothing_and_is_shown(staff_client, staff, stripe_fake, stripe_prices):
    user = UserFactory()
    subscribe(stripe_fake, user)
    stripe_fake.fail("DELETE", "/v1/subscriptions")
    response = staff_client.post(action_url(user, "cancel-now"), follow=True)
    assert "payment provider failed" in str(list(response.context["messages"])[0])
    assert BillingAccount.objects.get(user=user).status == "active" and support_log(user, staff) == []
    deleting = staff_client.post(reverse("admin:accounts_user_delete", args=[user.pk]), {"confirm": "yes"})
    assert deleting.status_code == 302 and User.objects.filter(pk=user.pk).exists()
    assert not LogEntry.objects.filter(action_flag=DELETION).exists()


def test_staff_cannot_delete_their_own_account_from_the_admin(staff_client, staff):
    staff_client.post(reverse("admin:accounts_user_delete", args=[staff.pk]), {"confirm": "yes"})
    assert User.objects.filter(pk=staff.pk).exists()
