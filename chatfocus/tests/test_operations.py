"""How the project installs, builds and runs: locks, image, compose, Procfile, make, lint and env (no Docker needed)."""

import ast
import importlib.metadata
import re
import shlex
import subprocess
import sys

import pytest
import yaml

from chatfocus.tests.test_project import ROOT

REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)", re.M)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path) -> dict[str, str]:
    return {canonical(name): version for name, _, version in REQUIREMENT.findall((ROOT / path).read_text())}


def lock_entries(path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a hashed lock (continuation lines joined)."""
    text = (ROOT / path).read_text().replace("\\\n", " ")
    entries = {}
    for line in text.splitlines():
        match = REQUIREMENT.match(line)
        if match:
            entries[canonical(match.group(1))] = (match.group(3), re.findall(r"--hash=sha256:([0-9a-f]{64})", line))
    return entries


# --- 1. Reproducible installs ---------------------------------------------------------------


@pytest.mark.parametrize("lock", ["requirements.txt", "requirements-dev.txt"])
def test_every_locked_package_is_pinned_with_hashes(lock):
    entries = lock_entries(lock)
    assert len(entries) > 30
    unhashed = [name for name, (_, hashes) in entries.items() if not hashes]
    assert not unhashed
    requirement_lines = [line for line in (ROOT / lock).read_text().splitlines() if line and line[0].isalnum()]
    assert all(REQUIREMENT.match(line) for line in requirement_lines), "every entry pinned with =="
    # Locked for the production platform: the compile command names it, and the header says how to redo it.
    assert "make lock" in (ROOT / lock).read_text().splitlines()[1]


def test_locks_agree_with_the_direct_requirements_and_each_other():
    runtime, dev = lock_entries("requirements.txt"), lock_entries("requirements-dev.txt")
    for name, version in pins("requirements.in").items():
        assert runtime[name][0] == version, f"{name}: requirements.in says {version}, run `make lock`"
    for name, version in pins("requirements-dev.in").items():
        assert dev[name][0] == version, f"{name}: requirements-dev.in says {version}, run `make lock`"
    # The dev lock is the runtime lock plus the tools: same versions, same hashes.
    assert {name: dev[name] for name in runtime} == runtime


def test_the_environment_runs_the_locked_versions():
    lock = lock_entries("requirements-dev.txt")
    installed = {name: importlib.metadata.version(name) for name in lock}
    assert installed == {name: version for name, (version, _) in lock.items()}


def imported_distributions(paths) -> set[str]:
    by_module = importlib.metadata.packages_distributions()
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names:
                    found.update(canonical(name) for name in by_module.get(top, []))
    return found


def test_every_package_the_code_imports_is_a_direct_requirement():
    sources = [path for path in ROOT.rglob("*.py") if not {".venv", "node_modules"} & set(path.relative_to(ROOT).parts)]

    def is_test_or_tool(path):
        parts = path.relative_to(ROOT).parts
        return "tests" in parts or parts[0] in {"bench", "conftest.py"}

    runtime = imported_distributions(path for path in sources if not is_test_or_tool(path))
    everything = imported_distributions(sources)
    direct_runtime, direct_dev = set(pins("requirements.in")), set(pins("requirements-dev.in"))
    assert {"kombu", "prometheus-client", "celery"} <= runtime
    assert runtime - direct_runtime == set()
    assert everything - direct_runtime - direct_dev == set()


def make_dry_run(*targets) -> str:
    result = subprocess.run(
        ["make", "--always-make", "--dry-run", *targets], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_installs_from_the_hashed_locks_and_one_command_rewrites_them():
    installs = [line for line in make_dry_run("install-dev", "install").splitlines() if "pip install" in line]
    assert installs and all("--require-hashes" in line for line in installs)
    assert {shlex.split(line)[-1] for line in installs} == {"requirements.txt", "requirements-dev.txt"}
    lock = make_dry_run("lock")
    compiles = [line for line in lock.splitlines() if "uv pip compile" in line]
    assert len(compiles) == 2 and all("--generate-hashes" in line for line in compiles)
    assert "requirements.in -o requirements.txt" in compiles[0]
    assert "requirements-dev.in --constraint requirements.txt -o requirements-dev.txt" in compiles[1]
    assert f"uv=={pins('requirements-dev.in')['uv']}" in lock


def test_unused_dev_dependencies_are_gone():
    assert "pytest-xdist" not in pins("requirements-dev.in")
    assert "pytest-xdist" not in lock_entries("requirements-dev.txt")


# --- 2. Docker image and compose ------------------------------------------------------------


def dockerfile_instructions():
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_image_is_multi_stage_from_a_pinned_base_and_installs_the_lock_with_hashes():
    instructions = dockerfile_instructions()
    (base,) = [arg for op, arg in instructions if op == "ARG" and arg.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+", base)
    stages = [arg for op, arg in instructions if op == "FROM"]
    assert stages == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]
    runtime = instructions[[op for op, _ in instructions].index("FROM", 4) :]
    install = next(arg for op, arg in instructions if op == "RUN" and "pip install" in arg)
    assert "--require-hashes" in install and "-r /tmp/requirements.txt" in install
    # The runtime stage gets the built virtualenv and the app owned by the runtime user, and runs as that user.
    assert ("USER", "chatfocus") in runtime
    assert any(op == "COPY" and arg.startswith("--from=build --chown=chatfocus:chatfocus") for op, arg in runtime)
    assert not any(op == "RUN" and "pip install" in arg for op, arg in runtime)
    env = " ".join(arg for op, arg in runtime if op == "ENV")
    assert "CELERY_BEAT_SCHEDULE_FILENAME=/tmp/" in env
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", ".git", "**/node_modules"} <= set(ignored)


def procfile() -> dict[str, str]:
    return {
        name.strip(): command.strip()
        for name, command in (line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line)
    }


def test_procfile_runs_beat_as_its_own_process():
    processes = procfile()
    assert {"web", "login", "worker", "beat", "release"} <= set(processes)
    assert shlex.split(processes["beat"])[:4] == ["celery", "-A", "chatfocus", "beat"]
    assert shlex.split(processes["worker"])[:4] == ["celery", "-A", "chatfocus", "worker"]
    # A worker with --beat (-B) would run one more scheduler per worker dyno.
    assert not {"--beat", "-B"} & set(shlex.split(processes["worker"]))


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_every_process_with_its_procfile_command(compose):
    services = compose["services"]
    assert {"web", "login", "worker", "beat", "realtime", "release", "postgres", "redis", "mailpit"} <= set(services)
    processes = procfile()
    for name in ("web", "worker", "beat"):
        assert services[name]["command"] == shlex.split(processes[name]), name
    assert services["login"]["command"] == shlex.split(processes["login"])[1:]
    assert services["login"]["environment"]["GUNICORN_POOL"] == "login"
    assert services["realtime"]["command"][:1] in (["daphne"], ["uvicorn"])
    assert "chatfocus.asgi:application" in services["realtime"]["command"]
    release = services["release"]["command"][-1]
    assert "migrate --noinput" in release and "billing_webhook_endpoint" in release
    assert services["release"]["restart"] == "no"
    assert services["beat"]["deploy"]["replicas"] == 1


def test_compose_app_services_share_the_env_and_wait_for_their_dependencies(compose):
    services = compose["services"]
    for name in ("web", "login", "realtime", "worker", "beat", "release"):
        service = services[name]
        assert service["env_file"] == ".env" and service["build"] == "."
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["EMAIL_HOST"] == "mailpit"
        depends = service["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        if name != "release":
            assert depends["release"]["condition"] == "service_completed_successfully"
    assert services["worker"]["depends_on"]["mailpit"]["condition"] == "service_started"
    assert (ROOT / ".env.example").is_file()


def test_compose_healthchecks_probe_the_web_processes_only(compose):
    services = compose["services"]
    for name in ("web", "login", "realtime", "postgres", "redis", "mailpit", "prometheus", "grafana"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    for name in ("worker", "beat", "release"):
        assert services[name]["healthcheck"] == {"disable": True}, name
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    assert "8001/healthz" in " ".join(services["login"]["healthcheck"]["test"])
    for name, service in services.items():
        image = service.get("image", "")
        if name not in {"web", "login", "realtime", "worker", "beat", "release"}:
            assert re.search(r":v?\d+\.\d+", image), f"{name} pins its image tag"


def test_compose_provisions_prometheus_and_grafana_from_deploy(compose):
    services = compose["services"]
    for service in ("prometheus", "grafana"):
        for volume in services[service]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    prometheus_config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    (job,) = prometheus_config["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["web:8000"]
    assert job["authorization"]["credentials_file"] == "/prometheus/metrics_token"
    assert "$$METRICS_TOKEN" in services["prometheus"]["command"][0]
    assert "web" in services["web"]["environment"]["ALLOWED_HOSTS"].split(",")


# --- 8. Developer comfort -------------------------------------------------------------------


def test_make_targets_run_the_procfile_processes():
    for target, process in (("start", "web"), ("worker", "worker"), ("beat", "beat")):
        assert f"sed -n 's/^{process}: //p' Procfile" in make_dry_run(target), target
    build = make_dry_run("build")
    assert "collectstatic --noinput" in build and "manage.py check" in build and "makemigrations --check" in build
    assert "manage.py shell" in make_dry_run("shell")


def test_ci_lints_before_testing_with_the_tools_pre_commit_runs():
    steps = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line.startswith("make ")]
    assert steps == ["make lint", "make test"]
    lint = make_dry_run("lint")
    assert "ruff check ." in lint and "ruff format --check ." in lint and "django-upgrade --target-version 5.2" in lint
    hooks = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"]
    revs = {repo["repo"].rsplit("/", 1)[1]: repo["rev"].lstrip("v") for repo in hooks}
    dev = pins("requirements-dev.in")
    assert revs["ruff-pre-commit"] == dev["ruff"] and revs["django-upgrade"] == dev["django-upgrade"]
    (upgrade,) = [hook for repo in hooks for hook in repo["hooks"] if hook["id"] == "django-upgrade"]
    assert " ".join(upgrade["args"]) in lint


ENV_READ = re.compile(
    r"""\b(?:env(?:\.\w+)?\(|os\.environ\.get\(|os\.environ\[|os\.getenv\()\s*["']([A-Z][A-Z0-9_]+)["']"""
)


def test_env_example_lists_every_variable_the_code_reads():
    read = {}
    for path in [*ROOT.glob("*.py"), *ROOT.glob("*/**/*.py")]:
        parts = path.relative_to(ROOT).parts
        if {".venv", "node_modules", "tests", "bench"} & set(parts) or path.name == "conftest.py":
            continue
        for name in ENV_READ.findall(path.read_text()):
            read.setdefault(name, str(path.relative_to(ROOT)))
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert {"SECRET_KEY", "WEBHOOK_PAYLOAD_RETENTION_DAYS", "GUNICORN_POOL"} <= set(read)
    assert {name: path for name, path in read.items() if name not in listed} == {}


# --- 9. A suite that cannot flake -----------------------------------------------------------


def test_an_exception_in_a_test_thread_fails_the_test(tmp_path):
    (tmp_path / "test_probe.py").write_text(
        "import threading\n\n\ndef test_probe():\n"
        "    thread = threading.Thread(target=lambda: 1 / 0)\n    thread.start()\n    thread.join()\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pytest.ini"), "--rootdir", str(tmp_path)]
        + ["-p", "no:cacheprovider", "-q", str(tmp_path / "test_probe.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed" in result.stdout and "ZeroDivisionError" in result.stdout


def test_no_test_binds_a_fixed_port():
    fixed = re.compile(r"(?:PORT\w*\s*=\s*\(?\s*8\d{3}|127\.0\.0\.1:8\d{3}|bind\(\(\"127\.0\.0\.1\", 8\d{3})")
    offenders = [
        str(path.relative_to(ROOT))
        for path in ROOT.glob("*/tests/*.py")
        if fixed.search(path.read_text()) and path.name != "test_operations.py"
    ]
    assert offenders == []
