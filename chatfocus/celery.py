"""Celery app: Redis broker when REDIS_URL is set, otherwise tasks run eagerly in-process."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatfocus.settings")

app = Celery("chatfocus")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
