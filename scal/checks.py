"""Checks of a command's input that run before anything is trained or written.

Every check raises `ValueError` (or `StoreError`, a subclass) with a one-line message; the CLI
prints it as ``error: ...`` and exits 2. The store check needs only the standard library, so a
command checks its store before it pays for importing torch and MLflow (seconds): a wrong
``--tracking-uri`` is answered at once instead of after MLflow's retries (half a minute and more).
"""

from __future__ import annotations

import math
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from scal.names import SQLITE_PREFIX, artifact_location, model_name, safe_name

HTTP_TIMEOUT_S = 3.0          # one request to a tracking server; MLflow's own client retries for minutes
MAX_FOLDER_NAME_BYTES = 255   # one path component on ext4, APFS, NTFS and most other file systems
MAX_BOOT = 100_000            # bootstrap resamples: beyond this the interval ends move less than the fit's own noise
_SQLITE_HEADER = b"SQLite format 3\x00"
# The schemes MLflow's tracking-store registry knows (its own list, printed when it meets another).
_HTTP_SCHEMES = ("http", "https")
_FILE_SCHEMES = ("", "file")
_UNCHECKED_SCHEMES = ("databricks", "databricks-uc", "uc", "postgresql", "mysql", "mssql")
_SCHEMES = ("sqlite", *_HTTP_SCHEMES, *_FILE_SCHEMES, *_UNCHECKED_SCHEMES)


class StoreError(ValueError):
    """The MLflow store named by ``--tracking-uri`` cannot be used as asked."""


def store_uri(uri: str | None = None) -> str:
    """``--tracking-uri`` > ``MLFLOW_TRACKING_URI`` > ``sqlite:///<cwd>/mlflow.db`` (the one place of this rule)."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or f"{SQLITE_PREFIX}{Path.cwd() / 'mlflow.db'}"


def check_store(uri: str | None, create: bool) -> str:
    """The resolved store URI, once it is usable: ``create`` for commands that write (the store
    may be created), otherwise it must already exist (a command that only reads creates nothing)."""
    uri = store_uri(uri)
    scheme = _scheme(uri)
    if scheme not in _SCHEMES:
        raise StoreError(f"--tracking-uri {uri!r}: unsupported store scheme {scheme + '://'!r}; use sqlite:///PATH.db, "
                         "http(s)://HOST:PORT of an MLflow server, a folder, or postgresql/mysql/mssql://")
    if scheme == "sqlite":
        _check_sqlite(uri, create)
    elif scheme in _HTTP_SCHEMES:
        _check_server(uri)
    elif scheme in _FILE_SCHEMES:
        _check_folder(uri, create)
    return uri


def _scheme(uri: str) -> str:
    """``postgresql+psycopg2://...`` -> ``postgresql``; a plain path -> ``""``."""
    head, sep, _ = uri.partition("://")
    if not sep:
        return "file" if uri.startswith("file:") else ""
    return head.split("+", 1)[0].lower()


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working directory when it
    has three slashes, absolute with four); None for an in-memory database."""
    path = uri.removeprefix(SQLITE_PREFIX).split("?", 1)[0] if uri.startswith(SQLITE_PREFIX) else ""
    return Path(path) if path and path != ":memory:" else None


def _check_sqlite(uri: str, create: bool) -> None:
    if uri.rstrip("/") == "sqlite:" or uri.startswith(SQLITE_PREFIX + ":memory:"):
        return                                        # in memory: nothing on disk to check
    db = sqlite_path(uri)
    if db is None:
        raise StoreError(f"--tracking-uri {uri!r}: a sqlite store is sqlite:///relative/path.db or sqlite:////absolute/path.db")
    if db.exists():
        if not db.is_file():
            raise StoreError(f"no sqlite store at {uri}: {db} is not a file")
        with open(db, "rb") as f:
            head = f.read(len(_SQLITE_HEADER))
        if head and head != _SQLITE_HEADER:
            raise StoreError(f"{db} is not an SQLite database; --tracking-uri {uri!r} must name an MLflow sqlite store")
        if create and not os.access(db, os.W_OK):
            raise StoreError(f"the sqlite store {db} is read-only; this command writes to it")
        return
    if not create:
        raise StoreError(f"no MLflow store at {uri}: {db} does not exist (this command only reads a store)")
    _check_writable_dir(db.parent, f"cannot create the sqlite store {db}")


def _check_folder(uri: str, create: bool) -> None:
    """A file store (a folder, MLflow's oldest format): it, or for a new one its parent, must be there."""
    folder = Path(uri.removeprefix("file://") if uri.startswith("file://") else uri.removeprefix("file:"))
    if folder.is_dir():
        if create:
            _check_writable_dir(folder, f"cannot write the file store {folder}")
        return
    if not create:
        raise StoreError(f"no MLflow store at {uri}: the folder {folder} does not exist (this command only reads a store)")
    _check_writable_dir(folder.parent, f"cannot create the file store {folder}")


def cannot_create_in(folder: Path) -> OSError | None:
    """Why no file can be created in ``folder`` (an existing folder), or None when one can.

    os.access says yes to root everywhere (/proc included): only creating a file tells. The
    probe has no name on Linux (O_TMPFILE) and is gone when closed."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return None
    except OSError as exc:
        return exc


def _check_writable_dir(folder: Path, what: str) -> None:
    if not folder.is_dir():
        raise StoreError(f"{what}: the folder {folder} does not exist")
    exc = cannot_create_in(folder)
    if exc is not None:
        raise StoreError(f"{what}: no file can be created in {folder} ({exc.strerror or exc})")


def _check_server(uri: str) -> None:
    """One request to the server's health endpoint, ``HTTP_TIMEOUT_S`` at most: any answer below
    500 means a server is there (auth and the API are MLflow's to check); no answer, a refused
    connection or a gateway error means there is none to use."""
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S):
            return
    except urllib.error.HTTPError as exc:
        if exc.code < 500:
            return
        reason = f"it answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:   # refused, unresolvable, timed out, malformed
        reason = str(getattr(exc, "reason", exc) or type(exc).__name__)
    raise StoreError(f"no MLflow server answers at {uri} within {HTTP_TIMEOUT_S:g} s ({reason})")


def study_exists(uri: str, study: str) -> bool:
    """Whether the store at ``uri`` holds an experiment named ``study``, found without writing
    anything (a sqlite store that does not exist is not created to say no)."""
    db = sqlite_path(uri) if _scheme(uri) == "sqlite" else None
    if db is not None and not db.is_file():
        return False
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri, uri).get_experiment_by_name(study) is not None


def check_study_name(name: str, uri: str | None = None) -> None:
    """A study (experiment) name must be one MLflow accepts, give a valid registered-model name
    (`scal.names.model_name`) and a single folder name for its artifacts
    (`scal.names.artifact_location`); checked before the experiment is created."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import (
        _validate_experiment_artifact_location_length, _validate_experiment_name, _validate_model_name,
    )

    if not name.strip():
        raise ValueError("--experiment must not be empty or blank")
    shown = name if len(name) <= 60 else name[:57] + "..."
    folder = safe_name(name)
    try:
        _validate_experiment_name(name)
    except MlflowException as exc:
        raise ValueError(f"--experiment {shown!r}: MLflow rejects it as an experiment name ({exc.message})") from None
    if folder in (".", ".."):
        raise ValueError(f"--experiment {name!r} would put its artifacts in {folder!r}, not a folder of its own")
    if len(folder.encode()) > MAX_FOLDER_NAME_BYTES:
        raise ValueError(f"--experiment {shown!r} is too long: its artifact folder name would be "
                         f"{len(folder.encode())} bytes, file systems allow {MAX_FOLDER_NAME_BYTES}")
    try:
        _validate_model_name(model_name(name))
    except MlflowException:
        raise ValueError(f"--experiment {shown!r}: its registered model name {model_name(name)!r} is invalid in MLflow "
                         "(it must not start with '..' or '/' nor contain ':' or '/')") from None
    location = artifact_location(store_uri(uri), name)
    if location:
        try:
            _validate_experiment_artifact_location_length(location)
        except MlflowException:
            raise ValueError(f"--experiment {shown!r}: its artifact folder path is longer than MLflow allows "
                             f"({len(location)} characters)") from None


# --- numbers ------------------------------------------------------------------------------------
def count(option: str, value: int, low: int = 1, high: int | None = None, why: str = "") -> int:
    """``value`` if ``low <= value <= high``; else a one-line error naming the option and its range."""
    if low <= value and (high is None or value <= high):
        return value
    bound = f"at least {low}" if high is None else f"between {low} and {high}"
    raise ValueError(f"{option} must be {bound}{f' ({why})' if why else ''}, got {value}")


def positive(option: str, value: float) -> float:
    """A size, an error, a learning rate: finite and above zero."""
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{option} must be a positive finite number, got {value}")
    return value
