"""Deploy readiness: the image, the release phase and gunicorn as they ship (no Docker engine needed)."""

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

from chatfocus.tests.test_project import PROD_ENV, ROOT


def free_port() -> int:
    """A port the OS has just handed out: tests never pick fixed ones (parallel runs, busy CI hosts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def dockerfile_instructions():
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def procfile():
    return dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if ":" in line)


def test_docker_image_is_slim_and_runs_as_non_root():
    instructions = dockerfile_instructions()
    assert ("ARG", "PYTHON_IMAGE=python:3.11.14-slim-bookworm") in instructions
    users = [arg for op, arg in instructions if op == "USER"]
    assert users and users[-1] not in {"root", "0"}


def test_procfile_release_phase_migrates_and_refuses_an_unsafe_config():
    release = procfile()["release"]
    assert "migrate --noinput" in release
    assert "check --deploy --fail-level WARNING" in release
    assert "&&" in release  # any failing step stops the release
    assert procfile()["web"].split()[0] == "gunicorn"


def test_gunicorn_config_is_sane():
    config = {}
    exec((ROOT / "gunicorn.conf.py").read_text(), config)
    assert config["worker_class"] == "sync"
    assert 10 <= config["timeout"] <= 60
    assert 10 <= config["graceful_timeout"] <= config["timeout"]
    # Recycling, spread out: a jitter as wide as the period keeps workers from restarting together.
    assert config["max_requests"] > 0 and config["max_requests_jitter"] >= config["max_requests"]
    assert config["control_socket_disable"] is True


def wait_until_serving(port, process, seconds=20):
    """Wait for an answer, not just a listening socket: the arbiter listens before its worker boots."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Proto: https\r\n\r\n")
                if conn.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"gunicorn did not serve on {port}")


@pytest.fixture
def gunicorn_server():
    port = free_port()
    env = {**os.environ, **PROD_ENV, "PORT": str(port), "WEB_CONCURRENCY": "1", "REDIS_URL": ""}
    env["ALLOWED_HOSTS"] = "api.chatfocus.app,127.0.0.1,localhost"
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "chatfocus.wsgi",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_serving(port, process)
        yield process, env
    finally:
        # SIGTERM, not SIGKILL: a killed arbiter leaves its worker listening on the port.
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=35)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_docker_healthcheck_command_passes_against_gunicorn(gunicorn_server):
    _, env = gunicorn_server
    healthcheck = next(arg for op, arg in dockerfile_instructions() if op == "HEALTHCHECK")
    assert "/healthz" in healthcheck
    command = shlex.split(re.sub(r"^.*?\bCMD\s+", "", healthcheck))
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr


def test_gunicorn_finishes_the_request_in_flight_on_sigterm(gunicorn_server):
    process, env = gunicorn_server
    request = b"GET /healthz HTTP/1.1\r\nHost: api.chatfocus.app\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n"
    with socket.create_connection(("127.0.0.1", int(env["PORT"])), timeout=10) as conn:
        conn.sendall(request)  # the request is half sent: the worker is busy with it
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        conn.sendall(b"\r\n")
        response = b""
        while chunk := conn.recv(65536):
            response += chunk
    assert response.startswith(b"HTTP/1.1 200"), response[:200]
    assert b'"status":"ok"' in response.replace(b" ", b"")
    assert process.wait(timeout=35) == 0


def test_the_compose_web_healthcheck_passes_against_the_procfile_web_process(gunicorn_server):
    """The compose web healthcheck, run outside a container against gunicorn as the Procfile starts it."""
    _, env = gunicorn_server
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    command = services["web"]["healthcheck"]["test"][1:]
    command = [part.replace(":8000/", f":{env['PORT']}/") for part in command]
    result = subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
