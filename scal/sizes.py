"""`scal search-size` and `scal train`: the overfitting search and single trials, tracked in MLflow.

Both reuse the study's pieces (`scal.study.prepare`, `scal.study.TrackedTrials`, the executors) so
a probe here is the same trial, trained and logged the same way, as a probe inside a study.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from scal import checks, keys
from scal.progress import Progress
from scal.study import StudyConfig, TrackedTrials, prepare
from scal.tracking import StudyTracker, open_client
from search.interpolate import Config
from search.overfit import find_smallest_overfitting


def search_sizes(cfg: StudyConfig, subset_size: int | None = None) -> dict[str, Any]:
    """Smallest overfitting width for one subset size, or for every subset of the budget's plan."""
    p = prepare(cfg)
    sizes = list(p.plan.sizes) if subset_size is None else [checks.count("--subset-size", subset_size, 1)]
    for m in sizes:
        p.plan.indices(m)  # raises DataError before anything is logged if m exceeds the data
    name = cfg.experiment or f"{p.study}-search-size"
    checks.check_study_name(name, cfg.tracking_uri)
    tracker = StudyTracker(name, open_client(checks.store_uri(cfg.tracking_uri)))
    parent = tracker.start({"study.domain": p.domain.name, "study.unit": p.unit, "study.budget": p.budget.name,
                            "study.overfit_criterion": f"final_train_loss < {p.budget.overfit.ratio} * min_val_loss",
                            "study.subset_sizes": ",".join(map(str, sizes)), "study.threads": cfg.threads},
                           run_name="search-size")
    executor = p.executor()
    trials = TrackedTrials(p, tracker, Progress(len(sizes), p.domain.metric(p.unit).name, enabled=cfg.progress), executor)
    base = Config(dict(p.settings.scale.size), p.settings.scale.lr)
    out, start = [], p.settings.scale.min_width
    try:
        with tracker.closing():
            for m in sizes:
                found = find_smallest_overfitting(
                    m, base, p.domain.grow_knob, start, p.settings.scale.max_width, p.budget.bisect_steps,
                    p.budget.overfit, p.settings.make_spec, trials.run, seed=cfg.seed * 1000)
                trials.progress.subset_done()
                size = dict(base.size)
                size[p.domain.grow_knob] = found.width
                row = found.to_dict() | {"size": m, "n_params": p.domain.count_params(size, p.data)}
                out.append(row)
                tracker.log_dict(found.to_dict(), f"overfit/subset_{m}.json")
                start = found.width  # the overfitting width does not shrink as the subset grows
                trials.models.clear()  # probes' models are kept for a study's registry, not needed here
    finally:
        executor.close()
    return {"experiment_id": tracker.experiment_id, "parent_run_id": parent, "domain": p.domain.name,
            "unit": p.unit, "criterion_ratio": p.budget.overfit.ratio, "subsets": out}


def train_one(cfg: StudyConfig, subset_size: int | None, knobs: Mapping[str, int | None], lr: float | None) -> dict[str, Any]:
    """Train one configuration on one subset and log it as a run; every input is checked before
    the experiment is created (`StudyTracker`), so a bad one leaves the store as it was."""
    p = prepare(cfg)
    m = p.plan.sizes[0] if subset_size is None else checks.count("--subset-size", subset_size, 1)
    p.plan.indices(m)
    given = {k: checks.count(f"--{k}", int(v), 1) for k, v in knobs.items() if v is not None}
    size = dict(p.settings.scale.size) | given
    unknown = set(size) - set(p.domain.size_knobs)
    if unknown:
        raise ValueError(f"domain {p.domain.name} has no size knob {sorted(unknown)}")
    lr = p.settings.scale.lr if lr is None else checks.positive("--lr", lr)
    spec = p.settings.make_spec(m, Config(size, lr), cfg.seed)
    name = cfg.experiment or f"{p.study}-trials"
    checks.check_study_name(name, cfg.tracking_uri)
    tracker = StudyTracker(name, open_client(checks.store_uri(cfg.tracking_uri)))
    # One trial gains nothing from a cluster: local unless the config asks for Ray (cfg.executor;
    # the CLI's `train` has no --executor and always trains here).
    settings = cfg.executor if cfg.executor.kind == "ray" else replace(cfg.executor, kind="local")
    executor = p.executor(settings)
    trials = TrackedTrials(p, tracker, Progress(1, p.domain.metric(p.unit).name, enabled=cfg.progress), executor)
    try:
        (result,) = trials.run([spec], keys.ROLE_GRID)
    finally:
        executor.close()
    trials.progress.close()
    return {"run_id": trials.run_ids[spec.trial_hash()], "experiment_id": tracker.experiment_id, "status": result.status,
            "subset_size": m, **{f"size.{k}": v for k, v in size.items()}, "lr": spec.lr, "n_params": result.n_params,
            "min_val_error": result.min_val_error, "min_val_loss": result.min_val_loss,
            "final_train_loss": result.final_train_loss, "best_epoch": result.best_epoch, "steps": result.steps,
            "wall_time_s": round(result.wall_time_s, 3)}
