"""Cursor pagination of the API lists: a cursor the server did not hand out is a clear 400."""

import base64

import pytest

pytestmark = pytest.mark.django_db

LISTS = ["/api/auth/sessions", "/api/sync/history"]


def encoded(querystring: str) -> str:
    return base64.b64encode(querystring.encode()).decode()


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param(encoded("p=not-a-position"), id="position-of-the-wrong-type"),
        pytest.param(encoded("o=x"), id="offset-not-a-number"),
        pytest.param("%%not-base64%%", id="not-base64"),
    ],
)
def test_cursor_the_server_did_not_hand_out_is_400_on_cursor(auth_client, path, cursor):
    # Found by the API fuzzer: a decodable cursor whose position did not fit the ordering field was a 500.
    response = auth_client().get(path, {"cursor": cursor})
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["fields"]) == ["cursor"]


def test_the_next_cursor_handed_out_pages_on(auth_client):
    from accounts.services import issue_session_tokens

    client = auth_client()
    for _ in range(2):
        issue_session_tokens(user=client.user, device_name="other")
    first = client.get("/api/auth/sessions", {"limit": 2}).json()
    assert len(first["results"]) == 2 and first["next"]
    second = client.get(first["next"])
    assert second.status_code == 200
    assert len(second.json()["results"]) == 1
