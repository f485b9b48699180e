"""A whole scaling study: plan -> search -> MLflow -> registry -> analysis. The CLI's `study`.

Input is checked before anything is written (unknown domain/unit/budget, missing data, subsets
larger than the data), so a bad command leaves the store as it was. Once the parent run exists,
every finished trial and every finished subset is logged at once; if the study stops early the
parent run is marked FAILED (or KILLED on Ctrl-C) and what was logged stays.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

import domains
from domains.loop import resolve_device
from domains.protocol import Domain, DomainData, TrialResult, TrialSpec
from search.budget import Budget, OverfitCriterion, get_budget
from search.engine import SEARCHERS, SearchSettings, SubsetOutcome, run_search
from search.executor import (
    FINISHED, ExecutorSettings, FixedProposer, Proposer, TrialContext, TrialOutcome, make_executor, run_trial,
)
from search.refine import ESTIMATORS
from search.subsets import SubsetPlan
from scal import keys, registry
from scal.analyze import analyze_study
from scal.progress import Progress
from scal.tracking import (
    StudyTracker, done_key, interrupts_remembered, raise_if_interrupted, resolve_tracking_uri, result_from_run,
)

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
    race_keep: int | None = None           # race configurations on their first seed, keep this many
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
    searcher: str = "grid"                 # grid | skopt
    skopt_estimator: str = "GP"
    executor: ExecutorSettings = field(default_factory=ExecutorSettings)
    resume: bool | None = None             # None: continue an unfinished identical study if there is one


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

    def context(self) -> TrialContext:
        """What every trial of this study needs besides its spec (shipped once to each Ray node)."""
        return TrialContext(self.domain.name, self.data, self.plan, self.cfg.device)

    def executor(self, settings: ExecutorSettings | None = None):
        """The executor ``settings`` (default: the study's own) ask for, set up for this study."""
        return make_executor(settings or self.cfg.executor, self.context(), max_rounds=self.settings.scale.train.max_rounds)


def prepare(cfg: StudyConfig) -> Prepared:
    """Resolve and validate; raises ValueError / DataError with a one-line message."""
    domain = domains.get(cfg.domain)
    unit = cfg.unit or domains.default_unit(domain)
    budget = get_budget(cfg.budget).with_overrides(
        k_configs=cfg.k_configs, n_seeds=cfg.n_seeds, width_mults=cfg.width_mults, lr_mults=cfg.lr_mults,
        layer_offsets=cfg.layer_offsets, race_keep=cfg.race_keep,
        overfit=OverfitCriterion(cfg.overfit_ratio) if cfg.overfit_ratio is not None else None,
    )
    scale = domain.scale(budget.name, unit)
    if budget.k_configs < 1 or budget.n_seeds < 1:
        raise ValueError("--k-configs and --n-seeds must be at least 1")
    if budget.race_keep < 0:
        raise ValueError(f"--race-keep must be 0 (no racing) or more, got {budget.race_keep}")
    if budget.race_keep and cfg.searcher != "grid":
        raise ValueError("--race-keep races the Monte Carlo grid's configurations; use it with --searcher grid")
    if not budget.overfit.ratio > 0:
        raise ValueError(f"--overfit-ratio must be positive, got {budget.overfit.ratio}")
    train = scale.train if cfg.max_steps is None else replace(scale.train, max_steps=cfg.max_steps)
    scale = replace(scale, train=train, n_subsets=cfg.n_subsets or scale.n_subsets,
                    min_subset=cfg.min_subset or scale.min_subset)
    resolve_device(cfg.device)
    if cfg.searcher not in SEARCHERS:
        raise ValueError(f"unknown searcher {cfg.searcher!r}; choose one of {', '.join(SEARCHERS)}")
    if cfg.skopt_estimator not in ESTIMATORS:
        raise ValueError(f"unknown --skopt-estimator {cfg.skopt_estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    cfg.executor.validate(resolve_tracking_uri(cfg.tracking_uri))
    data = domain.load(unit, cfg.data, scale.max_val_units)
    plan = SubsetPlan(data.chunk_sizes(), scale.min_subset, scale.n_subsets, seed=cfg.seed)
    study = cfg.experiment or f"scal-{domain.name}-{unit}"
    settings = SearchSettings(domain, unit, budget, scale, seed=cfg.seed, searcher=cfg.searcher,
                              skopt_estimator=cfg.skopt_estimator)
    return Prepared(cfg, domain, unit, budget, settings, data, plan, study)


class TrackedTrials:
    """The search's `Trials`: trains through an executor, logs every trial as it finishes.

    Logging happens here, in the driver, whichever executor trained the trial. Trials already
    finished in MLflow (``done``: a resumed study's, by trial hash) are not trained again: the
    proposer hears their stored result at once.
    """

    def __init__(self, p: Prepared, tracker: StudyTracker, progress: Progress, executor,
                 done: dict[str, Any] | None = None):
        self.p, self.tracker, self.progress, self.executor = p, tracker, progress, executor
        self.done = dict(done or {})            # done_key(role, trial hash) -> finished MLflow run (resume)
        self.models: dict[str, torch.nn.Module] = {}   # trial hash -> grid model (current subset only)
        self.run_ids: dict[str, str] = {}       # trial hash -> its grid run (or probe run, if only that)
        self.threads: dict[str, int] = {}
        for key, r in sorted(self.done.items()):    # "grid:" sorts before "overfit_probe:": grid runs win
            h = key.split(":", 1)[1]
            self.run_ids.setdefault(h, r.info.run_id)
            self.threads.setdefault(h, int(r.data.tags.get(keys.THREADS, 0)))
        self.n_trials = self.n_reused = 0

    def run(self, specs: list[TrialSpec], role: str) -> list[TrialResult]:
        proposer = FixedProposer(specs)
        self.search(proposer, role)
        return proposer.results()

    def search(self, proposer: Proposer, role: str) -> None:
        self._role = role
        self.executor.run(_Reusing(proposer, self), role, self._log, keep_models=role == keys.ROLE_GRID)

    def begin(self, spec: TrialSpec, n_trials: int) -> None:
        self.progress.begin(spec.subset_size, n_trials, self._role)

    def is_done(self, spec: TrialSpec) -> bool:
        return done_key(self._role, spec.trial_hash()) in self.done

    def reused(self, spec: TrialSpec) -> TrialResult:
        self.n_reused += 1
        result = result_from_run(spec, self.done[done_key(self._role, spec.trial_hash())])
        self.progress.trial(result)
        return result

    def _log(self, out: TrialOutcome) -> None:
        h = out.spec.trial_hash()
        self.run_ids[h] = self.tracker.log_trial(
            out.spec, out.result, out.history, self._role, start_ms=out.start_ms, end_ms=out.end_ms,
            extra_tags={keys.NODE: out.node, keys.THREADS: out.threads})
        self.threads[h] = out.threads
        if out.model is not None:
            self.models[h] = out.model
        self.n_trials += 1
        self.progress.trial(out.result)
        raise_if_interrupted()   # the trial is logged; a Ctrl-C lost on its way stops the study here

    def model_for(self, result: TrialResult) -> torch.nn.Module:
        """The trial's trained model; a reused trial is trained again here, with its thread count
        (training is deterministic for a seed and thread count), and not logged twice."""
        h = result.spec.trial_hash()
        if h not in self.models:
            log.info("training %s again for the registry (its model was not kept)", h)
            self.models[h] = run_trial(self.p.context(), result.spec, keep_model=True, threads=self.threads.get(h) or None).model
        return self.models[h]


class _Reusing:
    """A proposer wrapper that answers already-finished trials from MLflow instead of the executor."""

    def __init__(self, inner: Proposer, trials: TrackedTrials):
        self.inner, self.trials = inner, trials
        self.n_trials = inner.n_trials
        self._started = False

    def suggest(self) -> TrialSpec | None | str:
        while True:
            spec = self.inner.suggest()
            if spec is None or spec == FINISHED:
                return spec
            if not self._started:
                self.trials.begin(spec, self.n_trials)
                self._started = True
            if not self.trials.is_done(spec):
                return spec
            self.inner.complete(spec, self.trials.reused(spec))

    def complete(self, spec: TrialSpec, result: TrialResult) -> None:
        self.inner.complete(spec, result)


def fingerprint(params: dict[str, Any]) -> str:
    """Hash of the study's parameters: the same command gives the same trials, so it can resume."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_study(cfg: StudyConfig) -> dict[str, Any]:
    """Run the study described by ``cfg``; returns the summary printed by ``scal study --json``.

    Resume: a study whose parent run did not finish (Ctrl-C, a crash, the driver killed) is
    continued by running the same command again (``resume=None``, the default) or with
    ``resume=True`` (an error if there is none); ``resume=False`` always starts a new study.
    Finished trials are found by trial hash and not run again, curve points and registry versions
    already logged are not logged twice, and child runs left RUNNING are marked KILLED.
    """
    p = prepare(cfg)
    metric = p.domain.metric(p.unit)
    tracker = StudyTracker(p.study, cfg.tracking_uri)
    params = _study_params(p)
    fp = fingerprint(params)
    done: dict[str, Any] = {}
    previous = tracker.find_unfinished(fp) if tracker.owns_parent and cfg.resume is not False else None
    if cfg.resume and previous is None:
        raise LookupError(f"no unfinished study {p.study!r} with these settings to resume in {tracker.uri}")
    if previous is not None:
        done = tracker.resume(previous)
        log.info("resuming study run %s: %d finished trials will not run again", previous.info.run_id, len(done))
    executor = p.executor()
    try:
        with interrupts_remembered():
            return _run(p, cfg, tracker, params, fp, done, executor, metric)
    finally:
        executor.close()


def _run(p: Prepared, cfg: StudyConfig, tracker: StudyTracker, params: dict[str, Any], fp: str,
         done: dict[str, Any], executor, metric) -> dict[str, Any]:
    parent = tracker.start(params, run_name=f"{p.study}-{p.budget.name}-seed{cfg.seed}",
                           tags={keys.FINGERPRINT: fp, keys.EXECUTOR: f"{executor.name} x{executor.concurrency}"})
    tracker.log_dict({"plan": p.plan.to_dict(), "budget": asdict(p.budget), "scale": asdict(p.settings.scale)}, "plan.json")
    log.info("study %s: subsets %s (%.2f orders of magnitude), %s executor, %d trial(s) at once", p.study,
             p.plan.sizes, p.plan.span_orders, executor.name, executor.concurrency)
    progress = Progress(len(p.plan.sizes), metric.name, enabled=cfg.progress)
    trials = TrackedTrials(p, tracker, progress, executor, done)
    name = registry.model_name(p.study)
    versions = registry.study_versions(tracker.client, name, parent) if done else {}
    logged_steps = tracker.curve_steps() if done else set()

    def on_subset(outcome: SubsetOutcome) -> None:
        progress.subset_done()
        best = outcome.best
        if outcome.size not in logged_steps:
            tracker.log_curve_point(outcome.size, best.score, best.n_params)
        if outcome.overfit is not None:
            tracker.log_dict(outcome.overfit.to_dict(), f"overfit/subset_{outcome.size}.json")
        seed_result = best.best_seed()
        if cfg.register and seed_result is not None and outcome.size not in versions:
            h = seed_result.spec.trial_hash()
            versions[outcome.size] = registry.register(
                tracker.client, name, trials.run_ids[h], trials.model_for(seed_result), seed_result, metric.name, parent)
        trials.models.clear()

    with tracker.closing():
        try:
            run_search(p.plan, p.settings, trials, on_subset)
        finally:
            progress.close()
        if cfg.register and versions:
            registry.set_largest(tracker.client, name, versions[max(versions)])
        summary = analyze_study(tracker, parent)
    summary.update(
        experiment_id=tracker.experiment_id, parent_run_id=parent, study=p.study, domain=p.domain.name, unit=p.unit,
        budget=p.budget.name, metric=metric.name, tracking_uri=tracker.uri, n_trials=trials.n_trials,
        n_reused=trials.n_reused, executor=executor.name, concurrency=executor.concurrency,
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
        "study.k_configs": b.k_configs, "study.n_seeds": b.n_seeds, "study.race_keep": b.race_keep, "study.bisect_steps": b.bisect_steps,
        "study.width_mults": ",".join(map(str, b.width_mults)), "study.lr_mults": ",".join(map(str, b.lr_mults)),
        "study.layer_offsets": ",".join(map(str, b.layer_offsets)),
        "study.overfit_criterion": f"final_train_loss < {b.overfit.ratio} * min_val_loss",
        "study.min_width": s.min_width, "study.max_width": s.max_width, "study.base_lr": s.lr,
        "study.searcher": p.settings.searcher + (f":{p.settings.skopt_estimator}" if p.settings.searcher == "skopt" else ""),
        "study.scheduler": p.cfg.executor.scheduler,
        "study.metric": p.domain.metric(p.unit).name, "study.best_guess_error": f"{p.data.best_guess_error():.6g}",
    }
    for k, v in asdict(s.train).items():
        params[f"study.train.{k}"] = v
    return params
