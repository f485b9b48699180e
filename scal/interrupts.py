"""Ctrl-C (SIGINT) and SIGTERM during a study: both stop it the same way.

A SIGTERM comes from ``timeout``, ``docker stop`` or a batch scheduler; it raises `Terminated`,
a `KeyboardInterrupt`, so every path that ends a study on Ctrl-C (the study run marked KILLED,
trial runs ended, the same command resumes) ends it on SIGTERM too. The CLI tells the two apart
only in its last line and exit code (130 for Ctrl-C, 143 for SIGTERM, as shells report them).

Python swallows an exception raised where nothing can catch it (a ``__del__`` finaliser, a weakref
or garbage-collector callback: "Exception ignored in ..."); a signal's exception raised there is
lost, and the study would run on to its end. So the signal is also remembered, and
`raise_if_interrupted` (after each logged trial) raises it again.
"""

from __future__ import annotations

import contextlib
import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """A SIGTERM stopped the study (a KeyboardInterrupt, so it ends as Ctrl-C does)."""


_caught: list[int] = []   # the stop signals that arrived during the current study


def _exception(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


@contextlib.contextmanager
def _handling(handler):
    """``handler`` answers SIGINT and SIGTERM within the block, the previous ones after it. Outside
    the main thread signals cannot be handled, and the block runs as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, before in previous.items():
            signal.signal(s, before if before is not None else signal.SIG_DFL)


def _note_and_raise(signum, frame) -> None:
    _caught.append(signum)
    raise _exception(signum)


@contextlib.contextmanager
def interrupts_remembered():
    """Within the block (a study), a stop signal is remembered as well as raised."""
    _caught.clear()
    with _handling(_note_and_raise):
        yield


def raise_if_interrupted() -> None:
    """Raise the stop signal's exception if one arrived in this study and was swallowed on its way."""
    if _caught:
        raise _exception(_caught[0])


@contextlib.contextmanager
def deferred_interrupt():
    """Hold a stop signal until the block ends, then raise it.

    Writing one trial (create run, log batch, terminate) or one model version must not be cut in
    half: a run left RUNNING with half its metrics is worse than a run not started.
    """
    held: list[int] = []

    def hold(signum, frame) -> None:
        held.append(signum)
        _caught.append(signum)

    with _handling(hold):
        yield
    if held:
        raise _exception(held[0])

