"""``scal compare`` on studies: find them, read their points, fit them jointly, compare, plot, and log
the comparison to MLflow.

A reference is a study's parent run id or an experiment name (its newest study). Each curve is
named after its study's experiment; two studies of one experiment are told apart by a run id
prefix. The comparison itself is `analysis.compare`. It is logged as a run of its own in the
experiment `keys.COMPARISON_EXPERIMENT`, with the comparison (JSON) and the plot as artifacts and
tags naming the compared runs (`keys.COMPARES`, `keys.COMPARES_PREFIX`), so the question "which
studies did this compare" is answered from the store, and the studies' own runs stay untouched.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import mlflow
from mlflow.tracking import MlflowClient

from analysis.compare import LEVEL, compare_joint, joint_comparison
from analysis.compare_plot import plot_comparison
from analysis.fit import FitError
from analysis.jsonsafe import jsonable
from analysis.select import AUTO
from scal import keys
from scal.analyze import StudyFits, fit_study
from scal.reader import StudyNotFound, latest_study
from scal.names import artifact_location
from scal.tracking import log_batch

log = logging.getLogger(__name__)

RUN_ID_PREFIX_CHARS = 8   # run id prefix that tells two studies of one experiment apart


@dataclass(frozen=True)
class StudyRef:
    """A reference as given, the study run it names, and the curve's name."""

    ref: str
    run_id: str
    experiment: str
    name: str = ""


def resolve_refs(client: MlflowClient, refs: Sequence[str]) -> list[StudyRef]:
    """The study run behind each reference, named (module docstring). Unknown references,
    runs that are not scal studies and one study given twice are LookupError / ValueError."""
    found = []
    for ref in refs:
        run = _run_or_none(client, ref)
        if run is None:
            if client.get_experiment_by_name(ref) is None:
                raise StudyNotFound(f"{ref!r} is neither a study run id nor an experiment in {client.tracking_uri}")
            run = client.get_run(latest_study(client, ref))
        elif run.data.tags.get(keys.ROLE) != keys.ROLE_STUDY:
            raise StudyNotFound(f"run {ref} is not a scal study (tag {keys.ROLE} != {keys.ROLE_STUDY})")
        found.append(StudyRef(ref, run.info.run_id, client.get_experiment(run.info.experiment_id).name))
    ids = [s.run_id for s in found]
    dup = next((s for s in found if ids.count(s.run_id) > 1), None)
    if dup is not None:
        raise ValueError(f"study run {dup.run_id} is given twice ({', '.join(s.ref for s in found if s.run_id == dup.run_id)})")
    experiments = [s.experiment for s in found]
    return [StudyRef(s.ref, s.run_id, s.experiment,
                     s.experiment if experiments.count(s.experiment) == 1
                     else f"{s.experiment}@{s.run_id[:RUN_ID_PREFIX_CHARS]}") for s in found]


def _run_or_none(client: MlflowClient, ref: str):
    try:
        return client.get_run(ref)
    except mlflow.exceptions.MlflowException:
        return None


def compare_studies(client: MlflowClient, refs: Sequence[str], at: Sequence[float] | None = None, form: str = AUTO,
                    n_boot: int = 200, seed: int = 0, out_dir: str | Path | None = None,
                    level: float = LEVEL) -> dict[str, Any]:
    """Compare the studies ``refs`` in the store of ``client`` (`scal.tracking.open_client`) and
    log the comparison run there.

    Each study contributes the best-fit points its own analysis fits (`scal.analyze.fit_study`:
    compute-limited and small-data points left out); the curves are then fitted jointly and
    compared by `analysis.compare` (``form``: the common form, auto, m1 or m2). Returns
    `analysis.compare.compare_joint`'s dict plus ``studies`` (name, ref, run id),
    ``comparison_run_id``, ``tracking_uri`` and ``plot`` (the PNG written under ``out_dir``, a
    temporary folder by default).
    """
    if len(refs) < 2:
        raise ValueError(f"a comparison needs at least 2 studies (run ids or experiment names), got {len(refs)}")
    studies = resolve_refs(client, refs)
    fitted: dict[str, StudyFits] = {s.name: _fit(client, s) for s in studies}
    curves = {name: (f.points["size"].to_numpy(float)[f.points["in_fit"].to_numpy(bool)],
                     f.points["val_error"].to_numpy(float)[f.points["in_fit"].to_numpy(bool)])
              for name, f in fitted.items()}
    try:
        joint = joint_comparison(curves, form=form, n_boot=n_boot, seed=seed)
    except FitError as exc:
        raise FitError(f"studies {', '.join(fitted)}: {exc}") from None
    result = compare_joint(joint, at=at, level=level)
    out = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="scal-compare-"))
    metrics = {f.metric for f in fitted.values()}
    points = {name: (f.points["size"].to_numpy(float), f.points["val_error"].to_numpy(float),
                     f.points["in_fit"].to_numpy(bool)) for name, f in fitted.items()}
    png = plot_comparison(points, joint.fits, result, out / "comparison.png",
                          metric_label=metrics.pop() if len(metrics) == 1 else "error",
                          title="learning curves: " + " vs ".join(joint.fits))
    result["studies"] = [{"name": s.name, "ref": s.ref, "run_id": s.run_id, "experiment": s.experiment}
                         for s in studies]
    result["tracking_uri"] = client.tracking_uri
    result["plot"] = str(png)
    result["comparison_run_id"] = log_comparison(client, studies, result, png,
                                                 {"form": form, "n_boot": n_boot, "seed": seed, "level": level,
                                                  "at": ",".join(f"{a['x']:g}" for a in result["at"])})
    return result


def _fit(client: MlflowClient, study: StudyRef) -> StudyFits:
    """The study's points and which of them its fit uses; its own fit (auto, no bootstrap) is not
    compared: the comparison fits all studies jointly in one form."""
    try:
        return fit_study(client, study.run_id, form=AUTO, n_boot=0)
    except FitError as exc:
        raise FitError(f"study {study.name} ({study.run_id}): {exc}") from None


def log_comparison(client: MlflowClient, studies: Sequence[StudyRef], result: dict[str, Any], png: Path,
                   params: dict[str, Any]) -> str:
    """A FINISHED run in `keys.COMPARISON_EXPERIMENT` with the JSON and the plot; its id."""
    name = keys.COMPARISON_EXPERIMENT
    exp = client.get_experiment_by_name(name)
    exp_id = exp.experiment_id if exp else client.create_experiment(
        name, artifact_location=artifact_location(client.tracking_uri, name), tags={keys.EXPERIMENT_KIND: keys.EXPERIMENT_KIND_TRAINING})
    tags = {keys.ROLE: keys.ROLE_COMPARISON, keys.COMPARES: ",".join(s.run_id for s in studies)}
    for i, s in enumerate(studies, 1):
        tags[f"{keys.COMPARES_PREFIX}{i}"] = s.run_id
        tags[f"{keys.COMPARES_PREFIX}{i}.name"] = s.name
    run_name = "compare " + " vs ".join(s.name for s in studies)
    run = client.create_run(exp_id, tags={**tags, keys.RUN_NAME: run_name}, run_name=run_name)
    rid = run.info.run_id
    try:
        log_batch(client, rid, params={f"compare.{k}": v for k, v in params.items()})
        doc = {k: v for k, v in result.items() if k not in ("plot", "comparison_run_id")}
        client.log_text(rid, json.dumps(jsonable(doc), indent=2), "comparison.json")
        client.log_artifact(rid, str(png))
    except BaseException:
        client.set_terminated(rid, "FAILED")
        raise
    client.set_terminated(rid, "FINISHED")
    log.info("comparison run %s in experiment %s", rid, name)
    return rid
