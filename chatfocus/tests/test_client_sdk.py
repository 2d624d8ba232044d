"""The extension's client (clients/js) tested as the extension uses it: its Node unit tests, the SDK
in Node against the live server, and the demo extension in two Chromium profiles."""

import os
import subprocess
from pathlib import Path

import pytest

from accounts.tests.factories import DEFAULT_PASSWORD, UserFactory
from analytics.models import Event, EventDefinition
from syncsettings.services import get_settings

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "clients" / "js"
NODE_TIMEOUT = 600


def run(command: list[str], *, cwd: Path, env: dict | None = None) -> str:
    result = subprocess.run(
        command, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=NODE_TIMEOUT
    )
    output = f"{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{output[-8000:]}"
    return output


@pytest.fixture(scope="session")
def sdk_build():
    """The SDK built from its sources and the committed schema (dependencies from `make clients`: npm ci)."""
    if not (SDK / "node_modules").is_dir():
        pytest.fail("The JS client's dependencies are missing: run `make clients` (npm ci in clients/js).")
    return run(["npm", "run", "--silent", "build"], cwd=SDK)


def test_sdk_builds_within_its_size_goal(sdk_build):
    gzip_bytes = int(sdk_build.split(" bytes gzip")[0].rsplit(", ", 1)[1])
    assert gzip_bytes <= 10 * 1024, sdk_build


def test_sdk_unit_tests_pass(sdk_build):
    output = run(["node", "--test", "test/unit/"], cwd=SDK)
    assert "# fail 0" in output and "# pass 0" not in output, output


@pytest.mark.django_db(transaction=True)
def test_sdk_syncs_two_devices_through_the_live_server(sdk_build, live_server):
    user = UserFactory()
    # A transactional test starts from empty tables: the registry row its data migration made is gone.
    EventDefinition.objects.get_or_create(
        name="extension_opened", defaults={"kind": "event", "allowed_props": ["surface"]}
    )
    output = run(
        ["node", "--test", "--test-timeout=120000", "test/integration/"],
        cwd=SDK,
        env={"CF_BASE_URL": live_server.url, "CF_EMAIL": user.email, "CF_PASSWORD": DEFAULT_PASSWORD},
    )
    assert "# fail 0" in output and "# pass 5" in output, output
    document = get_settings(user=user)["settings"]
    assert document["usageStats/filtersUsed"] == 5
    assert {key for key in document if key.startswith("focusedContacts/")} == {
        "focusedContacts/bob",
        "focusedContacts/carol",
    }
    # One event tracked before the opt-in (never sent), two after.
    assert Event.objects.filter(user_id=user.id, name="extension_opened").count() == 2
