"""Project-level guarantees: migrations complete, schema valid, deploy checks strict."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[2]

PROD_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "p" * 30 + "-production-secret-key-0123456789-abcdefgh",
    "JWT_SECRET": "j" * 20 + "-production-jwt-secret-0123456789",
    "ALLOWED_HOSTS": "api.chatfocus.app",
    "API_URL": "https://api.chatfocus.app",
    "DATABASE_URL": "sqlite:///:memory:",
    "NUM_PROXIES": "1",
    "FIELD_ENCRYPTION_KEYS": "l3F1ZkOu2vXhN0x8yRk4Zb7Qm1c9WfYtJp5sDa6EgHo=",
}


def run_manage(*args, env_overrides):
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "SECURE_SSL_REDIRECT",
            "STRIPE_API_HOST",
            "STATIC_MANIFEST",
            "NUM_PROXIES",
            "FIELD_ENCRYPTION_KEYS",
            "ADMIN_REQUIRE_MFA",
        }
    }
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.smoke
@pytest.mark.django_db
def test_migrations_are_complete():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.smoke
def test_openapi_schema_builds_without_warnings():
    result = run_manage(
        "spectacular", "--validate", "--fail-on-warn", "--file", os.devnull, env_overrides={"DEBUG": "1"}
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.django_db
def test_schema_declares_the_error_shape(api_client):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert schema["components"]["schemas"]["Error"]["properties"]["error"]
    readyz = schema["paths"].get("/readyz") or {}
    for path_item in schema["paths"].values():
        for operation in path_item.values():
            assert "500" in operation["responses"]
    assert readyz == {} or "503" in readyz["get"]["responses"]


def test_check_deploy_passes_with_production_env():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env_overrides=PROD_ENV)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_fails_with_debug_on():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env_overrides={**PROD_ENV, "DEBUG": "1"})
    assert result.returncode != 0
    assert "DEBUG" in result.stdout + result.stderr


def test_check_deploy_fails_with_default_secret_key():
    env = {k: v for k, v in PROD_ENV.items() if k != "SECRET_KEY"}
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env_overrides=env)
    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr


def test_check_deploy_warns_without_jwt_secret():
    env = {k: v for k, v in PROD_ENV.items() if k != "JWT_SECRET"}
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env_overrides=env)
    assert result.returncode != 0
    assert "chatfocus.W001" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "unset, check_id",
    [
        # Behind Heroku's or Railway's router every client would share one address for rate limits.
        ("NUM_PROXIES", "chatfocus.W005"),
        ("FIELD_ENCRYPTION_KEYS", "syncsettings.W001"),
    ],
)
def test_check_deploy_warns_when_a_security_setting_is_unset(unset, check_id):
    env = {k: v for k, v in PROD_ENV.items() if k != unset}
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env_overrides=env)
    assert result.returncode != 0
    assert check_id in result.stdout + result.stderr


@pytest.mark.smoke
@pytest.mark.django_db
def test_seed_is_idempotent(capsys):
    from accounts.models import User

    call_command("seed")
    call_command("seed")
    assert User.objects.filter(email__in=["demo@chatfocus.local", "admin@chatfocus.local"]).count() == 2
    assert User.objects.get(email="admin@chatfocus.local").is_staff
    assert "demo@chatfocus.local" in capsys.readouterr().out


@pytest.mark.smoke
def test_jwt_lifetimes_accept_the_seed_formats():
    from datetime import timedelta

    from django.core.exceptions import ImproperlyConfigured

    from chatfocus.settings import parse_duration

    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("3600") == timedelta(seconds=3600)
    with pytest.raises(ImproperlyConfigured, match="Invalid duration"):
        parse_duration("soon")


@pytest.mark.smoke
@pytest.mark.django_db
def test_api_docs_page_uses_no_cdn(api_client):
    response = api_client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn." not in html and "jsdelivr" not in html and "unpkg" not in html
