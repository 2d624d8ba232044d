"""The login pool as gunicorn.conf.py ships it: a second server whose workers yield the CPU to the web pool."""

import os
import subprocess
import sys
from pathlib import Path

from chatfocus.tests.test_deploy import free_port, wait_until_serving
from chatfocus.tests.test_project import PROD_ENV, ROOT


def start_pool(pool: str, port: int, metrics_dir: Path) -> subprocess.Popen:
    env = {**os.environ, **PROD_ENV, "REDIS_URL": "", "GUNICORN_POOL": pool}
    env.update(ALLOWED_HOSTS="127.0.0.1", WEB_CONCURRENCY="1", LOGIN_CONCURRENCY="1")
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"]
    return subprocess.Popen(
        [*command, "chatfocus.wsgi"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def nice_of(pid: int) -> int:
    # /proc/<pid>/stat: the 19th field is the nice value; the command name before it may hold spaces.
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def autogroup_of(pid: int) -> str:
    # "/autogroup-<id> nice <n>": the CPU group of the process's session (Linux with autogroups). A process in
    # the kernel's root group (a runner started without a session of its own, as CI's is) reads an empty file.
    return Path(f"/proc/{pid}/autogroup").read_text().strip() or "/ nice 0"


def worker_pids(master: subprocess.Popen) -> list[int]:
    children = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
    return [int(pid) for pid in children]


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
    process.wait(timeout=35)


def test_login_pool_workers_run_at_lower_cpu_priority_than_web_workers(tmp_path):
    metrics_dir = tmp_path / "prometheus"
    web_port, login_port = free_port(), free_port()
    # Started together and sharing the metrics directory, as a deploy starts them.
    web = start_pool("web", web_port, metrics_dir)
    login = start_pool("login", login_port, metrics_dir)
    try:
        wait_until_serving(web_port, web)
        wait_until_serving(login_port, login)
        (web_worker,), (login_worker,) = worker_pids(web), worker_pids(login)
        assert nice_of(web_worker) == nice_of(os.getpid())
        assert nice_of(login_worker) == 19
        assert os.sched_getscheduler(login_worker) == os.SCHED_IDLE
        assert os.sched_getscheduler(web_worker) == os.SCHED_OTHER
        # Nice only ranks processes within one CPU group: the login worker has a group of its own, at nice 19.
        assert autogroup_of(login_worker).endswith(" nice 19")
        assert autogroup_of(login_worker).split()[0] != autogroup_of(web_worker).split()[0]
    finally:
        stop(web)
        stop(login)
    assert web.returncode == 0 and login.returncode == 0, login.stderr.read() + web.stderr.read()
