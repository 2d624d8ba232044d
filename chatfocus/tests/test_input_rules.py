"""The input rules of DESIGN.md section 2 that hold on every endpoint: the parser, strict types, `limit`."""

import json

import pytest
from drf_spectacular.generators import SchemaGenerator

from accounts.forms import ProfileForm
from accounts.locales import LOCALES
from chatfocus import exceptions
from chatfocus.pagination import CursorPagination
from chatfocus.parsers import MAX_DEPTH, MalformedJSON, loads

SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
LISTS = sorted(
    path
    for path, item in SCHEMA["paths"].items()
    if any(parameter["name"] == "limit" for parameter in item.get("get", {}).get("parameters", []))
)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_the_parser_takes_64_levels_and_refuses_65():
    assert loads(nested(MAX_DEPTH).encode()) is not None
    assert loads(json.dumps({"a": [{"b": "[[[[not brackets that count" * 30}]}).encode())
    with pytest.raises(MalformedJSON):
        loads(nested(MAX_DEPTH + 1).encode())


@pytest.mark.parametrize("number", ["1e308", "-1.7976931348623157e308", "1e-400", "12345678901234567890"])
def test_the_parser_takes_every_finite_double(number):
    assert loads(f'{{"n": [{number}]}}'.encode())["n"][0] == json.loads(number)


def test_lists_are_found_in_the_schema():
    assert {"/api/auth/sessions", "/api/sync/history", "/api/sync/devices", "/api/sync/snapshots"} <= set(LISTS)


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("limit", ["abc", "0", "-1", "1.5", " 5", "٣", ""])
def test_a_limit_that_is_not_a_positive_integer_is_400_on_every_list(auth_client, path, limit):
    response = auth_client().get(path, {"limit": limit})
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], list(error["fields"])) == ("validation_error", ["limit"])


@pytest.mark.parametrize("path", LISTS)
def test_a_limit_above_the_maximum_is_clamped_on_every_list(auth_client, path):
    assert auth_client().get(path, {"limit": "100000"}).status_code == 200


def test_the_page_size_is_clamped_to_200(rf):
    from rest_framework.request import Request

    assert CursorPagination().get_page_size(Request(rf.get("/", {"limit": "1000"}))) == 200
    assert CursorPagination().get_page_size(Request(rf.get("/"))) == 50


@pytest.mark.parametrize(
    "path, field, value",
    [
        ("/api/users/me", "name", 123),
        ("/api/users/me", "locale", 1.0),
        ("/api/users/me", "timezone", ["UTC"]),
        ("/api/users/me/settings", "analytics_opt_in", "true"),
        ("/api/users/me/settings", "product_emails", 1),
        ("/api/users/me/settings", "locale", None),
    ],
)
def test_a_value_of_the_wrong_type_is_400_not_coerced(auth_client, path, field, value):
    client = auth_client()
    before = client.get(path).json()
    response = client.patch(path, {field: value}, format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["fields"]) == [field]
    assert client.get(path).json() == before


def test_the_api_and_the_hosted_page_offer_the_same_locales(auth_client):
    client = auth_client()
    assert dict(ProfileForm.base_fields["locale"].choices) == LOCALES
    for locale in LOCALES:
        assert client.patch("/api/users/me/settings", {"locale": locale}, format="json").status_code == 200
    for outside in ("xx", "pt-BR", "EN", "zzz"):
        response = client.patch("/api/users/me", {"locale": outside}, format="json")
        assert response.status_code == 400 and list(response.json()["error"]["fields"]) == ["locale"]
    schema_locales = SCHEMA["components"]["schemas"]["PatchedPreferencesRequest"]["properties"]["locale"]
    assert set(schema_locales.get("enum") or SCHEMA["components"]["schemas"]["LocaleEnum"]["enum"]) == set(LOCALES)


@pytest.mark.parametrize("hlc", ["١٧٠٠٠٠٠٠٠٠٠٠٠-٠", "１７００００００００００００-0", "1700000000000-٣"])
def test_an_hlc_in_digits_other_than_ascii_is_400(sync_client, hlc):
    op = {"op_id": "o1", "key": "k", "op": "set", "value": 1, "hlc": hlc}
    response = sync_client.post("/api/sync/push", {"device_id": "d", "ops": [op]}, format="json")
    assert response.status_code == 400
    assert "ops.0.hlc" in response.json()["error"]["fields"]
    assert sync_client.get("/api/sync/pull", {"since": "٠"}).status_code == 400


@pytest.fixture
def sync_client(auth_client):
    return auth_client()


def test_every_error_code_in_use_is_declared():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    import accounts.oauth  # noqa: F401 (error classes defined across apps)
    import accounts.sessions  # noqa: F401
    import billing.services  # noqa: F401
    import billing.webhooks  # noqa: F401
    import syncsettings.services  # noqa: F401
    import syncsettings.validation  # noqa: F401

    codes = {exceptions.DomainError.code} | {cls.code for cls in subclasses(exceptions.DomainError)}
    assert codes <= set(exceptions.ERROR_CODES), codes - set(exceptions.ERROR_CODES)
    declared = SCHEMA["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"]
    assert declared == list(exceptions.ERROR_CODES)
