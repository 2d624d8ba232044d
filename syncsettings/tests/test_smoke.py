import pytest

from syncsettings.tests.factories import make_op


@pytest.mark.django_db
def test_push_then_pull_round_trip(sync):
    response = sync.push("laptop", [make_op("a", 1), make_op("b", {"x": [1, 2]})])
    assert response.status_code == 200, response.json()
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["applied", "applied"]
    assert body["version"] == 2
    pulled = sync.pull(since=0).json()
    assert [c["key"] for c in pulled["changes"]] == ["a", "b"]
    assert sync.document() == {"a": 1, "b": {"x": [1, 2]}}
