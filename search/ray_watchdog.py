"""Ends a local Ray instance's processes when the scal driver that started it dies without shutting it down.

Ray ties its GCS and raylet to the driver (PR_SET_PDEATHSIG) and its workers to the raylet, but its
DashboardAgent and RuntimeEnvAgent, on noticing the raylet gone, first try to report that to the
dead GCS and wait out a 60 s RPC timeout: after a SIGKILL of the driver they outlive it by a minute.

So `RayExecutor` starts this file as a small separate process (stdlib only, no ray import, its own
session so signals aimed at the driver's terminal group do not reach it) right after ``ray.init``:

- its roots are the driver's child processes that ``ray.init`` started (GCS, raylet, monitors);
- every half second it adds their descendants (agents, workers, actors) to the processes it tracks,
  each known by pid and start time so that a reused pid is never mistaken for one of them;
- when its stdin (a pipe only the driver holds) reaches end of file, or the driver is no longer its
  parent, it SIGKILLs every tracked process still running and exits.

On a normal close the driver shuts Ray down first and then closes the pipe, so there is nothing left
to end. A joined cluster (``--ray-address``) gets no watchdog: its processes are not the driver's.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

POLL_S = 0.5

Proc = tuple[int, int]   # (pid, start time in clock ticks since boot): one process, never a reused pid


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, start time, state) of a live process; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()   # the command name may hold spaces and parentheses
    return int(fields[1]), int(fields[19]), fields[0]


def _alive(proc: Proc) -> bool:
    st = _stat(proc[0])
    return st is not None and st[1] == proc[1] and st[2] not in ("Z", "X")


def _all_procs() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time) of every live process on the machine."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (st := _stat(int(name))) is not None and st[2] not in ("Z", "X"):
            out[int(name)] = (st[0], st[1])
    return out


def children(pid: int) -> set[Proc]:
    """The live child processes of ``pid``."""
    return {(p, start) for p, (ppid, start) in _all_procs().items() if ppid == pid}


def descendants(roots: set[Proc]) -> set[Proc]:
    """``roots`` that are still running, and all their live descendants."""
    procs = _all_procs()
    kids: dict[int, list[int]] = {}
    for p, (ppid, _) in procs.items():
        kids.setdefault(ppid, []).append(p)
    found = {r for r in roots if procs.get(r[0], (0, -1))[1] == r[1]}
    todo = [r[0] for r in found]
    while todo:
        for k in kids.get(todo.pop(), []):
            if (k, procs[k][1]) not in found:
                found.add((k, procs[k][1]))
                todo.append(k)
    return found


def _kill(tracked: set[Proc], wait_s: float = 5.0) -> None:
    """SIGKILL what is left of the instance (with anything it started since the last poll)."""
    left = descendants(tracked) | tracked
    for pid, start in left:
        if _alive((pid, start)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + wait_s
    while any(_alive(p) for p in left) and time.monotonic() < deadline:
        time.sleep(0.05)


def watch(driver: int, roots: set[Proc]) -> None:
    tracked = set(roots)
    while True:
        readable, _, _ = select.select([0], [], [], POLL_S)
        if readable and not os.read(0, 4096):
            break                                 # the driver's end of the pipe is closed: it is gone or done
        if os.getppid() != driver:
            break                                 # reparented: the driver died (a fork of it may hold the pipe)
        tracked = {p for p in tracked if _alive(p)} | descendants(tracked)
    _kill(tracked)


def end(roots: set[Proc]) -> None:
    """End ``roots`` and their descendants now: what a start that failed half-way left running."""
    _kill(set(roots))


def start(roots: set[Proc]) -> subprocess.Popen:
    """Start the watchdog for ``roots`` (children of this process); the caller keeps its stdin open."""
    args = [f"{pid}:{start}" for pid, start in sorted(roots)]
    # -I: stdlib only, so search/ (the script's folder) must not shadow a stdlib module name
    return subprocess.Popen([sys.executable, "-I", os.path.abspath(__file__), str(os.getpid()), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True)


def stop(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """The driver is done with Ray: the watchdog ends whatever is left of it, then exits."""
    try:
        proc.stdin.close()
        proc.wait(timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the driver's to handle; then it closes the pipe
    driver = int(argv[0])
    roots = {(int(p), int(s)) for p, s in (a.split(":") for a in argv[1:])}
    watch(driver, roots)


if __name__ == "__main__":
    main(sys.argv[1:])
