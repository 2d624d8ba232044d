"""Forgot-password does the same work for an address with an account and one without (no timing oracle)."""

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import tasks
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def forgot(api_client, monkeypatch, email: str):
    queued = []
    monkeypatch.setattr(tasks.send_password_reset_task, "delay", lambda **kwargs: queued.append(kwargs))
    with CaptureQueriesContext(connection) as queries:
        response = api_client.post("/api/auth/forgot-password", {"email": email}, format="json")
    assert response.status_code == 202
    return [query["sql"] for query in queries.captured_queries], queued, response.json()


def test_known_and_unknown_addresses_run_the_same_queries_and_queue_the_same_task(api_client, monkeypatch):
    UserFactory(email="known@example.com")
    known = forgot(api_client, monkeypatch, "known@example.com")
    unknown = forgot(api_client, monkeypatch, "unknown@example.com")
    assert known[0] == unknown[0]  # the same SQL statements, in the same order
    assert known[1] == [{"email": "known@example.com"}] and unknown[1] == [{"email": "unknown@example.com"}]
    assert known[2] == unknown[2]


def test_the_queued_task_emails_only_an_address_with_an_account(django_capture_on_commit_callbacks):
    UserFactory(email="known@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        tasks.send_password_reset_task.delay(email="known@example.com")
        tasks.send_password_reset_task.delay(email="unknown@example.com")
    assert [message.to for message in mail.outbox] == [["known@example.com"]]
