"""What a study's local Ray instance exposes and leaves behind, watched from outside on real processes:
every socket the driver and its descendants listen on is a loopback one, and after a SIGKILL of the
driver no process of its Ray instance keeps running."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import cheap_unless_asked, sqlite_uri

try:
    import psutil
except ImportError:   # Ray vendors psutil; importing ray puts its copy on sys.path
    import ray  # noqa: F401
    import psutil

pytestmark = pytest.mark.slow   # Ray studies, and waits for processes to end

# Three subsets and no registry: the least study that still runs Ray's trials, probes and model store.
RAY_STUDY = ["study", "--domain", "toy", "--budget", "smoke", "--n-subsets", "3", "--no-register", "--executor", "ray",
             "--json"]


def _popen_cli(args: list[str], cwd: Path, **kwargs) -> subprocess.Popen:
    """``python -m scal ARGS`` as `conftest.run_cli` runs it, but left running for the test to watch;
    its streams go to cwd/stdout.txt and cwd/stderr.txt (a pipe nobody reads could fill and stall it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI")}
    with open(cwd / "stdout.txt", "w") as out, open(cwd / "stderr.txt", "w") as err:
        return subprocess.Popen([sys.executable, "-m", "scal", *cheap_unless_asked(args)], cwd=cwd, env=env,
                                stdout=out, stderr=err,
                                **kwargs)


def _tree(pid: int) -> list[psutil.Process]:
    """The process and its live descendants (none if it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _label(p: psutil.Process) -> str:
    """What ps shows: Ray renames its workers and agents (``ray::RuntimeEnvAgent``), the rest by file name."""
    try:
        cmd = p.cmdline()
        return os.path.basename(cmd[0]) if cmd else p.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "?"


def _listening(p: psutil.Process) -> set[tuple[str, str, int]]:
    """(kind, address, port) of every TCP socket ``p`` listens on and every UDP socket bound with no peer."""
    out = set()
    try:
        conns = p.net_connections(kind="inet")
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return out
    for c in conns:
        if c.status == psutil.CONN_LISTEN or (c.type == socket.SOCK_DGRAM and not c.raddr):
            out.add(("tcp" if c.status == psutil.CONN_LISTEN else "udp", c.laddr.ip, c.laddr.port))
    return out


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    mapped = getattr(ip, "ipv4_mapped", None)      # a dual-stack socket shows 127.0.0.1 as ::ffff:127.0.0.1
    return (mapped or ip).is_loopback


def _alive(p: psutil.Process) -> bool:
    try:   # is_running also checks the start time: a reused pid is not the process
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _end(procs) -> None:
    for p in procs:
        if _alive(p):
            p.kill()


def _gone_within(procs, seconds: float) -> list[psutil.Process]:
    """Those of ``procs`` still running after up to ``seconds``."""
    deadline = time.time() + seconds
    while (left := [p for p in procs if _alive(p)]) and time.time() < deadline:
        time.sleep(0.2)
    return left


def test_ray_study_listens_on_loopback_only(tmp_path):
    """Every listening socket of the driver, GCS, raylet, agents, workers and actors, sampled while a
    Ray smoke study runs, is on 127.0.0.0/8 or ::1; when the study ends, so does every process it started."""
    proc = _popen_cli([*RAY_STUDY, "--tracking-uri", sqlite_uri(tmp_path)], tmp_path)
    seen: dict[tuple[str, str, int], str] = {}
    instance: dict[int, psutil.Process] = {}
    try:
        while proc.poll() is None:
            for p in _tree(proc.pid):
                instance.setdefault(p.pid, p)
                for sock in _listening(p):
                    seen.setdefault(sock, f"{_label(p)} (pid {p.pid})")
            time.sleep(0.5)   # Ray's servers listen for their whole life: sampling need not be dense
        left = _gone_within(instance.values(), 10)
    finally:
        _end(instance.values())
    assert proc.returncode == 0, (tmp_path / "stderr.txt").read_text()[-3000:]
    assert json.loads((tmp_path / "stdout.txt").read_text())["executor"] == "ray"
    exposed = {f"{kind} {addr}:{port} by {who}" for (kind, addr, port), who in seen.items() if not _is_loopback(addr)}
    assert not exposed, "listening beyond loopback:\n" + "\n".join(sorted(exposed))
    # Not vacuous: the sockets of Ray's servers and of the driver itself were seen.
    owners = " ".join(seen.values())
    for server in ("gcs_server", "raylet", "ray::", f"(pid {proc.pid})"):
        assert server in owners, (server, sorted(seen.values()))
    assert not left, [f"{_label(p)} (pid {p.pid})" for p in left]


def test_no_ray_process_outlives_a_killed_driver(tmp_path):
    """SIGKILL the driver while trials run: within seconds no process of its Ray instance is left
    (Ray's own agents would linger a minute, trying to tell the dead GCS)."""
    proc = _popen_cli([*RAY_STUDY, "--tracking-uri", sqlite_uri(tmp_path)], tmp_path, start_new_session=True)
    instance: dict[int, psutil.Process] = {}
    try:
        deadline = time.time() + 120
        while not any(_label(p).startswith("ray::ImplicitFunc") for p in instance.values()):
            assert proc.poll() is None, "the study ended early: " + (tmp_path / "stderr.txt").read_text()[-3000:]
            assert time.time() < deadline, "no Tune trial started"
            instance.update({p.pid: p for p in _tree(proc.pid) if p.pid != proc.pid})
            time.sleep(0.2)
        time.sleep(1.0)
        instance.update({p.pid: p for p in _tree(proc.pid) if p.pid != proc.pid})
        labels = sorted(_label(p) for p in instance.values())
        assert {"gcs_server", "raylet"} <= set(labels), labels
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        left = _gone_within(instance.values(), 10)
        assert not left, [f"{_label(p)} (pid {p.pid})" for p in left]
    finally:
        _end(instance.values())
        proc.kill()
        proc.wait()
