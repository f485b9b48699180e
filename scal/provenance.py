"""Which code made a run: the scal version and, in a git checkout, its commit.

Every run scal creates carries them as tags (`code_tags`), so a number in the MLflow UI can be
traced to the code that produced it. Outside a checkout (an installed wheel) there is no commit,
and no error: the tag is left out.
"""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

from scal import keys

DIST = "scal-scaling"    # the distribution's name ("scal" is taken on PyPI)
ROOT = Path(__file__).resolve().parents[1]   # the checkout's root when running from one


@functools.lru_cache(maxsize=1)   # a directory scan of the installed distributions: once per process
def scal_version() -> str:
    """The installed distribution's version, or the package's own `scal.__version__` when scal runs
    from a tree that was never installed."""
    try:
        return metadata.version(DIST)
    except metadata.PackageNotFoundError:
        from scal import __version__

        return __version__


@functools.lru_cache(maxsize=1)   # one process runs one checkout: asked once, not per run
def git_commit() -> str | None:
    """HEAD of the git checkout scal runs from, or None (not a checkout, no git, git failed).

    The checkout must be scal's own: an installed scal inside some other repository (a virtual
    environment kept in a project) reports nothing rather than that project's commit."""
    try:
        top = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--show-toplevel", "HEAD"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = top.stdout.split()
    if top.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != ROOT:
        return None
    return lines[1]


def code_tags(mlflow_commit: bool = True) -> dict[str, str]:
    """Tags naming the code: `keys.VERSION`, and `keys.GIT_COMMIT` (with MLflow's own
    `keys.MLFLOW_GIT_COMMIT` unless ``mlflow_commit`` is False: a run made by ``mlflow run``
    already has MLflow's) where there is a commit."""
    tags = {keys.VERSION: scal_version()}
    commit = git_commit()
    if commit:
        tags[keys.GIT_COMMIT] = commit
        if mlflow_commit:
            tags[keys.MLFLOW_GIT_COMMIT] = commit
    return tags
