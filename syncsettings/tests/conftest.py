import dataclasses

import pytest

from billing import services as billing_services
from billing.tiers import TIERS


@pytest.fixture
def set_tier(monkeypatch):
    """Make billing report `tier` (optionally with some limits overridden) for every user."""

    def apply(tier: str = "free", **limits):
        plan = TIERS[tier]
        entitlements = billing_services.Entitlements(
            tier=plan.name,
            status="active",
            limits=dataclasses.replace(plan.limits, **limits),
            features=plan.features,
        )
        monkeypatch.setattr(billing_services, "get_entitlements", lambda *, user, prefetched=None: entitlements)
        return entitlements

    return apply


@pytest.fixture
def sync(auth_client):
    """A client of a new user with helpers: push(device, ops), pull(**params), settings()."""
    return SyncClient(auth_client())


class SyncClient:
    def __init__(self, client):
        self.client = client
        self.user = client.user

    def push(self, device_id, ops, **extra):
        return self.client.post("/api/sync/push", {"device_id": device_id, "ops": ops}, format="json", **extra)

    def pull(self, **params):
        headers = {}
        if "etag" in params:
            headers["HTTP_IF_NONE_MATCH"] = params.pop("etag")
        return self.client.get("/api/sync/pull", params, **headers)

    def settings(self, **headers):
        return self.client.get("/api/sync/settings", **headers)

    def document(self) -> dict:
        return self.settings().json()["settings"]

    def pull_all(self, since=0, limit=1000, into: dict | None = None) -> tuple[dict, int]:
        """Page through pull from `since`, folding the changes into `into` (default {}): (document, version)."""
        document, version = dict(into or {}), since
        while True:
            body = self.pull(since=version, limit=limit).json()
            for change in body["changes"]:
                if change["deleted"]:
                    document.pop(change["key"], None)
                else:
                    document[change["key"]] = change["value"]
            version = body["version"]
            if not body["has_more"]:
                return document, version
