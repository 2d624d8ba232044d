from datetime import timedelta
from io import StringIO

import pytest
import stripe
import time_machine
from django.apps import apps
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from billing import services
from billing.models import BillingAccount, TierChange
from billing.selectors import get_entitlements
from billing.tests.factories import BillingAccountFactory
from billing.tests.helpers import send, subscribe
from chatfocus.exceptions import DomainError

pytestmark = pytest.mark.django_db


def test_reconcile_fixes_an_injected_drift_and_reports_it(stripe_fake, stripe_prices, user):
    subscription_id = subscribe(stripe_fake, user)
    stripe_fake.set_status(subscription_id, "canceled")  # a lost customer.subscription.deleted webhook
    out = StringIO()
    call_command("billing_reconcile", stdout=out)
    assert f"{user.id}: status: active → canceled" in out.getvalue()
    assert get_entitlements(user=user).tier == "free"
    assert TierChange.objects.filter(user=user, source="reconcile", to_tier="free").exists()
    out = StringIO()
    call_command("billing_reconcile", "--all", stdout=out)
    assert "0 accounts fixed" in out.getvalue()


def test_comp_tier_wins_over_stripe_until_its_date(stripe_fake, stripe_prices, user, admin_user):
    subscription_id = subscribe(stripe_fake, user, "pro")
    until = timezone.now() + timedelta(days=30)
    services.grant_comp_tier(user_id=user.id, tier="premium", until=until, granted_by=admin_user, reason="Beta tester")
    assert (get_entitlements(user=user).tier, get_entitlements(user=user).source) == ("premium", "comp")
    stripe_fake.set_status(subscription_id, "canceled")
    services.refresh_account(account=BillingAccount.objects.get(user=user), source="reconcile")
    assert get_entitlements(user=user).tier == "premium"
    with time_machine.travel(until + timedelta(seconds=1)):
        assert services.record_expired_tiers() == 1
        assert get_entitlements(user=user).tier == "free"
    audit = list(TierChange.objects.filter(user=user).order_by("id").values_list("to_tier", "source", "actor"))
    assert audit == [("pro", "checkout", None), ("premium", "admin", admin_user.id), ("free", "expiry", None)]


@pytest.mark.parametrize("until_days, tier", [(-1, "premium"), (10, "free")])
def test_comp_grant_validates(user, admin_user, until_days, tier):
    with pytest.raises(DomainError):
        services.grant_comp_tier(
            user_id=user.id, tier=tier, until=timezone.now() + timedelta(days=until_days), granted_by=admin_user
        )


def test_grace_end_is_logged_and_emailed_by_the_periodic_task(
    api_client, stripe_fake, stripe_prices, user, settings, django_capture_on_commit_callbacks
):
    from billing.tasks import record_expired_tiers_task

    subscription_id = subscribe(stripe_fake, user)
    stripe_fake.set_status(subscription_id, "past_due")
    send(
        api_client, stripe_fake.event("invoice.payment_failed", stripe_fake.create_invoice(subscription_id, paid=False))
    )
    with time_machine.travel(timezone.now() + timedelta(days=settings.BILLING_GRACE_DAYS, seconds=1)):
        with django_capture_on_commit_callbacks(execute=True):
            assert record_expired_tiers_task() == 1
        assert record_expired_tiers_task() == 0
    assert mail.outbox[-1].subject == "Your ChatFocus account is now on the Free plan"
    assert TierChange.objects.filter(user=user, source="expiry", from_tier="pro", to_tier="free").count() == 1


def test_account_deletion_cancels_now_and_detaches_payment_methods(auth_client, stripe_fake, stripe_prices):
    client = auth_client()
    subscription_id = subscribe(stripe_fake, client.user)
    customer_id = stripe_fake.objects[subscription_id]["customer"]
    response = client.delete("/api/users/me", {"password": "correct-horse-battery-staple"}, format="json")
    assert response.status_code == 204
    assert stripe_fake.objects[subscription_id]["status"] == "canceled"
    assert stripe_fake.calls("DELETE", f"/v1/subscriptions/{subscription_id}")[0].params == {"prorate": "false"}
    assert stripe_fake.objects[customer_id]["_payment_methods"] == []
    assert not BillingAccount.objects.filter(stripe_customer_id=customer_id).exists()


def test_deletion_of_a_free_user_calls_no_stripe(user, settings):
    settings.STRIPE_SECRET_KEY = ""
    services.cancel_for_deleted_user(user=user)


def test_export_lists_the_billing_state_and_tier_history(stripe_fake, stripe_prices, user):
    subscription_id = subscribe(stripe_fake, user, "premium", "year")
    data = services.export_billing_data(user=user)
    assert (data["tier"], data["interval"], data["stripe_subscription_id"]) == ("premium", "year", subscription_id)
    assert data["tier_changes"][0]["to"] == "premium"


def test_export_of_a_free_user(user, settings):
    settings.STRIPE_SECRET_KEY = ""
    data = services.export_billing_data(user=user)
    assert (data["tier"], data["stripe_customer_id"], data["tier_changes"]) == ("free", None, [])


def test_checkout_session_of_another_user_is_not_found(stripe_fake, stripe_prices, user):
    from accounts.tests.factories import UserFactory

    url = services.start_checkout(user=user, tier="pro", interval="month")
    session = stripe_fake.complete_checkout(url.rsplit("/", 1)[1])
    with pytest.raises(DomainError) as error:
        services.sync_checkout_session(user=UserFactory(), session_id=session["id"])
    assert error.value.status == 404
    assert get_entitlements(user=user).tier == "free"


def test_bootstrap_creates_the_catalogue_once_and_mirrors_it(stripe_fake):
    out = StringIO()
    call_command("billing_bootstrap_stripe", stdout=out)
    assert "6 objects created" in out.getvalue()
    call_command("billing_bootstrap_stripe", stdout=out)
    assert "0 objects created" in out.getvalue()
    product_calls = stripe_fake.calls("POST", "/v1/products")
    assert [call.params["metadata"]["chatfocus_tier"] for call in product_calls] == ["pro", "premium"]
    plans = services.list_plans(billing_configured=True)
    assert [len(plan["prices"]) for plan in plans] == [0, 2, 2]


def test_sync_plans_command_lists_what_is_on_sale(stripe_fake, stripe_prices):
    out = StringIO()
    call_command("billing_sync_plans", stdout=out)
    assert f"premium per year: {stripe_prices[('premium', 'year')]} (12000 usd)" in out.getvalue()


def test_sync_plans_without_tagged_products_fails(stripe_fake):
    with pytest.raises(SystemExit):
        call_command("billing_sync_plans", stdout=StringIO(), stderr=StringIO())


def test_every_gateway_call_carries_an_idempotency_key(stripe_fake, stripe_prices, user):
    stripe_fake.requests.clear()
    subscribe(stripe_fake, user)
    ours = [r for r in stripe_fake.requests if r.path.startswith(("/v1/customers", "/v1/checkout"))]
    assert ours and all(r.idempotency_key for r in ours)


def test_billing_app_gives_every_stripe_call_the_configured_timeout_and_api_version(settings, monkeypatch):
    # Installed at startup: the client every module-level Stripe call (ours and dj-stripe's) goes through.
    assert stripe.default_http_client._timeout == settings.STRIPE_TIMEOUT_SECONDS
    settings.STRIPE_TIMEOUT_SECONDS = 7
    monkeypatch.setattr(stripe, "default_http_client", None)
    monkeypatch.setattr(stripe, "api_version", "2020-08-27")
    apps.get_app_config("billing").ready()
    assert stripe.default_http_client._timeout == 7
    assert stripe.api_version == settings.STRIPE_API_VERSION


def test_price_unknown_to_the_mirror_is_fetched_for_its_tier(stripe_fake, user):
    prices = stripe_fake.seed_catalog()  # not mirrored
    price = stripe_fake._public(stripe_fake.objects[prices[("premium", "month")]])
    price["metadata"] = {}
    assert services.tier_for_price(price) == "premium"


def test_comp_admin_action_grants_and_audits(client, admin_user, user):
    account = BillingAccountFactory(user=user, tier="free", status="", stripe_subscription_id="", effective_tier="free")
    client.force_login(admin_user)
    url = "/admin/billing/billingaccount/"
    form = {"action": "grant_comp", "_selected_action": [account.pk]}
    assert client.post(url, form).status_code == 200  # the intermediate form
    until = (timezone.now() + timedelta(days=10)).strftime("%Y-%m-%d %H:%M:%S")
    response = client.post(url, {**form, "apply": "1", "tier": "pro", "until": until, "reason": "Partner"})
    assert response.status_code == 302
    assert get_entitlements(user=user).tier == "pro"
    change = TierChange.objects.get(user=user)
    assert (change.source, change.actor_id) == ("admin", admin_user.id)


def test_admin_screens_render(client, admin_user, stripe_fake, stripe_prices, user):
    subscribe(stripe_fake, user)
    client.force_login(admin_user)
    account = BillingAccount.objects.get(user=user)
    for url in (
        "/admin/billing/billingaccount/",
        f"/admin/billing/billingaccount/{account.pk}/change/",
        "/admin/billing/tierchange/",
        "/admin/billing/webhookevent/",
    ):
        assert client.get(url).status_code == 200, url


def test_admin_resync_action(client, admin_user, stripe_fake, stripe_prices, user):
    subscription_id = subscribe(stripe_fake, user)
    stripe_fake.set_status(subscription_id, "canceled")
    client.force_login(admin_user)
    account = BillingAccount.objects.get(user=user)
    client.post("/admin/billing/billingaccount/", {"action": "resync_from_stripe", "_selected_action": [account.pk]})
    assert get_entitlements(user=user).tier == "free"
