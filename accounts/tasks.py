from celery import shared_task


@shared_task(autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def send_password_reset_task(*, email: str) -> None:
    from accounts.services import send_password_reset

    send_password_reset(email=email)
