"""One canonical form per email address (DESIGN §3): registration, login, limits, stored rows."""

import importlib

import pytest
from allauth.account.models import EmailAddress
from django.apps import apps
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-much-better-passphrase-42"


def register(email):
    return APIClient().post("/api/auth/register", {"email": email, "password": NEW_PASSWORD}, format="json")


def login(email, password=DEFAULT_PASSWORD, ip="10.0.0.1"):
    body = {"email": email, "password": password}
    return APIClient().post("/api/auth/login", body, format="json", REMOTE_ADDR=ip)


@pytest.mark.parametrize(
    "spelling, status",
    [
        ("Victim@Example.com ", 201),  # the same address: its owner gets a notice, no second account
        ("ＶＩＣＴＩＭ@ｅｘａｍｐｌｅ.ｃｏｍ", 201),  # full-width letters, the same address once NFKC-normalised
        ("victim@example.com\u200b", 400),  # a trailing zero-width space
        ("vic\u00adtim@example.com", 400),  # a soft hyphen
        ("vıctim@example.com", 400),  # a dotless ı: looks the same, PostgreSQL's upper() even says it is
    ],
)
def test_look_alike_spellings_never_register_a_second_account(spelling, status):
    victim = UserFactory(email="victim@example.com")
    response = register(spelling)
    assert response.status_code == status, response.content
    if status == 400:
        assert response.json()["error"]["code"] == "validation_error" and "email" in response.json()["error"]["fields"]
    assert list(User.objects.values_list("id", flat=True)) == [victim.id]


@pytest.mark.parametrize("spelling", ["victim@example.com\u200b", "vıctim@example.com"])
def test_look_alike_spellings_never_sign_up_on_the_hosted_pages(spelling):
    UserFactory(email="victim@example.com")
    response = Client().post(
        "/account/signup/", {"email": spelling, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )
    assert response.status_code == 200 and response.context["form"].errors["email"]
    assert User.objects.count() == 1


def test_a_look_alike_spelling_never_logs_into_the_account():
    UserFactory(email="victim@example.com")
    assert login("Victim@Example.com ").status_code == 200
    assert login("ｖｉｃｔｉｍ@example.com").status_code == 200
    # PostgreSQL's case-insensitive match (upper('ı') = 'I') would find the victim's row here.
    assert login("vıctim@example.com").status_code == 401
    invisible = login("victim@example.com\u200b")
    assert invisible.status_code == 400 and invisible.json()["error"]["code"] == "validation_error"


def test_the_per_account_login_limit_counts_every_spelling_together(fresh_rate_limit_window):
    UserFactory(email="victim@example.com")
    limit = int(settings.RATE_LIMITS["login_failures_account"].split("/")[0])
    spellings = [
        "victim@example.com",
        "Victim@Example.com ",
        "VICTIM@EXAMPLE.COM",
        "ｖｉｃｔｉｍ@ｅｘａｍｐｌｅ.ｃｏｍ",
    ]
    for n in range(limit):
        assert login(spellings[n % len(spellings)], "wrong", ip=f"10.0.1.{n}").status_code == 401
    for n, spelling in enumerate(spellings):
        response = login(spelling, ip=f"10.0.2.{n}")
        assert response.status_code == 429, spelling
    assert login("vıctim@example.com", ip="10.0.3.1").status_code == 401  # not the account at all


def test_email_change_to_an_address_with_invisible_characters_is_400(auth_client):
    client = auth_client()
    body = {"email": "new@example.com\u2060", "current_password": DEFAULT_PASSWORD}
    response = client.patch("/api/users/me", body, format="json")
    assert response.status_code == 400 and "email" in response.json()["error"]["fields"]
    assert User.objects.get(id=client.user.id).pending_email == ""


def test_the_data_migration_canonicalises_stored_addresses_and_keeps_the_older_account_on_a_clash(capsys):
    migration = importlib.import_module("accounts.migrations.0004_canonical_emails_refresh_reuse")
    mixed, invisible, older, newer = UserFactory.create_batch(4)
    rows = {
        mixed: "Mixed@Example.COM",
        invisible: "zw@example.com\u200b",
        older: "dup@example.com",
        newer: "ＤＵＰ@example.com",
    }
    for user, stored in rows.items():
        User.objects.filter(id=user.id).update(email=stored, pending_email="")
        EmailAddress.objects.create(user=user, email=stored, primary=True, verified=True)
    User.objects.filter(id=mixed.id).update(pending_email=" Next@Example.com")

    migration.canonicalise_emails(apps, None)

    stored = dict(User.objects.values_list("id", "email"))
    assert stored[mixed.id] == "mixed@example.com" and stored[invisible.id] == "zw@example.com"
    assert stored[older.id] == "dup@example.com" and stored[newer.id] == "ＤＵＰ@example.com"
    assert User.objects.get(id=mixed.id).pending_email == "next@example.com"
    addresses = dict(EmailAddress.objects.values_list("user_id", "email"))
    assert addresses[mixed.id] == "mixed@example.com" and addresses[invisible.id] == "zw@example.com"
    assert addresses[newer.id] == "ＤＵＰ@example.com"
    assert str(newer.id) in capsys.readouterr().out


def test_no_email_lookup_anywhere_uses_the_databases_case_folding():
    """`iexact`/`icontains` on an email column would bring back PostgreSQL's folding (`ı` = `i`)."""
    import pathlib
    import re

    root = pathlib.Path(settings.BASE_DIR)
    pattern = re.compile(r"email__i(exact|contains|startswith)")
    sources = [
        path
        for top in root.iterdir()
        if top.is_dir() and not top.name.startswith(".") and top.name not in {"clients", "node_modules"}
        for path in top.rglob("*.py")
    ]
    offenders = [
        str(path.relative_to(root))
        for path in sources
        if path.name != "test_canonical_email.py" and pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert sources and offenders == []
