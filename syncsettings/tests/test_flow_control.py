"""Flow control (DESIGN.md section 5): Backoff, the quota headers, and the X-Client-Version gate (426)."""

import pytest
from drf_spectacular.generators import SchemaGenerator

from billing.tiers import TIERS
from chatfocus.flow_control import parse_semver
from syncsettings.tests.factories import make_op

FREE_BYTES = TIERS["free"].limits.sync_bytes


def test_backoff_is_on_every_sync_response_while_set_and_absent_otherwise(sync, settings):
    assert "Backoff" not in sync.pull(since=0)
    settings.SYNC_BACKOFF_SECONDS = 120
    assert sync.pull(since=0)["Backoff"] == "120"
    bad = sync.push("laptop", [{"op_id": "x"}])
    assert bad.status_code == 400 and bad["Backoff"] == "120"
    assert sync.client.get("/api/sync/quota")["Backoff"] == "120"


def test_push_and_pull_carry_the_quota_headers_in_bytes(sync):
    op = make_op("theme", "dark")
    pushed = sync.push("laptop", [op])
    used = len("theme") + len('"dark"')
    assert (pushed["X-Quota-Used"], pushed["X-Quota-Limit"]) == (str(used), str(FREE_BYTES))
    pulled = sync.pull(since=0)
    assert (pulled["X-Quota-Used"], pulled["X-Quota-Limit"]) == (str(used), str(FREE_BYTES))
    idle = sync.pull(etag='"v1"')
    assert idle.status_code == 304 and idle["X-Quota-Used"] == str(used)
    sync.push("laptop", [make_op("theme", None, op="delete")])
    assert sync.pull(since=1)["X-Quota-Used"] == "0"


@pytest.mark.parametrize(
    ("sent", "allowed"),
    [("1.3.9", False), ("1.4.0-beta.2", False), ("0.9.99", False), ("1.4.0", True), ("1.10.0", True), (None, True)],
)
def test_clients_below_the_minimum_version_get_426_with_the_minimum(sync, settings, sent, allowed):
    settings.MIN_CLIENT_VERSION = "1.4.0"
    headers = {"HTTP_X_CLIENT_VERSION": sent} if sent else {}
    pull = sync.client.get("/api/sync/pull", {"since": 0}, **headers)
    for response in (pull, sync.client.get("/api/users/me", **headers)):
        if allowed:
            assert response.status_code == 200
        else:
            assert response.status_code == 426
            error = response.json()["error"]
            assert error["code"] == "client_outdated" and error["details"] == {"min_version": "1.4.0"}


def test_auth_endpoints_answer_an_outdated_client(api_client, user, settings):
    settings.MIN_CLIENT_VERSION = "2.0.0"
    response = api_client.post(
        "/api/auth/login",
        {"email": user.email, "password": "wrong-password"},
        format="json",
        HTTP_X_CLIENT_VERSION="1.0.0",
    )
    assert response.status_code == 401


def test_a_malformed_client_version_is_a_400_in_the_error_shape(sync):
    response = sync.client.get("/api/sync/pull", HTTP_X_CLIENT_VERSION="latest")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"X-Client-Version": ["A semantic version such as 1.4.2 is required."]}


def test_semver_ordering():
    ordered = ["0.0.1", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0"]
    keys = [parse_semver(version) for version in ordered]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert parse_semver("v2.1.3+build.7") == parse_semver("2.1.3")
    assert parse_semver("1.2") is None and parse_semver("1.2.3.4") is None


def test_the_schema_declares_the_headers_and_the_426():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    push = schema["paths"]["/api/sync/push"]["post"]
    login = schema["paths"]["/api/auth/login"]["post"]
    assert "X-Client-Version" in {parameter["name"] for parameter in push["parameters"]}
    assert "426" in push["responses"] and "426" not in login["responses"]
    assert {"Backoff", "X-Quota-Used", "X-Quota-Limit"} <= set(push["responses"]["200"]["headers"])
    pull = schema["paths"]["/api/sync/pull"]["get"]
    assert {"X-Quota-Used", "X-Quota-Limit"} <= set(pull["responses"]["304"]["headers"])
    assert "Backoff" in schema["paths"]["/api/sync/quota"]["get"]["responses"]["200"]["headers"]


def test_a_malformed_minimum_version_fails_the_system_check(settings):
    from syncsettings.checks import check_min_client_version

    settings.MIN_CLIENT_VERSION = "1.4"
    assert [error.id for error in check_min_client_version(None)] == ["syncsettings.E001"]
    settings.MIN_CLIENT_VERSION = "1.4.0"
    assert check_min_client_version(None) == []
