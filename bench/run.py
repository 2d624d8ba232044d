"""`make bench`: load benchmarks of the real server, driven by wrk, printed as one table of ratios.

What it does, in order:
1. Creates and migrates its own database (BENCH_DATABASE_URL, default cf_bench) and empties its own
   Redis database (BENCH_REDIS_URL, default db 14); removes the previous run's bench users.
2. Creates users directly in the database (no rate-limited endpoint): readers with 50 synced keys,
   16 users who push from one device each, a premium user whose 16 devices push, a user with a 2 MB
   document, login users with a real bcrypt password; mints real JWTs with
   accounts.services.issue_session_tokens.
3. Starts gunicorn with the shipped gunicorn.conf.py (DEBUG=0, real secrets, persistent connections,
   bound to 127.0.0.1), the login pool as the shipped config defines it, and runs each scenario with
   wrk for a fixed time (bench/wrk.lua), then the CONN_MAX_AGE=0 and login-interference runs.

4. Starts the realtime process (daphne, as the Procfile does) and drives it from bench/sockets.py in a
   process of its own: SOCKETS idle authenticated sockets held until each got its ping (memory per
   socket from the server's RSS), then the poke latency from a push's response to the other devices'
   `changed` message with POKE_SOCKETS sockets open and the premium user's 16 devices pushing.
5. With --compare-ref REF: the pull and push rows again, A B B A against REF's code (git archive) on
   another port, as "after/before" ratios (the sync split of issue 18 must not cost more than 10 %).

Every throughput is compared with a bare Django JSON view behind the same middleware (bench/urls.py).
The numbers only mean something relative to each other on the same machine: close other load first.
Exit status 1 when a goal is missed.
"""

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WRK_SCRIPT = ROOT / "bench" / "wrk.lua"
sys.path.insert(0, str(ROOT))

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://root@127.0.0.1:5432/cf_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
# The web pool; the login pool listens on PORT + 1, the CONN_MAX_AGE=0 server on PORT + 2.
PORT = int(os.environ.get("BENCH_PORT", "8131"))
EMAIL_DOMAIN = "bench.chatfocus.invalid"
READERS = 16
SEEDED_KEYS = 50
PUSH_DEVICES = 16
BIG_DOCUMENT_KEYS = 2000
BIG_DOCUMENT_DEVICES = 4
LOGIN_USERS = 5
LOGIN_PASSWORD = "bench-correct-horse-battery"
# Premium users (50 devices: 100 sockets each) whose sockets the socket scenarios hold.
SOCKET_USERS = 100
SOCKETS = int(os.environ.get("BENCH_SOCKETS", "10000"))
POKE_SOCKETS = 1000
POKE_PUSHES = int(os.environ.get("BENCH_POKE_PUSHES", "40"))
# Secrets of this run, shared by the setup (which mints the tokens) and the servers.
RUN_SECRETS = {"SECRET_KEY": secrets.token_urlsafe(50), "JWT_SECRET": secrets.token_urlsafe(50)}


def server_environment(**overrides) -> dict:
    """The production configuration, pointed at the bench's database and Redis."""
    env = {key: value for key, value in os.environ.items() if key not in ("CONN_MAX_AGE", "DJANGO_SETTINGS_MODULE")}
    env.update(
        RUN_SECRETS,
        DJANGO_SETTINGS_MODULE="bench.settings",
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        # The login scenario logs in far more often than the production limit allows one address.
        RATE_LIMIT_LOGIN_IP="1000000/60",
        # Tokens minted at setup must outlive the whole run.
        JWT_EXPIRES_IN="2h",
    )
    env.update(overrides)
    return env


# --- Setup -------------------------------------------------------------------------------------


def create_database() -> None:
    import psycopg
    from psycopg import sql

    name = DATABASE_URL.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(DATABASE_URL.rsplit("/", 1)[0] + "/postgres", autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


@dataclass
class Fixtures:
    reader_tokens: list[str] = field(default_factory=list)
    pusher_tokens: list[str] = field(default_factory=list)
    push_devices: list[str] = field(default_factory=list)
    solo_pusher_tokens: list[str] = field(default_factory=list)
    solo_push_devices: list[str] = field(default_factory=list)
    big_document_tokens: list[str] = field(default_factory=list)
    big_document_devices: list[str] = field(default_factory=list)
    login_emails: list[str] = field(default_factory=list)
    socket_tokens: list[str] = field(default_factory=list)


def prepare() -> Fixtures:
    """Migrate, clean the previous run's users and create this run's, all in this process."""
    os.environ.update(server_environment())
    import django

    django.setup()
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from django_redis import get_redis_connection

    from accounts import services as accounts
    from accounts.models import User
    from analytics.models import Event
    from billing import services as billing
    from syncsettings import services as sync
    from syncsettings.validation import parse_push

    print("Migrating the bench database...", flush=True)
    call_command("migrate", interactive=False, verbosity=0)
    get_redis_connection("default").flushdb()
    old = User.objects.filter(email__endswith=f"@{EMAIL_DOMAIN}")
    Event.objects.filter(user_id__in=old.values("id")).delete()
    old.delete()

    fixtures = Fixtures()
    for index in range(READERS):
        user = User.objects.create_user(f"reader{index}@{EMAIL_DOMAIN}", name=f"Reader {index}")
        accounts.update_preferences(user=user, analytics_opt_in=True)
        now_ms = sync.server_time_ms()
        ops = [
            {
                "op_id": f"seed-{key}",
                "key": f"focusedContacts/contact{key}",
                "op": "set",
                "value": True,
                "hlc": f"{now_ms}-{key}",
            }
            for key in range(SEEDED_KEYS)
        ]
        device_id, parsed = parse_push({"device_id": "bench-seed", "ops": ops}, now_ms=now_ms)
        sync.push_changes(user=user, device_id=device_id, ops=parsed)
        fixtures.reader_tokens.append(accounts.issue_session_tokens(user=user, device_name="bench")[0])

    pusher = User.objects.create_user(f"pusher@{EMAIL_DOMAIN}", name="Premium pusher")
    billing.grant_comp_tier(
        user_id=pusher.id, tier="premium", until=datetime.now(UTC) + timedelta(days=365), granted_by=None
    )
    # One session per device, as each browser logs in on its own; wrk.lua pairs token i with device i.
    fixtures.push_devices = [f"bench-device-{index}" for index in range(PUSH_DEVICES)]
    fixtures.pusher_tokens = [
        accounts.issue_session_tokens(user=pusher, device_name=device)[0] for device in fixtures.push_devices
    ]

    # A large document (2,000 keys of ~1 KB): what a push costs must not grow with it.
    big = User.objects.create_user(f"big-document@{EMAIL_DOMAIN}", name="Large document")
    billing.grant_comp_tier(
        user_id=big.id, tier="premium", until=datetime.now(UTC) + timedelta(days=365), granted_by=None
    )
    for start in range(0, BIG_DOCUMENT_KEYS, 100):
        now_ms = sync.server_time_ms()
        ops = [
            {"op_id": f"big-{key}", "key": f"notes/n{key}", "op": "set", "value": "x" * 1000, "hlc": f"{now_ms}-{key}"}
            for key in range(start, start + 100)
        ]
        device_id, parsed = parse_push({"device_id": "bench-seed", "ops": ops}, now_ms=now_ms)
        sync.push_changes(user=big, device_id=device_id, ops=parsed)
    fixtures.big_document_devices = [f"bench-big-{index}" for index in range(BIG_DOCUMENT_DEVICES)]
    fixtures.big_document_tokens = [
        accounts.issue_session_tokens(user=big, device_name=device)[0] for device in fixtures.big_document_devices
    ]

    # The usual case: 16 users pushing at once, one device each (free tier, far below its quotas).
    for index in range(PUSH_DEVICES):
        solo = User.objects.create_user(f"solo-pusher{index}@{EMAIL_DOMAIN}", name=f"Pusher {index}")
        fixtures.solo_push_devices.append(f"bench-solo-{index}")
        fixtures.solo_pusher_tokens.append(
            accounts.issue_session_tokens(user=solo, device_name=fixtures.solo_push_devices[-1])[0]
        )

    # Idle sockets: premium users, one session each (a socket takes its session's access token).
    for index in range(SOCKET_USERS):
        holder = User.objects.create_user(f"sockets{index}@{EMAIL_DOMAIN}", name=f"Sockets {index}")
        billing.grant_comp_tier(
            user_id=holder.id, tier="premium", until=datetime.now(UTC) + timedelta(days=365), granted_by=None
        )
        fixtures.socket_tokens.append(accounts.issue_session_tokens(user=holder, device_name="bench sockets")[0])

    # One real hash at the production cost (BCryptSHA256, 12 rounds), shared by the login users.
    password_hash = make_password(LOGIN_PASSWORD)
    for index in range(LOGIN_USERS):
        email = f"login{index}@{EMAIL_DOMAIN}"
        User.objects.create_user(email, name=f"Login {index}")
        User.objects.filter(email=email).update(password=password_hash)
        fixtures.login_emails.append(email)
    return fixtures


# --- Servers -----------------------------------------------------------------------------------


def check_ports_free(ports) -> None:
    """Another server on a bench port would answer the readiness check in the bench server's place."""
    for port in ports:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                raise SystemExit(f"Port {port} is already in use: stop that server or set BENCH_PORT.")


class Server:
    """A gunicorn started with the shipped config; stopped (SIGTERM to its master) on exit."""

    def __init__(self, name: str, port: int, root: Path = ROOT, **env):
        self.name, self.port = name, port
        self.log_path = RESULTS / f"gunicorn-{name}.log"
        command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"]
        self.process = self.popen([*command, "chatfocus.wsgi"], root, env)

    def popen(self, command: list[str], root: Path, env: dict) -> subprocess.Popen:
        return subprocess.Popen(
            command,
            cwd=root,
            env=server_environment(PROMETHEUS_MULTIPROC_DIR=str(RESULTS / f"prometheus-{self.name}"), **env),
            stdout=self.log_path.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn ({self.name}) exited; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise SystemExit(f"gunicorn ({self.name}) did not answer /readyz within {timeout} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class RealtimeServer(Server):
    """The realtime process as the Procfile runs it (daphne), on its own port."""

    def __init__(self, port: int):
        self.name, self.port = "realtime", port
        self.log_path = RESULTS / "daphne-realtime.log"
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "chatfocus.asgi:application"]
        self.process = self.popen(command, ROOT, {})

    def rss_kb(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


def export_tree(ref: str) -> Path:
    """REF's files (git archive) in a directory of the results, to run its code beside this one."""
    target = RESULTS / f"tree-{ref.replace('/', '-').replace('~', '_')}"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


# --- wrk ---------------------------------------------------------------------------------------


def lua_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid Lua string escapes for this input
    if isinstance(value, list):
        return "{" + ", ".join(lua_value(item) for item in value) + "}"
    raise TypeError(value)


@dataclass
class Load:
    """One wrk run's parameters; `config` becomes the Lua table bench/wrk.lua reads."""

    name: str
    method: str
    paths: list[str]
    tokens: list[str] | None = None
    connections: int = 16
    threads: int = 2
    timeout: str = "5s"
    extra: dict = field(default_factory=dict)

    def config_file(self) -> Path:
        config = {"method": self.method, "paths": self.paths, **self.extra}
        if self.tokens:
            config["tokens"] = self.tokens
        path = RESULTS / f"load-{self.name.replace(' ', '-').replace('/', '-')}.lua"
        path.write_text(
            "return {\n" + "".join(f"  {key} = {lua_value(value)},\n" for key, value in config.items()) + "}\n"
        )
        return path

    def start(self, *, port: int, seconds: float) -> subprocess.Popen:
        command = [
            "wrk",
            f"-t{self.threads}",
            f"-c{self.connections}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={self.timeout}",
            "-s",
            str(WRK_SCRIPT),
            f"http://127.0.0.1:{port}",
            "--",
            str(self.config_file()),
        ]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@dataclass
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def finish(process: subprocess.Popen) -> Result:
    output, _ = process.communicate()
    line = next((line for line in output.splitlines() if line.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no result:\n{output}")
    data = json.loads(line.removeprefix("BENCH_RESULT "))
    return Result(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        statuses=data["statuses"],
        errors=data["non2xx"] + sum(data["socket_errors"].values()),
    )


def measure(load: Load, *, port: int, seconds: float, warmup: float) -> Result:
    if warmup:
        finish(load.start(port=port, seconds=warmup))
    return finish(load.start(port=port, seconds=seconds))


# --- Scenarios and goals -----------------------------------------------------------------------


@dataclass
class Scenario:
    load: Load
    goal: str
    min_ratio: float | None = None
    max_p99_ms: float | None = None


def push_scenario(name: str, tokens: list[str], devices: list[str]) -> Scenario:
    """Each connection pushes 5 sets at a time for its own device (token i goes with device i)."""
    load = Load(
        name,
        "POST",
        ["/api/sync/push"],
        tokens,
        connections=len(devices),
        extra={"body": "push", "devices": devices, "ops_per_push": 5, "keys_per_device": 20},
    )
    return Scenario(load, "p99 ≤ 100 ms", max_p99_ms=100)


def scenarios(fixtures: Fixtures) -> list[Scenario]:
    readers = fixtures.reader_tokens
    return [
        Scenario(Load("baseline", "GET", ["/api/bench/baseline"]), "0 errors"),
        Scenario(Load("users/me", "GET", ["/api/users/me"], readers), "≥ 0.4× baseline", min_ratio=0.4),
        Scenario(Load("subscriptions", "GET", ["/api/subscriptions"], readers), "≥ 0.4× baseline", min_ratio=0.4),
        Scenario(
            Load("sync pull idle", "GET", [f"/api/sync/pull?since={SEEDED_KEYS}"], readers),
            "≥ 0.5× baseline",
            min_ratio=0.5,
        ),
        Scenario(
            Load(f"sync pull {SEEDED_KEYS} changes", "GET", ["/api/sync/pull?since=0"], readers),
            "≥ 0.3× baseline",
            min_ratio=0.3,
        ),
        push_scenario("sync push (16 users)", fixtures.solo_pusher_tokens, fixtures.solo_push_devices),
        push_scenario("sync push (16 devices of 1 user)", fixtures.pusher_tokens, fixtures.push_devices),
        push_scenario(
            "sync push (2 MB document, 4 devices)", fixtures.big_document_tokens, fixtures.big_document_devices
        ),
        Scenario(
            Load(
                "analytics ingest (20 events)",
                "POST",
                ["/api/analytics/events"],
                readers,
                extra={"body": "events", "events_per_batch": 20},
            ),
            "0 errors",
        ),
    ]


def login_load(fixtures: Fixtures) -> Load:
    return Load(
        "logins",
        "POST",
        ["/api/auth/login"],
        connections=LOGIN_USERS,
        threads=1,
        timeout="60s",
        extra={"body": "login", "emails": fixtures.login_emails, "password": LOGIN_PASSWORD},
    )


def ratio_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def print_table(rows: list[list[str]]) -> None:
    header = ["scenario", "req/s", "p50 ms", "p99 ms", "errors", "vs baseline", "goal", "met?"]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for index, row in enumerate([header, *rows]):
        print(
            "  ".join(
                str(cell).rjust(width) if 0 < i < 6 else str(cell).ljust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if index == 0:
            print("  ".join("-" * width for width in widths))


def machine_facts() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    load = os.getloadavg()
    return f"{os.cpu_count()} CPUs ({model}), load average before the run {load[0]:.2f}"


def combined(results: list[Result]) -> Result:
    """Several runs of one load as one: throughput over the total time, latency percentiles averaged."""
    statuses: dict[str, int] = {}
    for result in results:
        for status, count in result.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    return Result(
        requests=sum(r.requests for r in results),
        seconds=sum(r.seconds for r in results),
        p50_ms=sum(r.p50_ms for r in results) / len(results),
        p99_ms=sum(r.p99_ms for r in results) / len(results),
        statuses=statuses,
        errors=sum(r.errors for r in results),
    )


def table_row(scenario: Scenario, result: Result, baseline: Result) -> tuple[list[str], bool]:
    ratio = result.rps / baseline.rps if baseline.rps else None
    met = result.errors == 0
    if scenario.min_ratio is not None:
        met = met and ratio is not None and ratio >= scenario.min_ratio
    if scenario.max_p99_ms is not None:
        met = met and result.p99_ms <= scenario.max_p99_ms
    goal = scenario.goal + ", 0 errors" * (scenario.goal != "0 errors")
    return [
        scenario.load.name,
        f"{result.rps:.0f}",
        f"{result.p50_ms:.1f}",
        f"{result.p99_ms:.1f}",
        str(result.errors),
        ratio_text(ratio),
        goal,
        "yes" if met else "NO",
    ], met


def socket_client(mode: str, config: dict) -> subprocess.Popen:
    path = RESULTS / f"sockets-{mode}.json"
    path.write_text(json.dumps(config))
    return subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "sockets.py"), mode, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def bench_result(process: subprocess.Popen) -> dict:
    for line in process.stdout:
        if line.startswith("BENCH_RESULT "):
            return json.loads(line.removeprefix("BENCH_RESULT "))
        print(line, end="", flush=True)
    raise SystemExit("bench/sockets.py printed no result")


def socket_spread(tokens: list[str], total: int) -> list[list]:
    """[access, device id, sockets] rows spreading `total` sockets over the users (100 at most each)."""
    rows, left = [], total
    for index, token in enumerate(tokens):
        count = min(100, left)
        if count:
            rows.append([token, f"bench-socket-{index}", count])
        left -= count
    return rows


def idle_sockets_row(fixtures: Fixtures, realtime: RealtimeServer) -> tuple[list[str], bool, str]:
    url = f"ws://127.0.0.1:{realtime.port}/ws/sync"
    # A few sockets first, so the baseline memory includes everything a socket's first use loads.
    warm = socket_client("idle", {"url": url, "tokens": socket_spread(fixtures.socket_tokens[-1:], 5), "ping_wait": 30})
    bench_result(warm)
    warm.communicate("\n")
    before = realtime.rss_kb()
    client = socket_client(
        "idle", {"url": url, "tokens": socket_spread(fixtures.socket_tokens, SOCKETS), "ping_wait": 60}
    )
    result = bench_result(client)
    after = realtime.rss_kb()
    client.communicate("\n")
    per_socket = (after - before) / max(result["opened"], 1)
    errors = result["failures"] + (result["opened"] - result["pinged"]) + (result["opened"] - result["open_at_end"])
    met = result["opened"] >= 10_000 and errors == 0 and per_socket <= 64
    row = [
        f"idle sockets ({SOCKETS:,}, pings)",
        "—",
        "—",
        "—",
        str(errors),
        "—",
        "≥ 10,000 open and pinged, ≤ 64 KB RSS each",
        "yes" if met else "NO",
    ]
    note = (
        f"Idle sockets: {result['opened']:,} authenticated in {result['connect_seconds']:.0f} s, {result['pinged']:,} "
        f"got their ping, {result['open_at_end']:,} still open; realtime process RSS {before / 1024:.0f} MB → "
        f"{after / 1024:.0f} MB = {per_socket:.1f} KB per socket."
    )
    return row, met, note


def pokes_row(fixtures: Fixtures, realtime: RealtimeServer) -> tuple[list[str], bool, str]:
    idle = POKE_SOCKETS - len(fixtures.pusher_tokens)
    config = {
        "url": f"ws://127.0.0.1:{realtime.port}/ws/sync",
        "tokens": socket_spread(fixtures.socket_tokens, idle),
        "api": f"http://127.0.0.1:{PORT}",
        "pushers": [list(pair) for pair in zip(fixtures.pusher_tokens, fixtures.push_devices, strict=True)],
        "pushes": POKE_PUSHES,
        "settle": 30,
    }
    result = bench_result(socket_client("pokes", config))
    errors = result["failures"] + result["push_errors"] + result["lost"] + result["pokes_to_pusher"]
    met = errors == 0 and result["p99_ms"] is not None and result["p99_ms"] <= 100
    row = [
        f"pokes ({POKE_SOCKETS:,} sockets, 16 devices push)",
        f"{result['pushes_per_s']:.0f}",
        f"{result['p50_ms']:.1f}" if result["p50_ms"] is not None else "—",
        f"{result['p99_ms']:.1f}" if result["p99_ms"] is not None else "—",
        str(errors),
        "—",
        "p99 ≤ 100 ms, 0 lost",
        "yes" if met else "NO",
    ]
    note = (
        f"Pokes: {result['pushes']} pushes from 16 devices, {result['pokes_received']:,} of "
        f"{result['pokes_expected']:,} pokes received ({result['lost']} lost, {result['pokes_to_pusher']} to the "
        f"pusher), push response → other device's message p50 {result['p50_ms']:.1f} ms, "
        f"p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms (req/s column: pushes per second)."
        + (
            f" {result['failures']} idle sockets failed to open: {result['failure_sample']}."
            if result["failures"]
            else ""
        )
        + ("" if result["warmed_up"] else " A warm-up poke never came: the device sockets joined late.")
    )
    return row, met, note


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--seconds",
        type=float,
        default=float(os.environ.get("BENCH_SECONDS", "10")),
        help="measured seconds per scenario (env BENCH_SECONDS, default 10)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=float(os.environ.get("BENCH_WARMUP", "1")),
        help="unmeasured seconds before each run (env BENCH_WARMUP, default 1)",
    )
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="scenario names (substrings) to run besides the baseline; skips the comparison runs",
    )
    parser.add_argument(
        "--compare-ref",
        default=os.environ.get("BENCH_COMPARE_REF"),
        help="a git ref whose code runs the pull and push rows again, A B B A (env BENCH_COMPARE_REF)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk (make bench installs it when run as root).")
    check_ports_free([PORT, PORT + 1, PORT + 2, PORT + 3, PORT + 4])
    RESULTS.mkdir(parents=True, exist_ok=True)
    facts = machine_facts()
    create_database()
    fixtures = prepare()
    selected = scenarios(fixtures)
    if args.only is not None:
        selected = [s for s in selected if s.load.name == "baseline" or any(o in s.load.name for o in args.only)]

    def run(load: Load, port: int = PORT, seconds: float = args.seconds) -> Result:
        print(f"Running {load.name} on :{port} for {seconds:g} s...", flush=True)
        return measure(load, port=port, seconds=seconds, warmup=args.warmup)

    servers = []
    try:
        # The servers that wait while another is measured only sleep in accept().
        web, login_pool = Server("web", PORT), Server("login", PORT + 1, GUNICORN_POOL="login")
        servers += [web, login_pool]
        if args.only is None:
            servers.append(Server("conn-max-age-0", PORT + 2, CONN_MAX_AGE="0"))
        realtime = RealtimeServer(PORT + 3)
        servers.append(realtime)
        if args.compare_ref:
            before = Server("before", PORT + 4, root=export_tree(args.compare_ref))
            servers.append(before)
        for server in servers:
            server.wait_ready()

        # The baseline runs first and last: the ratios use both, so a drift in machine load evens out.
        first_baseline = run(selected[0].load)
        results = {scenario.load.name: run(scenario.load) for scenario in selected[1:]}
        baseline = combined([first_baseline, run(selected[0].load)])
        results = {"baseline": baseline, **results}
        table, missed = [], []
        for scenario in selected:
            row, met = table_row(scenario, results[scenario.load.name], baseline)
            table.append(row)
            if not met:
                missed.append(scenario.load.name)

        extra_lines = []
        for name, row_of in (("sockets", idle_sockets_row), ("pokes", pokes_row)):
            if args.only is None or any(o in name for o in args.only):
                print(f"Running {name} on :{realtime.port}...", flush=True)
                row, met, note = row_of(fixtures, realtime)
                table.append(row)
                extra_lines.append(note)
                if not met:
                    missed.append(name)

        if args.compare_ref:
            half = max(1.0, args.seconds / 2)
            for scenario in selected:
                if not scenario.load.name.startswith("sync p"):
                    continue
                # A B B A: the same load on REF's code and on this code, alternating.
                before_runs = [run(scenario.load, PORT + 4, half)]
                after_runs = [run(scenario.load, PORT, half), run(scenario.load, PORT, half)]
                before_runs.append(run(scenario.load, PORT + 4, half))
                old, new = combined(before_runs), combined(after_runs)
                ratio = new.rps / old.rps if old.rps else 0
                ok = ratio >= 0.9 and new.errors == 0 and old.errors == 0
                if not ok:
                    missed.append(f"{scenario.load.name} vs {args.compare_ref}")
                extra_lines.append(
                    f"{scenario.load.name}, this code vs {args.compare_ref} (A B B A): {new.rps:.0f} vs "
                    f"{old.rps:.0f} req/s = {ratio:.2f}× (goal ≥ 0.90×: {'yes' if ok else 'NO'}), p99 "
                    f"{new.p99_ms:.1f} vs {old.p99_ms:.1f} ms, errors {new.errors}/{old.errors}."
                )

        if args.only is None:
            half = max(1.0, args.seconds / 2)
            # Each comparison runs A B B A in halves, so a drift in machine load weighs on both sides alike.
            read = next(s.load for s in selected if s.load.name.endswith("changes"))
            pooled_runs = [run(read, PORT, half)]
            per_request_runs = [run(read, PORT + 2, half), run(read, PORT + 2, half)]
            pooled_runs.append(run(read, PORT, half))
            pooled, per_request = combined(pooled_runs), combined(per_request_runs)
            extra_lines.append(
                f"Persistent connections ({read.name}): CONN_MAX_AGE=60 {pooled.rps:.0f} req/s, "
                f"CONN_MAX_AGE=0 {per_request.rps:.0f} req/s ({per_request.errors} errors): persistent is "
                f"{pooled.rps / per_request.rps:.2f}× the throughput."
            )

            pull = next(s.load for s in selected if s.load.name == "sync pull idle")
            alone_runs = [run(pull, PORT, half)]
            print("Starting 5 concurrent logins on the login pool...", flush=True)
            logins = login_load(fixtures).start(port=PORT + 1, seconds=2 * (half + args.warmup) + 3)
            time.sleep(1)  # logins under way before the measured pulls start
            with_runs = [run(pull, PORT, half), run(pull, PORT, half)]
            login_result = finish(logins)
            alone_runs.append(run(pull, PORT, half))
            alone, with_logins = combined(alone_runs), combined(with_runs)
            increase = with_logins.p99_ms / alone.p99_ms if alone.p99_ms else float("inf")
            met = increase <= 1.2 and alone.errors == 0 and with_logins.errors == 0 and login_result.errors == 0
            if not met:
                missed.append("logins beside sync")
            extra_lines.append(
                f"Logins beside sync (idle pulls, 16 connections; 5 concurrent bcrypt logins on the login pool): "
                f"pull p99 {alone.p99_ms:.1f} ms alone, {with_logins.p99_ms:.1f} ms with logins = "
                f"{increase:.2f}× (goal ≤ 1.20×: {'yes' if met else 'NO'}); pull {alone.rps:.0f} → "
                f"{with_logins.rps:.0f} req/s; logins {login_result.rps:.1f}/s, p50 {login_result.p50_ms:.0f} ms, "
                f"p99 {login_result.p99_ms:.0f} ms, {login_result.errors} errors."
            )
    finally:
        for server in servers:
            server.stop()

    print()
    facts += f", after it {os.getloadavg()[0]:.2f}"
    print(f"Machine: {facts}; {args.seconds:g} s per scenario, 16 connections, gunicorn.conf.py defaults.")
    print_table(table)
    for line in extra_lines:
        print(line)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"bench-{stamp}.json").write_text(
        json.dumps({"machine": facts, "table": table, "extra": extra_lines, "missed": missed}, indent=2)
    )
    if missed:
        print(f"Goals missed: {', '.join(missed)}")
        return 1
    print("All goals met.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
