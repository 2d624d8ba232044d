"""The committed OpenAPI schema (clients/openapi.yaml) is what the code generates: the JS client is typed from it."""

import difflib
from pathlib import Path

from django.core.management import call_command

COMMITTED = Path(__file__).resolve().parents[2] / "clients" / "openapi.yaml"


def test_committed_openapi_schema_matches_the_code(tmp_path):
    generated = tmp_path / "openapi.yaml"
    # The same command as `make schema`: a warning there is a failure here too.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(generated))
    expected, committed = generated.read_text(), COMMITTED.read_text() if COMMITTED.exists() else ""
    diff = "".join(
        difflib.unified_diff(
            committed.splitlines(keepends=True), expected.splitlines(keepends=True), "committed", "generated", n=1
        )
    )
    assert committed == expected, f"clients/openapi.yaml is out of date: run make schema.\n{diff[:4000]}"
