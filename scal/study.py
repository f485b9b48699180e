"""A whole scaling study: plan -> search -> MLflow -> registry -> analysis. The CLI's `study`.

Input is checked before anything is written (unknown domain/unit/budget, missing data, subsets
larger than the data), so a bad command leaves the store as it was. Once the parent run exists,
every finished trial and every finished subset is logged at once; if the study stops early the
parent run is marked FAILED (or KILLED on Ctrl-C) and what was logged stays.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from mlflow.tracking import MlflowClient

import domains
from domains.loop import resolve_device
from domains.protocol import Domain, DomainData, TrialResult, TrialSpec
from analysis.defaults import DEFAULT_N_BOOT
from analysis.fit import MIN_POINTS
from search.budget import Budget, OverfitCriterion, get_budget
from search.grid import max_grid_configs
from search.engine import SEARCHERS, SearchSettings, SubsetOutcome, run_search
from search.executor import ExecutorSettings, make_executor
from search.refine import ESTIMATORS
from search.subsets import SubsetPlan
from search.trial import FINISHED, FixedProposer, Proposer, TrialContext, TrialOutcome, run_trial
from scal import checks, faults, keys, names, registry, story
from scal.datasets import CONTEXT_POOL, StudyData
from scal.analyze import analyze_study
from scal.progress import Progress
from scal.provenance import scal_version
from scal.interrupts import interrupts_remembered, raise_if_interrupted
from scal.tracking import StudyTracker, open_client, result_from_run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyConfig:
    """What `scal study` takes. ``None`` overrides keep the budget's / domain's value."""

    domain: str = "lm"
    unit: str | None = None
    budget: str = "quick"
    data: str | None = None
    pool_size: int | None = None           # generated data's training pool, in the unit; None: the domain's default
    experiment: str | None = None
    tracking_uri: str | None = None
    seed: int = 0
    device: str = "auto"
    threads: int = 1                       # torch threads per trial, whichever executor trains it
    k_configs: int | None = None
    race_keep: int | None = None           # race configurations on their first seed, keep this many
    n_seeds: int | None = None
    n_subsets: int | None = None
    min_subset: int | None = None
    max_steps: int | None = None
    max_epochs: float | None = None        # step budget grows with the subset: passes over it (0: flat max_steps)
    overfit_ratio: float | None = None
    width_mults: tuple[float, ...] | None = None
    lr_mults: tuple[float, ...] | None = None
    layer_offsets: tuple[int, ...] | None = None
    register: bool = True
    n_boot: int = DEFAULT_N_BOOT             # bootstrap refits of the analysis's intervals
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
        return TrialContext(self.domain.name, self.data, self.plan, self.cfg.device, self.cfg.threads)

    @functools.cached_property
    def datasets(self) -> StudyData:
        """The pool's and the subsets' MLflow datasets (the loaded data is hashed once, here)."""
        return StudyData.of(self.domain, self.unit, self.cfg.data, self.data, self.plan)

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
    study = cfg.experiment or f"scal-{domain.name}-{unit}"
    checks.check_study_name(study, cfg.tracking_uri)
    _check_counts(cfg, budget, "layers" in scale.size)
    if budget.race_keep and cfg.searcher != "grid":
        raise ValueError("--race-keep races the Monte Carlo grid's configurations; use it with --searcher grid")
    if not budget.overfit.ratio > 0:
        raise ValueError(f"--overfit-ratio must be positive, got {budget.overfit.ratio}")
    if cfg.max_epochs is not None and not (math.isfinite(cfg.max_epochs) and cfg.max_epochs >= 0):
        raise ValueError(f"--max-epochs must be >= 0 (0: every subset gets --max-steps), got {cfg.max_epochs}")
    train = scale.train if cfg.max_steps is None else replace(scale.train, max_steps=cfg.max_steps)
    train = train if cfg.max_epochs is None else replace(train, max_epochs=float(cfg.max_epochs))
    scale = replace(scale, train=train, n_subsets=scale.n_subsets if cfg.n_subsets is None else cfg.n_subsets,
                    min_subset=scale.min_subset if cfg.min_subset is None else cfg.min_subset)
    resolve_device(cfg.device)
    if cfg.searcher not in SEARCHERS:
        raise ValueError(f"unknown searcher {cfg.searcher!r}; choose one of {', '.join(SEARCHERS)}")
    if cfg.skopt_estimator not in ESTIMATORS:
        raise ValueError(f"unknown --skopt-estimator {cfg.skopt_estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    cfg.executor.validate(checks.store_uri(cfg.tracking_uri))
    data = domain.load(unit, cfg.data, scale.max_val_units, pool_size=cfg.pool_size)
    chunk_sizes = data.chunk_sizes()
    _check_subsets_fit(int(chunk_sizes.sum()), scale.min_subset, scale.n_subsets)
    plan = SubsetPlan(chunk_sizes, scale.min_subset, scale.n_subsets, seed=cfg.seed)
    settings = SearchSettings(domain, unit, budget, scale, seed=cfg.seed, searcher=cfg.searcher,
                              skopt_estimator=cfg.skopt_estimator)
    return Prepared(cfg, domain, unit, budget, settings, data, plan, study)


MAX_SEED = 2**32 - 1   # a 32-bit seed: numpy and torch take it, and trial seeds (seed * 1000 + i) stay in range
MAX_SEEDS = 100        # seeds per configuration: each is a whole training run, and the median of 100 hardly moves
MAX_THREADS = 1024     # torch threads per trial: past the cores of any machine scal runs on
MAX_CONCURRENT = 4096  # trials at once: past what any cluster scal runs on holds


def _check_counts(cfg: StudyConfig, budget: Budget, has_depth: bool) -> None:
    """Counts are checked as given, before anything runs: 0 is not "the default" (None is), and
    none may ask for more than the study can use (a silent cap would misreport the study)."""
    checks.count("--seed", cfg.seed, 0, MAX_SEED)
    grid = max_grid_configs(budget, has_depth)
    checks.count("--k-configs", budget.k_configs, 1, grid,
                 why="the configurations the grid of --width-mults x --lr-mults x --layer-offsets holds")
    checks.count("--n-seeds", budget.n_seeds, 1, MAX_SEEDS)
    checks.count("--threads", cfg.threads, 1, MAX_THREADS)
    checks.count("--n-boot", cfg.n_boot, 1, checks.MAX_BOOT)
    # A trial may reserve less than a CPU (0.5 packs two tiny trials per core) and still train on
    # its one thread; more threads than the CPUs it reserves would make trials side by side share cores.
    if cfg.executor.resolved_kind() == "ray" and cfg.threads > max(1.0, cfg.executor.cpus_per_trial):
        raise ValueError(f"--threads {cfg.threads} is more than the {cfg.executor.cpus_per_trial:g} CPUs a Ray trial "
                         "reserves (--cpus-per-trial): trials side by side would share cores")
    checks.count("--race-keep", budget.race_keep, 0, budget.k_configs - 1,
                 why=f"0 races nothing; racing keeps fewer than the {budget.k_configs} configurations")
    if cfg.n_subsets is not None:
        checks.count("--n-subsets", cfg.n_subsets, MIN_POINTS,
                     why="a learning curve is fitted to one point per subset; `scal search-size` searches one subset")
    if cfg.executor.max_concurrent is not None:
        checks.count("--max-concurrent", cfg.executor.max_concurrent, 1, MAX_CONCURRENT)
    for option, value in (("--min-subset", cfg.min_subset), ("--max-steps", cfg.max_steps), ("--pool-size", cfg.pool_size)):
        if value is not None:
            checks.count(option, value, 1)


def _check_subsets_fit(total_units: int, min_subset: int, n_subsets: int) -> None:
    """The largest doubling subset (min_subset * 2^(n_subsets-1)) must fit in the data; checked
    before `SubsetPlan` lists the sizes, which for an absurd --n-subsets would never end."""
    most = (total_units // min_subset).bit_length()   # the k with min_subset * 2^(k-1) <= total_units
    if most == 0:
        raise ValueError(f"--min-subset {min_subset:,} exceeds the training data ({total_units:,} units)")
    if n_subsets > most:
        raise ValueError(f"the largest of {n_subsets} doubling subsets from {min_subset:,} units exceeds the training data "
                         f"({total_units:,} units): at most {most} fit; lower --n-subsets or --min-subset")


@dataclass
class _Finished:
    """A trial already trained in this study: where, for which roles its MLflow tree shows it, and
    its result (in memory for this session's trials; read from ``run`` for a resumed study's)."""

    run_id: str                              # the run that trained it
    status: str
    roles: set[str]
    threads: int = 0
    result: TrialResult | None = None
    run: Any = None

    def shared_with(self, role: str) -> bool:
        """Reusable for ``role``: always by the role that trained it; by another only when it ran
        to its end (a scheduler-stopped grid trial is not a finished probe)."""
        return role in self.roles or self.status in keys.SHARED_STATUSES


class TrackedTrials:
    """The search's `Trials`: trains through an executor, logs every trial as it finishes.

    Logging happens here, in the driver, whichever executor trained the trial. No trial spec is
    trained twice in a study: one whose hash already finished, in this session or in the study
    being resumed, and in any role, is answered from that result. When another role asks for it
    (the grid's centre at its first seed is the overfitting probe that found it), a *reference
    run* is logged in that role (tag `keys.REUSED_FROM` = the training run), so the MLflow tree
    and the analysis see the grid's trial, and nothing is trained again.
    """

    def __init__(self, p: Prepared, tracker: StudyTracker, progress: Progress, executor,
                 done: list[Any] | None = None):
        self.p, self.tracker, self.progress, self.executor = p, tracker, progress, executor
        self.finished: dict[str, _Finished] = {}        # trial hash -> where it was trained
        self.models: dict[str, torch.nn.Module] = {}   # trial hash -> trained model (current subset only)
        self.run_ids: dict[str, str] = {}       # trial hash -> the run that trained it
        for r in done or ():                    # a resumed study's finished runs (references included)
            h, tags = r.data.tags[keys.TRIAL_HASH], r.data.tags
            trained_in = tags.get(keys.REUSED_FROM) or r.info.run_id
            f = self.finished.setdefault(h, _Finished(trained_in, tags.get(keys.STATUS, "ok"), set(),
                                                      int(tags.get(keys.THREADS, 0)), run=r))
            f.roles.add(tags.get(keys.ROLE, ""))
            self.run_ids[h] = trained_in
        self.n_trials = self.n_reused = 0

    def run(self, specs: list[TrialSpec], role: str) -> list[TrialResult]:
        proposer = FixedProposer(specs)
        self.search(proposer, role)
        return proposer.results()

    def search(self, proposer: Proposer, role: str) -> None:
        self._role = role
        # Every role keeps its models (for this subset only): a probe's model is the grid's
        # registry candidate when the grid reuses that probe.
        try:
            self.executor.run(_Reusing(proposer, self), role, self._log, keep_models=True, watcher=self)
        except BaseException as exc:   # trials training when the search stopped end with the study
            self.tracker.end_live("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise

    # --- the executor's `TrialWatcher`: a trial's run is live while it trains ----------------------
    def started(self, spec: TrialSpec, start_ms: int) -> str:
        return self.tracker.start_trial(spec, self._role, start_ms, dataset=self.p.datasets.subset(spec.subset_size))

    def round(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        self.tracker.log_round(run_id, metrics, step)

    def begin(self, spec: TrialSpec, n_trials: int) -> None:
        self.progress.begin(spec.subset_size, n_trials, self._role)

    def is_done(self, spec: TrialSpec) -> bool:
        f = self.finished.get(spec.trial_hash())
        return f is not None and f.shared_with(self._role)

    def reused(self, spec: TrialSpec) -> TrialResult:
        """The finished trial's result; a reference run if this role has not logged it yet."""
        f = self.finished[spec.trial_hash()]
        result = f.result if f.result is not None else result_from_run(spec, f.run)
        if self._role not in f.roles:
            self.tracker.log_trial(spec, result, [], self._role,
                                   extra_tags={keys.REUSED_FROM: f.run_id, keys.THREADS: f.threads},
                                   dataset=self.p.datasets.subset(spec.subset_size))
            f.roles.add(self._role)
        self.n_reused += 1
        self.progress.trial(result)
        return result

    def _log(self, out: TrialOutcome) -> None:
        h = out.spec.trial_hash()
        self.run_ids[h] = self.tracker.log_trial(
            out.spec, out.result, out.history, self._role, start_ms=out.start_ms, end_ms=out.end_ms,
            extra_tags={keys.NODE: out.node, keys.THREADS: out.threads}, run_id=out.live,
            dataset=self.p.datasets.subset(out.spec.subset_size))
        if out.result.status in keys.DONE_STATUSES:
            self.finished[h] = _Finished(self.run_ids[h], out.result.status, {self._role}, out.threads, out.result)
        if out.model is not None:
            self.models[h] = out.model
        self.n_trials += 1
        self.progress.trial(out.result)
        raise_if_interrupted()   # the trial is logged; a Ctrl-C lost on its way stops the study here

    def model_for(self, result: TrialResult) -> torch.nn.Module:
        """The trial's trained model. One trained before a resume is not in memory: it is trained
        again here, with its thread count (training is deterministic for a seed and thread
        count), for the registry only, and not logged twice."""
        h = result.spec.trial_hash()
        if h not in self.models:
            log.info("training %s again for the registry (its model was not kept)", h)
            threads = self.finished[h].threads if h in self.finished else 0
            self.models[h] = run_trial(self.p.context(), result.spec, keep_model=True, threads=threads or None).model
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


def fingerprint(params: dict[str, Any], version: str | None = None) -> str:
    """Hash of the study's parameters and of the scal version that runs it (default: this one's):
    the same command gives the same trials, so it can resume; a study begun by another version
    is not continued by this one, whose trials may differ (MLflow's multistep example's
    ``_already_ran`` checks the source version the same way)."""
    blob = {"params": params, "scal_version": scal_version() if version is None else version}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_study(cfg: StudyConfig) -> dict[str, Any]:
    """Run the study described by ``cfg``; returns the summary printed by ``scal study --json``.

    Resume: a study whose parent run did not finish (Ctrl-C, a crash, the driver killed) is
    continued by running the same command again (``resume=None``, the default) or with
    ``resume=True`` (an error if there is none); ``resume=False`` always starts a new study.
    Finished trials are found by trial hash and not run again, curve points and registry versions
    already logged are not logged twice, and child runs left RUNNING are marked KILLED.
    """
    p = prepare(cfg)
    uri = checks.store_uri(cfg.tracking_uri)
    if cfg.resume and not checks.study_exists(uri, p.study):   # said before the store or experiment is created
        raise LookupError(f"no unfinished study {p.study!r} with these settings to resume in {uri}")
    # One study of an experiment per store at a time: a second identical command is refused
    # before it writes anything (a killed driver's lock goes with it, so resume still works).
    with faults.study_lock(uri, p.study):
        store = faults.StoreFile.of(uri)
        try:
            return _locked(p, cfg, open_client(uri))   # the study's one client, passed down
        except Exception as exc:   # a vanished or read-only store, a full disk: one line, not a traceback
            message = faults.describe(exc, uri, store)
            if message is None:
                raise
            log.debug("fault", exc_info=True)
            raise faults.Fault(message) from exc


def _locked(p: Prepared, cfg: StudyConfig, client: MlflowClient) -> dict[str, Any]:
    metric = p.domain.metric(p.unit)
    tracker = StudyTracker(p.study, client)
    params = _study_params(p)
    fp = fingerprint(params)
    done: list[Any] = []
    previous = tracker.find_unfinished(fp) if tracker.owns_parent and cfg.resume is not False else None
    if cfg.resume and previous is None:
        raise LookupError(f"no unfinished study {p.study!r} with these settings to resume in {tracker.uri}")
    # The executor first: should it fail to start (a full TMPDIR stops Ray), no run has been reopened yet.
    executor = p.executor()
    try:
        if previous is not None:
            done = tracker.resume(previous)
            log.info("resuming study run %s: %d finished trials will not run again", previous.info.run_id, len(done))
        with interrupts_remembered():
            return _run(p, cfg, tracker, params, fp, done, executor, metric)
    finally:
        executor.close()


def _run(p: Prepared, cfg: StudyConfig, tracker: StudyTracker, params: dict[str, Any], fp: str,
         done: list[Any], executor, metric) -> dict[str, Any]:
    parent = tracker.start(params, run_name=f"{p.study}-{p.budget.name}-seed{cfg.seed}",
                           tags={keys.FINGERPRINT: fp, keys.EXECUTOR: f"{executor.name} x{executor.concurrency}",
                                 keys.DATA_DIGEST: p.datasets.pool_digest})
    tracker.log_dict({"plan": p.plan.to_dict(), "budget": asdict(p.budget), "scale": asdict(p.settings.scale)}, "plan.json")
    _describe(p, tracker, metric, names.model_name(p.study) if cfg.register else None)
    log.info("study %s: subsets %s (%.2f orders of magnitude), %s executor, %d trial(s) at once", p.study,
             p.plan.sizes, p.plan.span_orders, executor.name, executor.concurrency)
    progress = Progress(len(p.plan.sizes), metric.name, enabled=cfg.progress)
    trials = TrackedTrials(p, tracker, progress, executor, done)
    name = names.model_name(p.study)
    versions = registry.study_versions(tracker.client, name, parent) if done else {}
    logged_steps = tracker.curve_steps() if done else set()

    def on_subset(outcome: SubsetOutcome) -> None:
        progress.subset_done()
        best = outcome.best    # the one best-fit rule (search.bestfit), as the analysis applies it
        if outcome.overfit is not None:
            tracker.log_dict(outcome.overfit.to_dict(), f"overfit/subset_{outcome.size}.json")
        if best is None:
            log.warning("subset %d: no trial finished with a value; it has no best fit", outcome.size)
            trials.models.clear()
            return
        if outcome.size not in logged_steps:
            tracker.log_curve_point(outcome.size, best.score, best.n_params)
        seed_result = best.best_seed()
        if cfg.register and seed_result is not None and outcome.size not in versions:
            h = seed_result.spec.trial_hash()
            versions[outcome.size] = registry.register(
                tracker.client, name, trials.run_ids[h], trials.model_for(seed_result), seed_result, metric.name, parent,
                domain=p.domain.name, unit=p.unit, data=p.data)
        trials.models.clear()

    with tracker.closing():
        try:
            run_search(p.plan, p.settings, trials, on_subset)
        finally:
            progress.close()
        if cfg.register and versions:
            registry.set_largest(tracker.client, name, versions[max(versions)])
        summary = analyze_study(tracker, parent, n_boot=cfg.n_boot)
    summary.update(
        experiment_id=tracker.experiment_id, parent_run_id=parent, study=p.study, domain=p.domain.name, unit=p.unit,
        budget=p.budget.name, metric=metric.name, tracking_uri=tracker.uri, n_trials=trials.n_trials,
        n_reused=trials.n_reused, executor=executor.name, concurrency=executor.concurrency,
        registered_model=name if cfg.register else None,
        registered_versions={str(k): v for k, v in sorted(versions.items())},
    )
    return summary


def _describe(p: Prepared, tracker: StudyTracker, metric, registered_model: str | None) -> None:
    """What the MLflow UI says of the study before its analysis: the experiment's description, the
    study run's (the analysis replaces it, `scal.analyze`), and the pool as the run's dataset input."""
    tracker.describe_experiment(story.experiment_description(
        p.domain.name, p.unit, metric.name, metric.description, metric.lower_is_better, registered_model))
    tracker.set_note(story.running_note(p.study, p.plan.sizes, p.unit, p.budget.name))
    tracker.log_input(p.datasets.pool(), CONTEXT_POOL)


def _study_params(p: Prepared) -> dict[str, Any]:
    s, b = p.settings.scale, p.budget
    params = {
        "study.domain": p.domain.name, "study.unit": p.unit, "study.budget": b.name, "study.seed": p.cfg.seed,
        "study.data": p.cfg.data or "embedded", "study.device": p.cfg.device, "study.threads": p.cfg.threads,
        # the training pool in the unit, whatever set it (--pool-size, --data, the domain's default)
        "study.pool_size": int(p.data.chunk_sizes().sum()),
        "study.subset_sizes": ",".join(map(str, p.plan.sizes)), "study.span_orders": f"{p.plan.span_orders:.3f}",
        "study.k_configs": b.k_configs, "study.n_seeds": b.n_seeds, "study.race_keep": b.race_keep, "study.bisect_steps": b.bisect_steps,
        "study.width_mults": ",".join(map(str, b.width_mults)), "study.lr_mults": ",".join(map(str, b.lr_mults)),
        "study.layer_offsets": ",".join(map(str, b.layer_offsets)),
        "study.overfit_criterion": f"final_train_loss < {b.overfit.ratio} * min_val_loss",
        # what a trial contributes (domains.loop.round_rank); in the fingerprint, so a study begun
        # under another rule is not resumed under this one
        "study.trial_value": "min over validation rounds of the metric",
        "study.min_width": s.min_width, "study.max_width": s.max_width, "study.base_lr": s.lr,
        "study.searcher": p.settings.searcher + (f":{p.settings.skopt_estimator}" if p.settings.searcher == "skopt" else ""),
        "study.scheduler": p.cfg.executor.scheduler,
        # the analysis's bootstrap refits: they set its intervals, not its trials
        "study.n_boot": p.cfg.n_boot,
        "study.metric": p.domain.metric(p.unit).name, "study.best_guess_error": f"{p.data.best_guess_error():.6g}",
    }
    for k, v in asdict(s.train).items():
        params[f"study.train.{k}"] = v
    return params
