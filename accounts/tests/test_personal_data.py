"""The personal data registry: every table holding a user's rows is exported and erased; no services import loop."""

import ast
import json
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model

from accounts import personal_data

USER_ID_COLUMNS = {"user_id", "subscriber_id"}


def models_holding_users() -> set[str]:
    """Every model with a foreign key to the user model or a plain user id column."""
    user_model = get_user_model()
    labels = set()
    for model in apps.get_models():
        if model._meta.proxy:  # no table of its own: its rows are its concrete model's
            continue
        for field in model._meta.concrete_fields:
            if (field.is_relation and field.related_model is user_model) or field.attname in USER_ID_COLUMNS:
                labels.add(model._meta.label)
    return labels


def test_every_model_with_a_user_is_exported_and_erased():
    uncovered = models_holding_users() - personal_data.covered_models()
    assert not uncovered, f"Register these models' export and erasure in accounts.personal_data: {sorted(uncovered)}"


def test_every_registered_model_exists():
    for label in personal_data.covered_models():
        assert apps.get_model(label) is not None


def test_billing_sync_and_analytics_are_registered_with_billing_first():
    sections = personal_data.registered()
    assert [section.key for section in sections] == ["billing", "analytics_events", "sync"]


@pytest.mark.django_db
def test_each_section_exports_json_and_describes_its_erasure(user):
    for section in personal_data.registered():
        json.dumps(section.export(user=user))
        assert section.describe(user=user) and all(isinstance(line, str) for line in section.describe(user=user))


def imports_of(path: Path) -> list[tuple[str, bool]]:
    """(module, at module level) for every import in a file."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, id(node) in top_level))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, id(node) in top_level) for alias in node.names)
    return found


OUR_APPS = ("accounts", "billing", "syncsettings", "analytics")


def test_accounts_imports_no_other_apps_services_and_no_cross_app_import_hides_in_a_function():
    accounts_services = [module for module, _ in imports_of(settings.BASE_DIR / "accounts" / "services.py")]
    assert not [m for m in accounts_services if m.split(".")[0] in OUR_APPS[1:] and "services" in m]
    hidden = []
    for app in OUR_APPS:
        for path in (settings.BASE_DIR / app).rglob("*.py"):
            if {"tests", "migrations"} & set(path.parts):
                continue
            for module, top_level in imports_of(path):
                if module.split(".")[0] in set(OUR_APPS) - {app} and not top_level:
                    hidden.append(f"{path.relative_to(settings.BASE_DIR)}: {module}")
    assert not hidden, f"Imports of other apps inside functions (an import loop held together): {hidden}"
