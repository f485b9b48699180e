"""Names and places derived from a study's name: its folder-safe form, its artifact location and
its registered model's name.

Standard library only, and importing nothing of scal: the input checks (`scal.checks`) validate
these names before anything is created, and the tracker (`scal.tracking`) and the registry
(`scal.registry`) use them to create things; one rule for all three, and no import circle.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

SQLITE_PREFIX = "sqlite:///"


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(study: str) -> str:
    """``study`` made fit for paths and registry names (letters, digits and ``-_.``), one name per study.

    A name already made of those characters is kept as it is. Any other has each run of other
    characters replaced by ``-`` and the first 8 hex digits of its SHA-256 appended, so that
    ``ab;cd``, ``ab cd`` and ``ab-cd`` get three names (``ab-cd-<hash>``, ``ab-cd-<other hash>``,
    ``ab-cd``), not one registered model and one folder shared by three studies.
    """
    if not _UNSAFE.search(study):
        return study
    digest = hashlib.sha256(study.encode()).hexdigest()[:8]
    return f"{_UNSAFE.sub('-', study)}-{digest}"


def model_name(study: str) -> str:
    """Registered-model name of a study's best fits (registry names: letters, digits, -_.)."""
    return safe_name(study) + "-best-fit"


def artifact_location(uri: str, study: str) -> str | None:
    """Artifacts of a sqlite store go beside the database file (``<dir>/mlruns/<study>``).

    MLflow's default is ``./mlruns`` under whatever directory the command ran in, which scatters
    one store's artifacts when ``--tracking-uri`` points elsewhere. Other stores keep their default.
    """
    if not uri.startswith(SQLITE_PREFIX):
        return None
    db = Path(uri.removeprefix(SQLITE_PREFIX))
    return (db.parent / "mlruns" / safe_name(study)).resolve().as_uri()
