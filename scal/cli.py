"""The ``scal`` command line. Every command calls the same library functions as MLproject and tests.

    scal study [--domain lm] [--unit char] [--budget quick] [--json]   the whole pipeline
    scal search-size --domain lm [--subset-size N]                    smallest overfitting model
    scal train --domain lm --subset-size N --width W                  one trial
    scal analyze [--run-id ID | --experiment NAME]                    fit an existing study
    scal report [--run-id ID | --experiment NAME] [--out-dir DIR]     report.md with the plots
    scal fit FILE.csv --x COL --y COL [--group COL] [--form auto]     fit curves from any table
    scal surface [FILE.csv --n COL --d COL --y COL] [--predict N,D] [--backtest]   loss surface L(N, D) of tuned cells
    scal compare A B [--size M]  |  scal compare FILE.csv --group COL  which curve is lower; crossings only if tested
    scal predict --run-id ID [--size M] [--target-error E]            plan data, model, compute
    scal domains                                                      list domains, units, metrics
    scal ui                                                           MLflow UI on 127.0.0.1

Bad input ends with one line ``error: ...`` on stderr and exit code 2. With ``--json`` stdout holds
exactly one JSON object; everything else (progress, tables, MLflow's chatter) goes to stderr.
``--quiet`` leaves only results and errors. docs/cli.md lists every option and the JSON schemas;
tests/test_cli.py checks that it matches this file.

The old names of renamed options (report --out, fit --predict, compare --at, predict --csv) are
gone after their one release; docs/cli.md's changelog says which names replace them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
from typing import Any, Optional, Sequence

import typer

from analysis.defaults import DEFAULT_LEVEL, DEFAULT_N_BOOT
from analysis.jsonsafe import jsonable
from scal import checks

# add_completion=False: typer's own --show-completion/--install-completion guess the shell and
# ignore one that is named (`--show-completion zsh` from bash prints the bash script); scal's take
# the shell as their value (`_root`), with typer's scripts and completion classes behind them.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},   # inherited by every command
                  help="Measure and predict deep-learning scaling (Hestness et al. 2017), tracked in MLflow.")

BUDGET_HELP = "smoke (tests, seconds), quick (default, minutes), full (real studies, hours)"
EXECUTOR_HELP = "auto (Ray when more than one trial fits at once or --ray-address is given, else local) | local | ray"
RAY_ADDRESS_HELP = ("join this Ray cluster (needs an http(s) --tracking-uri); default: $RAY_ADDRESS, Ray's own variable, "
                    "where it is set, else a local Ray instance on 127.0.0.1")
CPUS_HELP = "CPUs a Ray trial reserves (how many run at once); default: --threads"
THREADS_HELP = ("torch threads per trial, whichever executor trains it; a trial's numbers depend on it, "
                "so it is logged and part of the resume fingerprint")
GPUS_HELP = "GPUs per Ray trial, fractions allowed; default 1 where CUDA is, else 0"
DOMAIN_HELP = "domain name (see `scal domains`)"
UNIT_HELP = "subset-size unit; default: the domain's first (lm: char)"
DATA_HELP = ("your own data (lm: .txt file or folder; nmt: TSV of pairs or a folder with train.src/train.tgt; "
             "image: IDX files, train/ and val/ image folders or CIFAR batches; speech: LibriSpeech-style folder, "
             "a .tsv/.csv manifest, or synthetic:sentences for the larger synthetic set); default: the domain's "
             "built-in data")
SEED_HELP = "seed of the subset permutation and of the trials"
DEVICE_HELP = "auto (CUDA where there is one) | cpu | cuda"
OVERFIT_HELP = "a model overfits when its final train loss < ratio * its best val loss; default from budget (0.9)"
STORE_HELP = "MLflow store; default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the current folder"
READ_STORE_HELP = "MLflow store of the study; default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here"
RUN_ID_HELP = "the study's parent run id"
STUDY_HELP = "study (experiment) name: its newest study run"
N_BOOT_HELP = "bootstrap resamples for the intervals"
JSON_HELP = "print one JSON object on stdout (schema in docs/cli.md); the rest goes to stderr"
VERBOSE_HELP = "debug logging (MLflow's failed SQL statements included)"
QUIET_HELP = "no progress and no log lines: only the results and errors"
POOL_HELP = ("training pool of generated data, in the unit (toy: examples, default 32,768; speech: synthetic "
             "utterances, default 8,192); not with --data")
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")


def _version(value: bool) -> None:
    if value:
        from scal.provenance import scal_version

        typer.echo(f"scal {scal_version()}")
        raise typer.Exit()


def _completion(action: str):
    """Eager callback of --show-completion / --install-completion SHELL (typer's script for that shell)."""
    def callback(ctx: typer.Context, param: Any, value: str | None) -> None:
        if value is None or ctx.resilient_parsing:
            return
        if value not in SHELLS:
            raise typer.BadParameter(f"takes one of {', '.join(SHELLS)}, got {value!r}", param_hint=f"--{action}-completion")
        from typer import completion

        (completion.show_callback if action == "show" else completion.install_callback)(ctx, param, value)
    return callback


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_version, help="print the version and exit"),
    show_completion: Optional[str] = typer.Option(None, metavar="SHELL", is_eager=True, expose_value=False,
                                                  callback=_completion("show"),
                                                  help=f"print the completion script for SHELL ({', '.join(SHELLS)})"),
    install_completion: Optional[str] = typer.Option(None, metavar="SHELL", is_eager=True, expose_value=False,
                                                     callback=_completion("install"),
                                                     help="install completion for SHELL (in its startup file)"),
) -> None:
    """The options of ``scal`` itself, before the command (its help is the app's, above)."""


def _executor(kind: str, ray_address: str | None, cpus: float | None, threads: int, gpus: float | None,
              max_concurrent: int | None, scheduler: str = "fifo"):
    from search.executor import ExecutorSettings

    if cpus is None:   # a Ray trial reserves the cores its threads use
        cpus = float(threads)
    if gpus is None:   # one GPU per trial where there are GPUs, none elsewhere
        import torch

        gpus = 1.0 if torch.cuda.is_available() else 0.0
    return ExecutorSettings(kind=kind, ray_address=_none(ray_address),
                            cpus_per_trial=cpus, gpus_per_trial=gpus, max_concurrent=max_concurrent,
                            scheduler=scheduler)


def _setup_logging(verbose: bool, quiet: bool = False) -> None:
    """Log lines on stderr: INFO (progress off a terminal included), DEBUG with --verbose, only
    warnings and errors with --quiet."""
    if verbose and quiet:
        _fail("--verbose and --quiet exclude each other")
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO,
                        stream=sys.stderr, format="%(levelname).1s %(name)s: %(message)s", force=True)
    for noisy in ("alembic", "mlflow", "urllib3", "matplotlib", "PIL", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # MLflow logs every failed SQL statement with its traceback before raising it; a store that
    # fails under a study is reported once, as one line (scal.faults), so those stay quiet
    # unless --verbose asks for them.
    if not verbose:
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


def _quiet_mlflow() -> None:
    """--quiet on a command that registers models: MLflow prints its registry news ("Created
    version '2' of model ...") to its own stream, past the logging levels; this closes that stream."""
    from mlflow.utils.logging_utils import disable_logging

    disable_logging()


def _none(value: str | None) -> str | None:
    """MLproject passes an absent text option as ""; treat it as not given."""
    return None if value == "" else value


def _count(text: str) -> int | None:
    """An integer option MLproject may pass empty: "" (left out there) is None, the budget's
    default; a typed 0 stays 0, and the checks reject it (0 is not a way to say "default")."""
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an integer") from None


def _check_fit_options(n_boot: int, holdout: int | None, target_error: float | None = None,
                       sizes: Sequence[float] = (), size_option: str = "--size") -> None:
    """The fitting options every analysis command shares, checked before anything is read or written."""
    checks.count("--n-boot", n_boot, 1, checks.MAX_BOOT)
    if holdout is not None:
        checks.count("--holdout", holdout, 0, why="the number of largest points held out; 0 holds out none")
    for m in sizes:
        checks.positive(size_option, m)
    if target_error is not None:
        checks.positive("--target-error", target_error)


LEVEL_HELP = "coverage of the predictive intervals for a new measurement at each size (0 < level < 1)"


def _check_level(level: float) -> None:
    """--level is a probability; checked before the fitting, by the rule the fits use."""
    from analysis.fit import check_level

    check_level(level)


def _numbers(text: str | None, kind: type, option: str) -> tuple | None:
    """``"0.5,1,2"`` -> (0.5, 1.0, 2.0); a malformed list is a one-line error."""
    if not text:
        return None
    try:
        values = tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        _fail(f"{option} takes comma-separated {kind.__name__}s, got {text!r}")
    if not values or (kind is float and not all(math.isfinite(v) and v > 0 for v in values)):
        _fail(f"{option} needs at least one value, all positive and finite for multipliers, got {text!r}")
    return values


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


@contextlib.contextmanager
def _guarded(as_json: bool):
    """One-line errors for bad input; stdout kept clean for the JSON object."""
    target = sys.stderr if as_json else sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            yield target
    except (ValueError, LookupError, FileNotFoundError) as exc:  # DataError, FitError, StudyNotFound among them
        _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except Exception as exc:
        from scal.faults import EXIT_FAULT, Fault, StudyBusy

        if isinstance(exc, StudyBusy):     # refused before anything was written, like bad input
            _fail(str(exc))
        if isinstance(exc, Fault):         # the store or the disk failed under the study: one line
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_FAULT)
        raise
    except KeyboardInterrupt as exc:   # Ctrl-C, or SIGTERM (`scal.interrupts.Terminated`): the study ends KILLED
        from scal.interrupts import Terminated

        said, code = ("terminated (SIGTERM)", 143) if isinstance(exc, Terminated) else ("interrupted", 130)
        typer.echo(f"{said}: finished trials stay in MLflow; the study's parent run is marked KILLED", err=True)
        raise typer.Exit(code)


def _emit(obj: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(jsonable(obj)) + "\n")   # NaN -> null, inf -> "inf" (analysis.jsonsafe)
        sys.stdout.flush()


@app.command()
def study(
    domain: str = typer.Option("lm", help=DOMAIN_HELP),
    unit: Optional[str] = typer.Option(None, help=UNIT_HELP),
    budget: str = typer.Option("quick", help=BUDGET_HELP),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    pool_size: Optional[int] = typer.Option(None, parser=_count, metavar="INTEGER", help=POOL_HELP),
    experiment: Optional[str] = typer.Option(None, help="MLflow experiment (study) name; default scal-<domain>-<unit>"),
    tracking_uri: Optional[str] = typer.Option(None, help=STORE_HELP),
    seed: int = typer.Option(0, help=SEED_HELP),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    threads: int = typer.Option(1, help=THREADS_HELP),
    k_configs: Optional[int] = typer.Option(None, parser=_count, metavar="INTEGER",
                                            help="configurations per subset (Monte Carlo grid); default from budget"),
    n_seeds: Optional[int] = typer.Option(None, parser=_count, metavar="INTEGER", help="seeds per configuration; default from budget"),
    race_keep: Optional[int] = typer.Option(None, parser=_count, metavar="INTEGER", help="race the K configurations on their first seed; only the best N "
                                            "get the other seeds (0: no racing, the default)"),
    n_subsets: Optional[int] = typer.Option(None, help="number of doubling subsets; default from budget"),
    min_subset: Optional[int] = typer.Option(None, help="smallest subset in the domain's unit; default from budget"),
    max_steps: Optional[int] = typer.Option(None, help="optimizer steps cap per trial; default from budget"),
    max_epochs: Optional[float] = typer.Option(None, help="step budget per trial: this many passes over its subset, "
                                               "capped by --max-steps (0: every subset gets --max-steps); default from budget"),
    overfit_ratio: Optional[float] = typer.Option(None, help=OVERFIT_HELP),
    width_mults: Optional[str] = typer.Option(None, help="grid multipliers of the width, e.g. 0.5,1,2; default from budget"),
    lr_mults: Optional[str] = typer.Option(None, help="grid multipliers of the learning rate, e.g. 0.5,1,2"),
    layer_offsets: Optional[str] = typer.Option(None, help="grid offsets of the depth, e.g. 0,1"),
    register: bool = typer.Option(True, help="register each subset's best-fit model in the model registry"),
    n_boot: int = typer.Option(DEFAULT_N_BOOT, help=N_BOOT_HELP + " of the study's analysis"),
    searcher: str = typer.Option("grid", help="grid (Monte Carlo grid, the paper's) | skopt (Bayesian refinement)"),
    skopt_estimator: str = typer.Option("GP", help="skopt's surrogate: GP, RF or ET"),
    scheduler: str = typer.Option("fifo", help="fifo (every trial runs to its end) | asha (stop poor grid trials early; Ray)"),
    executor: str = typer.Option("auto", help=EXECUTOR_HELP),
    ray_address: Optional[str] = typer.Option(None, envvar="RAY_ADDRESS", help=RAY_ADDRESS_HELP),
    cpus_per_trial: Optional[float] = typer.Option(None, help=CPUS_HELP),
    gpus_per_trial: Optional[float] = typer.Option(None, help=GPUS_HELP),
    max_concurrent: Optional[int] = typer.Option(None, help="at most this many trials at once; default: what the cluster holds"),
    resume: Optional[bool] = typer.Option(None, "--resume/--no-resume",
                                          help="continue the unfinished study with these settings (default: if there is one)"),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    verbose: bool = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
) -> None:
    """Run a whole scaling study: subsets, model-size search, MLflow, registry, fits."""
    _setup_logging(verbose, quiet)
    with _guarded(as_json) as out:
        uri = checks.check_store(tracking_uri, create=True)   # first: before seconds of imports
        from scal.study import StudyConfig, run_study

        cfg = StudyConfig(domain=domain, unit=_none(unit), budget=budget, data=_none(data), pool_size=pool_size,
                          experiment=_none(experiment), tracking_uri=uri, seed=seed, device=device, threads=threads,
                          k_configs=k_configs,
                          n_seeds=n_seeds, race_keep=race_keep, n_subsets=n_subsets, min_subset=min_subset, max_steps=max_steps,
                          max_epochs=max_epochs, overfit_ratio=overfit_ratio, width_mults=_numbers(width_mults, float, "--width-mults"),
                          lr_mults=_numbers(lr_mults, float, "--lr-mults"),
                          layer_offsets=_numbers(layer_offsets, int, "--layer-offsets"), register=register, n_boot=n_boot,
                          searcher=searcher, skopt_estimator=skopt_estimator, resume=resume, progress=not quiet,
                          executor=_executor(executor, ray_address, cpus_per_trial, threads, gpus_per_trial, max_concurrent,
                                             scheduler))
        if quiet:
            _quiet_mlflow()
        summary = run_study(cfg)
        print(_human_summary(summary), file=out)
    _emit({k: v for k, v in summary.items() if k != "table"}, as_json)


def _human_summary(s: dict[str, Any]) -> str:
    lo, hi = s["beta_g_interval"]
    plo, phi = s["beta_p_interval"]
    return (
        f"\n{s['decision']}\n\n{s['table']}\n\n"
        f"learning curve  form {s['form']}: beta_g = {s['beta_g']:.3f}, 95% [{lo:.3f}, {hi:.3f}], "
        f"floor {s['gamma']:.4g}" + (f" [{_fmt(s['gamma_interval'][0])}, {_fmt(s['gamma_interval'][1])}]"
                                     if s["gamma_interval"][0] is not None and math.isfinite(s["gamma_interval"][0])
                                     else " (no floor term)" if s["form"] == "m1" else "")
        + (f", held-out RMSE(log) {s['holdout_rmse_log']:.3g}" if s.get("holdout_rmse_log") is not None else "")
        + "\n"
        f"model size      s(m)   = {s['sigma']:.4g} * m^{s['beta_p']:.3f}   beta_p 95% [{plo:.3f}, {phi:.3f}]"
        f"{'  (sublinear)' if s['sublinear'] else ''}\n"
        + _surface_lines(s.get("surface")) +
        f"report: {s['artifacts_dir']}/report.md with learning_curve.png, model_size.png, residuals.png (also in the run's artifacts)\n"
        f"MLflow: experiment {s['experiment_id']}, parent run {s['parent_run_id']} in {s['tracking_uri']}\n"
        f"open it with: scal ui --tracking-uri {s['tracking_uri']}"
    )


def _surface_lines(rec: dict[str, Any] | None) -> str:
    from scal.surface import summary_lines

    return summary_lines(rec)


FORM_HELP = "learning-curve form: auto (chosen by held-out extrapolation) | m1 | m2 | m3 | m4 | bnsl"
HOLDOUT_HELP = "hold out the K largest points to score extrapolation (auto: default a fifth of the points)"


def _study_run(run_id: str | None, experiment: str | None, tracking_uri: str | None):
    """(the command's MLflow client, parent run id) of the study named by --run-id or
    --experiment, in a store that exists (reading never creates one)."""
    if not run_id and not experiment:
        raise ValueError("give --run-id or --experiment (or a CSV file)")
    uri = checks.check_store(tracking_uri, create=False)
    from scal.reader import latest_study
    from scal.tracking import open_client

    client = open_client(uri)   # the command's one client: everything below reads and logs through it
    return client, run_id or latest_study(client, experiment)


def _analyze(client, run_id: str, n_boot, out_dir, form, holdout, target_error,
             include_compute_limited: bool = False) -> dict[str, Any]:
    from scal.analyze import analyze_study
    from scal.tracking import StudyTracker

    tracker = StudyTracker.for_run(run_id, client)
    summary = analyze_study(tracker, run_id, n_boot=n_boot, out_dir=out_dir, form=form, holdout=holdout,
                            target_error=target_error, include_compute_limited=include_compute_limited)
    summary.update(experiment_id=tracker.experiment_id, parent_run_id=run_id, tracking_uri=tracker.uri)
    return summary


@app.command()
def analyze(
    run_id: Optional[str] = typer.Option(None, help=RUN_ID_HELP),
    experiment: Optional[str] = typer.Option(None, help=STUDY_HELP),
    tracking_uri: Optional[str] = typer.Option(None, help=READ_STORE_HELP),
    form: str = typer.Option("auto", help=FORM_HELP),
    holdout: Optional[int] = typer.Option(None, help=HOLDOUT_HELP),
    target_error: Optional[float] = typer.Option(None, help="also plan the data, model and compute for this error"),
    n_boot: int = typer.Option(DEFAULT_N_BOOT, help=N_BOOT_HELP),
    out_dir: Optional[str] = typer.Option(None, help="also write the plots, tables and report.md here"),
    include_compute_limited: bool = typer.Option(False, "--include-compute-limited",
                                                 help="fit the compute-limited subsets too (they are labelled either way)"),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    verbose: bool = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
) -> None:
    """Fit an existing study's learning and model-size curves, reading its runs from MLflow."""
    _setup_logging(verbose, quiet)
    with _guarded(as_json) as out:
        _check_fit_options(n_boot, holdout, target_error)
        client, rid = _study_run(run_id, experiment, tracking_uri)
        summary = _analyze(client, rid, n_boot, out_dir, form, holdout, target_error, include_compute_limited)
        print(_human_summary(summary), file=out)
    _emit({k: v for k, v in summary.items() if k != "table"}, as_json)


@app.command()
def report(
    run_id: Optional[str] = typer.Option(None, help=RUN_ID_HELP),
    experiment: Optional[str] = typer.Option(None, help=STUDY_HELP),
    tracking_uri: Optional[str] = typer.Option(None, help=READ_STORE_HELP),
    out_dir: Optional[str] = typer.Option(None, help="report folder; default scal-report-<run id>"),
    form: str = typer.Option("auto", help=FORM_HELP),
    holdout: Optional[int] = typer.Option(None, help=HOLDOUT_HELP),
    target_error: Optional[float] = typer.Option(None, help="also plan the data for this error"),
    n_boot: int = typer.Option(DEFAULT_N_BOOT, help=N_BOOT_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    verbose: bool = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
) -> None:
    """Write a study's report (report.md with the plots) to a folder and log it to the study's run."""
    _setup_logging(verbose, quiet)
    with _guarded(as_json) as target:
        _check_fit_options(n_boot, holdout, target_error)
        client, rid = _study_run(run_id, experiment, tracking_uri)
        summary = _analyze(client, rid, n_boot, out_dir or f"scal-report-{rid[:12]}", form, holdout, target_error)
        print(f"report: {summary['artifacts_dir']}/report.md (also in the run's artifacts under analysis/)", file=target)
    _emit({"report": f"{summary['artifacts_dir']}/report.md", "parent_run_id": summary["parent_run_id"],
           "form": summary["form"], "beta_g": summary["beta_g"]}, as_json)


@app.command()
def fit(
    csv: Optional[str] = typer.Argument(None, metavar="CSV",
                                        help="CSV file; without it, the study given by --run-id/--experiment"),
    x: Optional[str] = typer.Option(None, "--x", help="column of sizes (data, steps, examples seen)"),
    y: Optional[str] = typer.Option(None, "--y", help="column of errors or losses (positive)"),
    group: Optional[str] = typer.Option(None, help="column naming separate curves, fitted one by one"),
    form: str = typer.Option("auto", help=FORM_HELP),
    holdout: Optional[int] = typer.Option(None, help=HOLDOUT_HELP),
    size: Optional[list[float]] = typer.Option(None, help="predict the error at this size (repeatable)"),
    target_error: Optional[float] = typer.Option(None, help="report the size needed for this error"),
    best_guess: Optional[float] = typer.Option(None, help="best-guess error: leaves out and labels small-data points"),
    n_boot: int = typer.Option(DEFAULT_N_BOOT, help=N_BOOT_HELP),
    level: float = typer.Option(DEFAULT_LEVEL, help=LEVEL_HELP),
    jobs: Optional[int] = typer.Option(None, help="processes fitting a CSV's groups at once (default: one per core)"),
    backtest: bool = typer.Option(False, "--backtest", help="refit on the sizes up to max/8 and on all but the largest "
                                  "two; predict the points left out"),
    compute_limited: Optional[str] = typer.Option(None, help="CSV column of 1/0 flags: compute-limited points "
                                                  "(labelled, left out of the fit)"),
    run_id: Optional[str] = typer.Option(None, help="fit this study's best-fit points instead of a CSV"),
    experiment: Optional[str] = typer.Option(None, help="the newest study of this experiment instead of a CSV"),
    tracking_uri: Optional[str] = typer.Option(None, help=READ_STORE_HELP + " (with --run-id/--experiment)"),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    verbose: bool = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
) -> None:
    """Fit learning curves from a CSV (any tracker's export) or from a study, with intervals."""
    _setup_logging(verbose, quiet)
    with _guarded(as_json) as out:
        predict_at = list(size or [])
        _check_fit_options(n_boot, holdout, target_error, predict_at, "--size")
        _check_level(level)
        if jobs is not None:
            checks.count("--jobs", jobs, 1)
        if best_guess is not None:
            checks.positive("--best-guess", best_guess)
        from analysis.table import curve_record, fit_table

        if csv is not None:
            if not x or not y:
                raise ValueError("a CSV needs --x COL and --y COL")
            curves = fit_table(csv, x, y, group=group, form=form, holdout=holdout, predict_at=predict_at,
                               target_error=target_error, best_guess=best_guess, n_boot=n_boot, level=level, jobs=jobs,
                               compute_limited=compute_limited, with_backtest=backtest)
            source = {"csv": csv}
        else:
            if compute_limited is not None:
                raise ValueError("--compute-limited names a CSV column; a study labels its compute-limited subsets itself")
            client, rid = _study_run(run_id, experiment, tracking_uri)
            from scal.analyze import fit_study, study_backtest, study_decision

            fits = fit_study(client, rid, form=form, holdout=holdout, n_boot=n_boot)
            regions = {**fits.regions.to_dict(), "x": fits.points["size"].astype(float).tolist()}
            rec = curve_record(fits.selection, predict_at, target_error, group=rid, regions=regions, level=level)
            rec["decision"] = study_decision(fits, level, n_boot=n_boot)
            if backtest:
                rec["backtest"] = study_backtest(fits, form=form, n_boot=n_boot, level=level)
            curves = [rec]
            source = {"tracking_uri": client.tracking_uri, "parent_run_id": rid}
        print(_curves_text(curves), file=out)
    _emit({**source, "curves": curves}, as_json)


def _curves_text(curves: list[dict[str, Any]]) -> str:
    lines = []
    for c in curves:
        lo, hi = c["beta_g_interval"]
        head = f"{c['group']}: " if c["group"] is not None else ""
        if c.get("decision"):
            lines.append(f"{head}{c['decision']}")
        held = f"  held-out RMSE(log) {_fmt(c['holdout_rmse_log'])}" if c.get("holdout_rmse_log") is not None else ""
        flo, fhi = c.get("floor_interval") or (None, None)
        floor = (f"floor {_fmt(c['floor'])} [{_fmt(flo)}, {_fmt(fhi)}]" if flo is not None
                 else f"floor {_fmt(c['floor'])} (no floor term)" if c["form"] == "m1" else f"floor {_fmt(c['floor'])}")
        lines.append(f"{head}form {c['form']}  exponent {c['beta_g']:.4g} [{_fmt(lo)}, {_fmt(hi)}]  {floor}  "
                     f"(95% bootstrap intervals){held}")
        for p in c["predictions"]:
            lines.append(f"    at {p['x']:.4g}: {_fmt(p['y'])}  {c['level']:.0%} [{_fmt(p['low'])}, {_fmt(p['high'])}]")
        if "data_for_target" in c:
            d = c["data_for_target"]
            lines.append(f"    for error {d['target_error']:.4g}: " + (
                f"{_fmt(d['x'])} [{_fmt(d['low'])}, {_fmt(d['high'])}]" if d["reachable"] else d["note"]))
        if "backtest" in c:
            lines.extend(_backtest_text(c["backtest"]))
    return "\n".join(lines)


def _backtest_text(bt: dict[str, Any]) -> list[str]:
    lines = []
    for name, rec in (("m <= max/8", bt), ("all but the largest two", bt.get("leave_two_out") or {})):
        if rec.get("error"):
            lines.append(f"    backtest ({name}): none, {rec['error']}")
            continue
        cov = rec["coverage"]
        lines.append(f"    backtest ({name}, fitted up to {rec['fit_max_x']:.4g}): coverage {cov:.0%}")
        for p in rec["points"]:
            rel = "-" if p["rel_error"] is None else f"{100 * p['rel_error']:+.1f}%"
            lines.append(f"      at {p['x']:.4g}: observed {_fmt(p['observed'])}, predicted {_fmt(p['predicted'])} "
                         f"[{_fmt(p['low'])}, {_fmt(p['high'])}] {rel} {'inside' if p['inside'] else 'OUTSIDE'}")
    return lines


def _fmt(v) -> str:
    return "-" if v is None else (v if isinstance(v, str) else f"{v:.4g}")


@app.command()
def surface(
    csv: Optional[str] = typer.Argument(None, metavar="CSV", help="CSV, one row per trained model; without it, the study given by "
                                        "--run-id/--experiment (its tuned cells)"),
    n: Optional[str] = typer.Option(None, "--n", help="CSV column of parameter counts N"),
    d: Optional[str] = typer.Option(None, "--d", help="CSV column of data sizes D (tokens, examples, ...)"),
    y: Optional[str] = typer.Option(None, "--y", help="CSV column of losses or errors (positive)"),
    all_rows: bool = typer.Option(False, "--all-rows", help="CSV only: fit every row; by default rows that share "
                                  "(N, D) are reduced to the cell's best (lowest loss)"),
    compute: Optional[list[float]] = typer.Option(None, help="compute budget C in FLOPs (repeatable): the optimal N, D "
                                                  "and loss there; default the points' smallest and largest k*N*D "
                                                  "and 10x the largest"),
    flops_per_param_unit: Optional[float] = typer.Option(None, help="k in C = k*N*D, CSV only (default 6); a study "
                                                         "uses its domain's train_flops"),
    predict: Optional[list[str]] = typer.Option(None, "--predict", metavar="N,D", help="predict the loss at N "
                                                "parameters and D data, with its predictive interval (repeatable)"),
    backtest: bool = typer.Option(False, "--backtest", help="refit without the largest-compute eighth of the points "
                                  "and predict them: relative error and whether each is inside its interval"),
    level: float = typer.Option(DEFAULT_LEVEL, help=LEVEL_HELP.replace("at each size", "at each (N, D)")
                                + "; of --predict, --backtest and the compute sentence"),
    n_boot: int = typer.Option(DEFAULT_N_BOOT, help=N_BOOT_HELP),
    run_id: Optional[str] = typer.Option(None, help="fit this study's tuned cells instead of a CSV"),
    experiment: Optional[str] = typer.Option(None, help="the newest study of this experiment instead of a CSV"),
    tracking_uri: Optional[str] = typer.Option(None, help=READ_STORE_HELP + " (with --run-id/--experiment)"),
    out_dir: Optional[str] = typer.Option(None, help="write the contour plot loss_surface.png to this folder"),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    verbose: bool = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
) -> None:
    """Fit the loss surface L(N, D) = E + A/N^alpha + B/D^beta, predict from it, and backtest it."""
    _setup_logging(verbose, quiet)
    with _guarded(as_json) as out:
        _check_fit_options(n_boot, None)
        _check_level(level)
        budgets = [checks.positive("--compute", c) for c in compute or []]
        from scal.surface import FLOPS_PER_PARAM_UNIT, csv_surface, describe, parse_point, study_surface

        points = [parse_point(p) for p in predict or []]
        if csv is not None:
            if run_id or experiment:
                raise ValueError("give a CSV file or --run-id/--experiment, not both")
            if not (n and d and y):
                raise ValueError("a CSV needs --n COL, --d COL and --y COL")
            k = FLOPS_PER_PARAM_UNIT if flops_per_param_unit is None else checks.positive(
                "--flops-per-param-unit", flops_per_param_unit)
            result = csv_surface(csv, n, d, y, budgets, k, n_boot=n_boot, all_rows=all_rows, backtest=backtest)
        else:
            if flops_per_param_unit is not None:
                raise ValueError("--flops-per-param-unit is for a CSV; a study uses its domain's train_flops")
            if n or d or y:
                raise ValueError("--n, --d and --y name CSV columns; a study's points are its tuned cells "
                                 "(n_params, subset_size, min_val_error)")
            if all_rows:
                raise ValueError("--all-rows is for a CSV; a study's points are its tuned cells, one per model size "
                                 "and subset (its trials are not rows of one measurement each)")
            client, rid = _study_run(run_id, experiment, tracking_uri)
            result = study_surface(client, rid, budgets, n_boot=n_boot, backtest=backtest)
        rec = result.record()
        rec["level"] = level
        if points:
            rec["predictions"] = result.predict(points, level)
        if backtest:
            rec["backtest"] = result.backtest(level)
        if out_dir:
            rec["plot"] = str(result.plot(out_dir, metric_label=rec.get("metric") or (y or "loss")))
        print(describe(rec), file=out)
    _emit(rec, as_json)


@app.command()
def compare(
    refs: list[str] = typer.Argument(..., metavar="REF", help="study parent run ids or experiment names (the "
                                     "newest study of each), or one CSV file with --x, --y and --group"),
    x: Optional[str] = typer.Option(None, "--x", help="CSV column of sizes"),
    y: Optional[str] = typer.Option(None, "--y", help="CSV column of errors or losses (positive)"),
    group: Optional[str] = typer.Option(None, help="CSV column naming the curves (at least 2 groups)"),
    size: Optional[list[float]] = typer.Option(None, help="compare at this size (repeatable); default: the largest "
                                               "size every curve reaches, and 10x it"),
    form: str = typer.Option("auto", help="common form of the joint fit: auto (m1 and m2 models) | m1 | m2"),
    n_boot: int = typer.Option(DEFAULT_N_BOOT, help="bootstrap refits of each joint model, for the intervals and p_best"),
    level: float = typer.Option(DEFAULT_LEVEL, help=LEVEL_HELP + "; also of the crossover's interval"),
    out_dir: Optional[str] = typer.Option(None, help="write comparison.png here (studies: default a temporary "
                                          "folder; the plot is logged to MLflow either way)"),
    tracking_uri: Optional[str] = typer.Option(None, help=READ_STORE_HELP.replace("of the study", "of the studies")),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    verbose: bool = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
) -> None:
    """Compare learning curves fitted jointly: whether exponents differ, which is lowest, where they cross."""
    _setup_logging(verbose, quiet)
    with _guarded(as_json) as out:
        sizes = list(size or []) or None
        _check_fit_options(n_boot, None, None, sizes or (), "--size")
        _check_level(level)
        from analysis.compare import comparison_text

        if refs[0].lower().endswith(".csv") or x or y or group:
            if len(refs) != 1:
                raise ValueError(f"a CSV comparison takes one file (its --group column names the curves), got {len(refs)} arguments")
            if not x or not y:
                raise ValueError("a CSV needs --x COL and --y COL")
            from analysis.compare import compare_table

            result, points, fits = compare_table(refs[0], x, y, group, at=sizes, form=form, n_boot=n_boot,
                                                 level=level)
            result = {"csv": refs[0], **result, "plot": None}
            if out_dir:
                from analysis.compare_plot import plot_comparison

                result["plot"] = str(plot_comparison(points, fits, result, os.path.join(out_dir, "comparison.png"), y))
        else:
            uri = checks.check_store(tracking_uri, create=False)
            from scal.compare import compare_studies
            from scal.tracking import open_client

            result = compare_studies(open_client(uri), refs, at=sizes, form=form, n_boot=n_boot, out_dir=out_dir,
                                     level=level)
        text = comparison_text(result)
        if result.get("plot"):
            text += f"\nplot: {result['plot']}"
        if result.get("comparison_run_id"):
            text += (f"\nMLflow: comparison run {result['comparison_run_id']} (experiment scal-comparisons) "
                     f"in {result['tracking_uri']}")
        print(text, file=out)
    _emit(result, as_json)


@app.command("predict")
def predict_cmd(
    csv: Optional[str] = typer.Argument(None, metavar="CSV", help="CSV file: plan from its curve (--x, --y) instead of a study"),
    run_id: Optional[str] = typer.Option(None, help=RUN_ID_HELP),
    experiment: Optional[str] = typer.Option(None, help=STUDY_HELP),
    tracking_uri: Optional[str] = typer.Option(None, help=READ_STORE_HELP),
    x: Optional[str] = typer.Option(None, "--x", help="CSV column of sizes"),
    y: Optional[str] = typer.Option(None, "--y", help="CSV column of errors"),
    size: Optional[list[float]] = typer.Option(None, help="predict the error at this training set size (repeatable)"),
    target_error: Optional[float] = typer.Option(None, help="data, model size and compute to reach this error"),
    form: str = typer.Option("auto", help=FORM_HELP),
    holdout: Optional[int] = typer.Option(None, help=HOLDOUT_HELP),
    n_boot: int = typer.Option(DEFAULT_N_BOOT, help=N_BOOT_HELP),
    level: float = typer.Option(DEFAULT_LEVEL, help=LEVEL_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    verbose: bool = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
) -> None:
    """Plan with a study's fits: error at a size; data, best-fit model size and compute for an error."""
    _setup_logging(verbose, quiet)
    with _guarded(as_json) as out:
        sizes = list(size or [])
        if not sizes and target_error is None:
            raise ValueError("give --size M (repeatable) and/or --target-error E")
        _check_fit_options(n_boot, holdout, target_error, sizes, "--size")
        _check_level(level)
        if csv is not None:
            from analysis.table import curve_record, read_curves
            from analysis.select import fit_curve

            if not x or not y:
                raise ValueError("a CSV needs --x COL and --y COL")
            (xs, ys), = read_curves(csv, x, y).values()
            sel = fit_curve(xs, ys, form=form, holdout=holdout, n_boot=n_boot)
            rec = curve_record(sel, sizes, target_error, level=level)
            result = {"csv": csv, "level": level, "form": sel.form, "beta_g": rec["beta_g"], "beta_g_interval": rec["beta_g_interval"],
                      "predictions": [{"m": p["x"], "value": p["y"], "low": p["low"], "high": p["high"]}
                                      for p in rec["predictions"]]}
            if target_error is not None:
                d = rec["data_for_target"]
                result["target"] = {"data": {"target_error": target_error, "m": d["x"], "low": d["low"],
                                             "high": d["high"], "reachable": d["reachable"], "note": d["note"]},
                                    "note": "model size and compute need a study (--run-id)"}
        else:
            client, rid = _study_run(run_id, experiment, tracking_uri)
            from scal.analyze import fit_study, plan

            fits = fit_study(client, rid, form=form, holdout=holdout, n_boot=n_boot)
            result = {"tracking_uri": client.tracking_uri, "parent_run_id": rid, "level": level, "form": fits.selection.form,
                      "beta_g": fits.curve.params.get("beta_g"),
                      "beta_g_interval": list(fits.curve.intervals.get("beta_g", (None, None))),
                      "floor": fits.curve.floor(), **plan(fits, sizes, target_error, level=level)}
        print(_plan_text(result), file=out)
    _emit(result, as_json)


def _plan_text(r: dict[str, Any]) -> str:
    lines = [f"form {r['form']}  beta_g {_fmt(r['beta_g'])} [{_fmt(r['beta_g_interval'][0])}, {_fmt(r['beta_g_interval'][1])}]"]
    for p in r["predictions"]:
        lines.append(f"error at m = {p['m']:.4g}: {_fmt(p['value'])}  {r.get('level', DEFAULT_LEVEL):.0%} [{_fmt(p['low'])}, {_fmt(p['high'])}]")
    t = r.get("target")
    if t:
        d = t["data"]
        if not d["reachable"]:
            lines.append(f"error {d['target_error']:.4g}: {d['note']}")
        else:
            lines.append(f"data for error {d['target_error']:.4g}: m = {_fmt(d['m'])}  {r.get('level', DEFAULT_LEVEL):.0%} "
                         f"[{_fmt(d['low'])}, {_fmt(d['high'])}]"
                         + (f"  ({d['note']})" if d["note"] else ""))
            for key, label in (("n_params", "best-fit model parameters"), ("wall_time_s", "training wall time (s)"),
                               ("units_processed", "units processed"), ("train_flops", "training FLOPs")):
                if key in t:
                    e = t[key]
                    lines.append(f"  {label}: {_fmt(e['value'])}  {r.get('level', DEFAULT_LEVEL):.0%} [{_fmt(e['low'])}, {_fmt(e['high'])}]")
            if "note" in t:
                lines.append(f"  {t['note']}")
    return "\n".join(lines)


@app.command("search-size")
def search_size(
    domain: str = typer.Option("lm", help=DOMAIN_HELP),
    unit: Optional[str] = typer.Option(None, help=UNIT_HELP),
    budget: str = typer.Option("quick", help=BUDGET_HELP),
    subset_size: Optional[int] = typer.Option(None, parser=_count, metavar="INTEGER",
                                              help="one subset size; default: every subset of the plan"),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    pool_size: Optional[int] = typer.Option(None, parser=_count, metavar="INTEGER", help=POOL_HELP),
    experiment: Optional[str] = typer.Option(None, help="MLflow experiment name; default scal-<domain>-<unit>-search-size"),
    tracking_uri: Optional[str] = typer.Option(None, help=STORE_HELP),
    seed: int = typer.Option(0, help=SEED_HELP),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    threads: int = typer.Option(1, help=THREADS_HELP),
    overfit_ratio: Optional[float] = typer.Option(None, help=OVERFIT_HELP),
    executor: str = typer.Option("auto", help=EXECUTOR_HELP),
    ray_address: Optional[str] = typer.Option(None, envvar="RAY_ADDRESS", help=RAY_ADDRESS_HELP),
    cpus_per_trial: Optional[float] = typer.Option(None, help=CPUS_HELP),
    gpus_per_trial: Optional[float] = typer.Option(None, help=GPUS_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    verbose: bool = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
) -> None:
    """Find the smallest model that overfits each subset (geometric growth, then bisection)."""
    _setup_logging(verbose, quiet)
    with _guarded(as_json) as out:
        uri = checks.check_store(tracking_uri, create=True)
        from scal.sizes import search_sizes
        from scal.study import StudyConfig

        cfg = StudyConfig(domain=domain, unit=_none(unit), budget=budget, data=_none(data), pool_size=pool_size,
                          experiment=_none(experiment), tracking_uri=uri, seed=seed, device=device, threads=threads,
                          overfit_ratio=overfit_ratio, progress=not quiet,
                          executor=_executor(executor, ray_address, cpus_per_trial, threads, gpus_per_trial, None))
        result = search_sizes(cfg, subset_size)
        rows = [f"{'m':>10} {'width':>6} {'n_params':>10} {'overfits':>8}  probes"]
        for r in result["subsets"]:
            rows.append(f"{r['size']:>10,} {r['width']:>6} {r['n_params']:>10,} {str(r['reached']):>8}  "
                        + " ".join(str(p["width"]) for p in r["probes"]))
        print("\n".join(rows), file=out)
    _emit(result, as_json)


@app.command()
def train(
    domain: str = typer.Option("lm", help=DOMAIN_HELP),
    unit: Optional[str] = typer.Option(None, help=UNIT_HELP),
    budget: str = typer.Option("quick", help=BUDGET_HELP + "; gives the step limits and the default model"),
    subset_size: Optional[int] = typer.Option(None, help="training subset size; default: the budget's smallest"),
    width: Optional[int] = typer.Option(None, help="model width knob; default: the budget's starting model"),
    layers: Optional[int] = typer.Option(None, help="model depth knob; default: the budget's starting model"),
    lr: Optional[float] = typer.Option(None, help="learning rate; default: the budget's"),
    seed: int = typer.Option(0, help=SEED_HELP),
    max_steps: Optional[int] = typer.Option(None, help="optimizer steps cap; default from budget"),
    data: Optional[str] = typer.Option(None, help=DATA_HELP),
    pool_size: Optional[int] = typer.Option(None, parser=_count, metavar="INTEGER", help=POOL_HELP),
    experiment: Optional[str] = typer.Option(None, help="MLflow experiment name; default scal-<domain>-<unit>-trials"),
    tracking_uri: Optional[str] = typer.Option(None, help=STORE_HELP),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    threads: int = typer.Option(1, help=THREADS_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    verbose: bool = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
) -> None:
    """Train one trial and log it to MLflow."""
    _setup_logging(verbose, quiet)
    with _guarded(as_json) as out:
        uri = checks.check_store(tracking_uri, create=True)
        from scal.sizes import train_one
        from scal.study import StudyConfig

        cfg = StudyConfig(domain=domain, unit=unit, budget=budget, data=data, pool_size=pool_size, experiment=experiment,
                          tracking_uri=uri, seed=seed, device=device, threads=threads, max_steps=max_steps,
                          progress=not quiet)
        result = train_one(cfg, subset_size, {"width": width, "layers": layers}, lr)
        print(" ".join(f"{k}={v}" for k, v in result.items()), file=out)
    _emit(result, as_json)


@app.command("domains")
def list_domains(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """List the domains with their units and metrics."""
    import domains as registry

    rows = []
    for name, dom in registry.REGISTRY.items():
        for unit in dom.units:
            m = dom.metric(unit)
            rows.append({"domain": name, "unit": unit, "metric": m.name, "description": m.description,
                         "size_knobs": list(dom.size_knobs)})
    if as_json:
        _emit({"domains": rows}, True)
        return
    for r in rows:
        typer.echo(f"{r['domain']:<6} {r['unit']:<9} {r['metric']:<14} {r['description']}  knobs: {', '.join(r['size_knobs'])}")


@app.command()
def ui(
    tracking_uri: Optional[str] = typer.Option(None, help=READ_STORE_HELP.replace("of the study", "to show")),
    port: int = typer.Option(5000, help="port of the UI on 127.0.0.1"),
) -> None:
    """Start the MLflow UI on the store, bound to 127.0.0.1."""
    with _guarded(False):
        uri = checks.check_store(tracking_uri, create=False)   # a viewer never creates a store
        checks.count("--port", port, 1, 65535)
    typer.echo(f"MLflow UI for {uri} at http://127.0.0.1:{port}  (Ctrl-C stops it)", err=True)
    # One worker and no job runner: a local viewer needs neither, and it starts in seconds.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    from scal.tracking import registry_uri

    os.execvp(sys.executable, [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                               "--registry-store-uri", registry_uri(uri),   # MLflow's own default ignores the env
                               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"])


def main(args: list[str] | None = None) -> None:
    """The ``scal`` command (the console script and ``python -m scal``).

    Click's own usage errors (an unknown option, a missing or malformed value) become one
    ``error: ...`` line and exit code 2, like every other bad input; ``--help`` still exits 0.
    """
    if os.environ.get("_SCAL_COMPLETE"):   # a shell asks for completions: typer's classes answer it
        from typer.completion import completion_init

        completion_init()
    try:
        code = app(args=args, prog_name="scal", standalone_mode=False)
    except typer.TyperException as exc:        # click's ClickException and UsageError derive from it
        if type(exc).__name__ == "NoArgsIsHelpError":   # bare `scal` or `scal COMMAND`: the help, as click shows it
            exc.show()
            sys.exit(2)
        lines = [ln.strip() for ln in exc.format_message().splitlines() if ln.strip()]
        ctx = getattr(exc, "ctx", None)
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        typer.echo(f"error: {' '.join(lines) or type(exc).__name__}{hint}", err=True)
        sys.exit(2)
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
