"""A whole scaling study: plan -> search -> MLflow -> registry -> analysis. The CLI's `study`.

Input is checked before anything is written (unknown domain/unit/budget, missing data, subsets
larger than the data), so a bad command leaves the store as it was. Once the parent run exists,
every finished trial and every finished subset is logged at once; if the study stops early the
parent run is marked FAILED (or KILLED on Ctrl-C) and what was logged stays.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import Any

import domains
from domains.loop import resolve_device
from domains.protocol import Domain, DomainData, TrialResult, TrialSpec
from search.budget import Budget, OverfitCriterion, get_budget
from search.engine import SearchSettings, SubsetOutcome, run_search
from search.subsets import SubsetPlan
from scal import keys, registry
from scal.analyze import analyze_study
from scal.progress import Progress
from scal.tracking import StudyTracker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyConfig:
    """What `scal study` takes. ``None`` overrides keep the budget's / domain's value."""

    domain: str = "lm"
    unit: str | None = None
    budget: str = "quick"
    data: str | None = None
    experiment: str | None = None
    tracking_uri: str | None = None
    seed: int = 0
    device: str = "auto"
    k_configs: int | None = None
    n_seeds: int | None = None
    n_subsets: int | None = None
    min_subset: int | None = None
    max_steps: int | None = None
    overfit_ratio: float | None = None
    width_mults: tuple[float, ...] | None = None
    lr_mults: tuple[float, ...] | None = None
    layer_offsets: tuple[int, ...] | None = None
    register: bool = True
    progress: bool = True


@dataclass
class Prepared:
    """A study's resolved inputs: everything checked, nothing written yet."""

    cfg: StudyConfig
    domain: Domain
    unit: str
    budget: Budget
    settings: SearchSettings
    data: DomainData
    plan: SubsetPlan
    study: str


def prepare(cfg: StudyConfig) -> Prepared:
    """Resolve and validate; raises ValueError / DataError with a one-line message."""
    domain = domains.get(cfg.domain)
    unit = cfg.unit or domains.default_unit(domain)
    budget = get_budget(cfg.budget).with_overrides(
        k_configs=cfg.k_configs, n_seeds=cfg.n_seeds, width_mults=cfg.width_mults, lr_mults=cfg.lr_mults,
        layer_offsets=cfg.layer_offsets,
        overfit=OverfitCriterion(cfg.overfit_ratio) if cfg.overfit_ratio is not None else None,
    )
    scale = domain.scale(budget.name, unit)
    if budget.k_configs < 1 or budget.n_seeds < 1:
        raise ValueError("--k-configs and --n-seeds must be at least 1")
    if not budget.overfit.ratio > 0:
        raise ValueError(f"--overfit-ratio must be positive, got {budget.overfit.ratio}")
    train = scale.train if cfg.max_steps is None else replace(scale.train, max_steps=cfg.max_steps)
    scale = replace(scale, train=train, n_subsets=cfg.n_subsets or scale.n_subsets,
                    min_subset=cfg.min_subset or scale.min_subset)
    resolve_device(cfg.device)
    data = domain.load(unit, cfg.data, scale.max_val_units)
    plan = SubsetPlan(data.chunk_sizes(), scale.min_subset, scale.n_subsets, seed=cfg.seed)
    study = cfg.experiment or f"scal-{domain.name}-{unit}"
    settings = SearchSettings(domain, unit, budget, scale, seed=cfg.seed)
    return Prepared(cfg, domain, unit, budget, settings, data, plan, study)


class TrialRunner:
    """The in-process executor: trains each spec, logs it as a child run, keeps its model."""

    def __init__(self, p: Prepared, tracker: StudyTracker, progress: Progress):
        self.p, self.tracker, self.progress = p, tracker, progress
        self.models: dict[str, Any] = {}       # trial hash -> trained model (current subset only)
        self.run_ids: dict[str, str] = {}      # trial hash -> MLflow run id
        self.n_trials = 0

    def __call__(self, specs: list[TrialSpec], role: str) -> list[TrialResult]:
        if specs:
            self.progress.begin(specs[0].subset_size, len(specs), role)
        results = []
        for spec in specs:
            history: list[tuple[dict, int]] = []
            result, model = self.p.domain.train(
                spec, self.p.data, self.p.plan.indices(spec.subset_size),
                lambda metrics, step: history.append((dict(metrics), step)), device=self.p.cfg.device,
            )
            h = spec.trial_hash()
            self.run_ids[h] = self.tracker.log_trial(spec, result, history, role)
            if role == keys.ROLE_GRID:
                self.models[h] = model
            self.n_trials += 1
            self.progress.trial(result)
            results.append(result)
        return results


def run_study(cfg: StudyConfig) -> dict[str, Any]:
    """Run the study described by ``cfg``; returns the summary printed by ``scal study --json``."""
    p = prepare(cfg)
    metric = p.domain.metric(p.unit)
    tracker = StudyTracker(p.study, cfg.tracking_uri)
    parent = tracker.start(_study_params(p), run_name=f"{p.study}-{p.budget.name}-seed{cfg.seed}")
    tracker.log_dict({"plan": p.plan.to_dict(), "budget": asdict(p.budget), "scale": asdict(p.settings.scale)}, "plan.json")
    log.info("study %s: subsets %s (%.2f orders of magnitude)", p.study, p.plan.sizes, p.plan.span_orders)
    progress = Progress(len(p.plan.sizes), metric.name, enabled=cfg.progress)
    runner = TrialRunner(p, tracker, progress)
    name = registry.model_name(p.study)
    versions: dict[int, str] = {}

    def on_subset(outcome: SubsetOutcome) -> None:
        progress.subset_done()
        best = outcome.best
        tracker.log_curve_point(outcome.size, best.score, best.n_params)
        if outcome.overfit is not None:
            tracker.log_dict(outcome.overfit.to_dict(), f"overfit/subset_{outcome.size}.json")
        seed_result = best.best_seed()
        if cfg.register and seed_result is not None:
            h = seed_result.spec.trial_hash()
            versions[outcome.size] = registry.register(
                tracker.client, name, runner.run_ids[h], runner.models[h], seed_result, metric.name, parent)
        runner.models.clear()

    with tracker.closing():
        try:
            run_search(p.plan, p.settings, runner, on_subset)
        finally:
            progress.close()
        if cfg.register and versions:
            registry.set_largest(tracker.client, name, versions[max(versions)])
        summary = analyze_study(tracker, parent, metric.name, p.data.best_guess_error())
    summary.update(
        experiment_id=tracker.experiment_id, parent_run_id=parent, study=p.study, domain=p.domain.name, unit=p.unit,
        budget=p.budget.name, metric=metric.name, tracking_uri=tracker.uri, n_trials=runner.n_trials,
        registered_model=name if cfg.register else None,
        registered_versions={str(k): v for k, v in sorted(versions.items())},
    )
    return summary


def _study_params(p: Prepared) -> dict[str, Any]:
    s, b = p.settings.scale, p.budget
    params = {
        "study.domain": p.domain.name, "study.unit": p.unit, "study.budget": b.name, "study.seed": p.cfg.seed,
        "study.data": p.cfg.data or "embedded", "study.device": p.cfg.device,
        "study.subset_sizes": ",".join(map(str, p.plan.sizes)), "study.span_orders": f"{p.plan.span_orders:.3f}",
        "study.k_configs": b.k_configs, "study.n_seeds": b.n_seeds, "study.bisect_steps": b.bisect_steps,
        "study.width_mults": ",".join(map(str, b.width_mults)), "study.lr_mults": ",".join(map(str, b.lr_mults)),
        "study.layer_offsets": ",".join(map(str, b.layer_offsets)),
        "study.overfit_criterion": f"final_train_loss < {b.overfit.ratio} * min_val_loss",
        "study.min_width": s.min_width, "study.max_width": s.max_width, "study.base_lr": s.lr,
        "study.metric": p.domain.metric(p.unit).name, "study.best_guess_error": f"{p.data.best_guess_error():.6g}",
    }
    for k, v in asdict(s.train).items():
        params[f"study.train.{k}"] = v
    return params
