import factory

from accounts.tests.factories import UserFactory
from billing.models import BillingAccount


class BillingAccountFactory(factory.django.DjangoModelFactory):
    """A user's billing state as if Stripe had reported it (no Stripe objects behind it)."""

    class Meta:
        model = BillingAccount

    user = factory.SubFactory(UserFactory)
    stripe_customer_id = factory.Sequence(lambda n: f"cus_factory{n:06d}")
    stripe_subscription_id = factory.Sequence(lambda n: f"sub_factory{n:06d}")
    tier = "pro"
    status = "active"
    interval = "month"
    effective_tier = "pro"
