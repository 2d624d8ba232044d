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


def node_flags() -> list[str]:
    """Node 20 has WebSocket behind a flag (22 on: always)."""
    has_socket = run(["node", "-p", "typeof WebSocket"], cwd=SDK).strip() == "function"
    return [] if has_socket else ["--experimental-websocket"]


@pytest.mark.django_db(transaction=True)
def test_sdk_syncs_two_devices_through_the_live_server(sdk_build, live_server, realtime_server):
    user = UserFactory()
    # A transactional test starts from empty tables: the registry row its data migration made is gone.
    EventDefinition.objects.get_or_create(
        name="extension_opened", defaults={"kind": "event", "allowed_props": ["surface"]}
    )
    output = run(
        ["node", *node_flags(), "--test", "--test-timeout=120000", "test/integration/"],
        cwd=SDK,
        env={
            "CF_BASE_URL": live_server.url,
            "CF_SOCKET_URL": f"{realtime_server.url}/ws/sync",
            "CF_EMAIL": user.email,
            "CF_PASSWORD": DEFAULT_PASSWORD,
        },
    )
    assert "# fail 0" in output and "# pass 5" in output, output
    print(next(line for line in output.splitlines() if "A→B" in line))
    document = get_settings(user=user)["settings"]
    assert document["usageStats/filtersUsed"] == 5
    assert {key for key in document if key.startswith("focusedContacts/")} == {
        "focusedContacts/bob",
        "focusedContacts/carol",
    }
    # One event tracked before the opt-in (never sent), two after.
    assert Event.objects.filter(user_id=user.id, name="extension_opened").count() == 2


EXTENSION = ROOT / "clients" / "extension-demo"
LONG = 90_000  # ms: a loaded CI machine, and backoff after the outage (1 s doubling, jittered)


class TcpProxy:
    """Forwards a free local port to the live server; close() makes the server unreachable (refused) until open()."""

    def __init__(self, target_port: int):
        import socket
        import threading

        self.target_port = target_port
        self.lock = threading.Lock()
        self.connections: set = set()
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.listener = None
        self.open()

    def open(self):
        import socket
        import threading

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self):
        import socket

        # shutdown() wakes the thread blocked in accept(); close() alone would leave the port listening.
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self.lock:
            for connection in self.connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                connection.close()
            self.connections.clear()

    def _accept(self, listener):
        import socket
        import threading

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.connections.update({client, upstream})
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for connection in (source, sink):
                try:
                    connection.close()
                except OSError:
                    pass


@pytest.fixture
def two_profiles(_chromium, tmp_path, sdk_build):
    """Two Chromium profiles (two devices) with the demo extension, each on its popup page."""
    from conftest import CHROMIUM

    args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        f"--disable-extensions-except={EXTENSION}",
        f"--load-extension={EXTENSION}",
    ]
    contexts, pages = [], []
    for name in ("a", "b"):
        context = _chromium.browser_type.launch_persistent_context(
            str(tmp_path / name), executable_path=CHROMIUM, headless=False, args=args
        )
        context.set_default_timeout(LONG)
        contexts.append(context)
        worker = context.service_workers[0] if context.service_workers else context.wait_for_event("serviceworker")
        extension_id = worker.url.split("/")[2]
        page = context.new_page()
        page.goto(f"chrome-extension://{extension_id}/popup.html")
        pages.append(page)
    yield pages
    for context in contexts:
        context.close()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_demo_extension_syncs_two_chromium_profiles(two_profiles, live_server, realtime_server):
    import time

    from playwright.sync_api import expect

    user = UserFactory()
    # The API and the socket each behind a proxy: closing both makes "the server" unreachable.
    api, socket = TcpProxy(int(live_server.url.rsplit(":", 1)[1])), TcpProxy(realtime_server.port)
    a, b = two_profiles
    for page in (a, b):
        # Polling once an hour: what reaches the other profile comes through the socket's pokes.
        page.evaluate(
            "settings => chrome.storage.local.set(settings)",
            {"demo.pollSeconds": 3600, "demo.socketUrl": f"ws://127.0.0.1:{socket.port}/ws/sync"},
        )
        page.fill("input[name=apiUrl]", f"http://127.0.0.1:{api.port}")
        page.fill("input[name=email]", user.email)
        page.fill("input[name=password]", DEFAULT_PASSWORD)
        page.click("#login button")
        expect(page.locator("#signed-in")).to_be_visible(timeout=LONG)
        expect(page.locator("#link")).to_have_text("live", timeout=LONG)

    changed_at = time.monotonic()
    a.check("#ignoreForwarded")
    expect(b.locator("#ignoreForwarded")).to_be_checked(timeout=LONG)
    print(f"A→B: {(time.monotonic() - changed_at) * 1000:.0f} ms ({b.text_content('#link')})")

    api.close()
    socket.close()
    try:
        a.fill("#add-contact input", "alice")
        a.click("#add-contact button")
        b.fill("#add-contact input", "bob")
        b.click("#add-contact button")
        b.uncheck("#ignoreForwarded")
        for page, clicks in ((a, 2), (b, 3)):
            for _ in range(clicks):
                page.click("#filter-used")
        expect(a.locator("#pending")).to_have_text("3", timeout=LONG)
        expect(b.locator("#pending")).to_have_text("5", timeout=LONG)
    finally:
        api.open()
        socket.open()

    for page in (a, b):
        expect(page.locator("#contacts li")).to_have_text(["alice", "bob"], timeout=LONG)
        expect(page.locator("#filtersUsed")).to_have_text("5", timeout=LONG)
        expect(page.locator("#ignoreForwarded")).not_to_be_checked(timeout=LONG)
        expect(page.locator("#pending")).to_have_text("0", timeout=LONG)
    document = get_settings(user=user)["settings"]
    assert document == {
        "filterSettings": {"ignoreForwarded": False},
        "focusedContacts/alice": True,
        "focusedContacts/bob": True,
        "usageStats/filtersUsed": 5,
    }
    api.close()
    socket.close()
