from celery import shared_task

from billing.services import is_billing_configured, reconcile_accounts, record_expired_tiers


@shared_task
def record_expired_tiers_task():
    return record_expired_tiers()


@shared_task
def reconcile_accounts_task():
    # A server without Stripe keys has nothing to reconcile.
    return len(reconcile_accounts()) if is_billing_configured() else 0
