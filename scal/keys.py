"""Every MLflow param, metric and tag name scal writes, in one place.

The MLflow reader (`scal.reader`) filters on these names; changing one here changes it everywhere.
"""

# --- tags -------------------------------------------------------------------------------------
ROLE = "scal.role"                 # "study" (parent), "grid" or "overfit_probe" (child trials)
STATUS = "scal.status"             # ok | diverged | failed
REASON = "scal.reason"
TRIAL_HASH = "scal.trial_hash"
STUDY = "scal.study"               # study name (the experiment name)
FINGERPRINT = "scal.fingerprint"   # parent: hash of everything that decides the study's trials (resume key)
DRIVER = "scal.driver"             # parent: host:pid of the process running it (a live one is not resumed)
EXECUTOR = "scal.executor"         # parent: local | ray, and the cluster it ran on
NODE = "scal.node"                 # trial: host or Ray node id that trained it
THREADS = "scal.threads"           # trial: torch threads it used (a retrain for the registry uses the same)
REUSED_FROM = "scal.reused_from"   # trial: a reference run; the trial was trained once, in this run (id)
PARENT = "mlflow.parentRunId"      # MLflow's own nesting tag
RUN_NAME = "mlflow.runName"
EXPERIMENT_KIND = "mlflow.experimentKind"   # the UI opens model-training views, not GenAI ones
EXPERIMENT_KIND_TRAINING = "custom_model_development"
NOTE = "mlflow.note.content"       # a run's / an experiment's description in the UI (Markdown)
VERSION = "scal.version"           # every run scal makes: the scal-scaling package version
GIT_COMMIT = "scal.git_commit"     # ... and the commit of the checkout it ran from, where there is one
MLFLOW_GIT_COMMIT = "mlflow.source.git.commit"   # MLflow's own (the UI shows it as the run's source version)
DATA_DIGEST = "scal.data_digest"   # parent: digest of the training pool (`scal.datasets`), the same as its dataset input's
DATA_CONTEXT = "mlflow.data.context"   # input tag of a dataset input: "training" (a trial's subset), "pool" (a study's)

COMPARES = "scal.compares"         # comparison run: the compared study run ids, comma-separated
COMPARES_PREFIX = "scal.compares." # + 1, 2, ...: one study run id per compared curve; + ".name": its curve name
COMPARISON_EXPERIMENT = "scal-comparisons"   # where `scal compare` logs its runs

ROLE_STUDY = "study"
ROLE_COMPARISON = "comparison"     # a `scal compare` run (tag scal.role)
ROLE_GRID = "grid"
ROLE_PROBE = "overfit_probe"

# --- trial statuses (tag scal.status) ---------------------------------------------------------
DONE_STATUSES = ("ok", "stopped", "diverged")   # finished trials a study reuses; failed ones run again
SHARED_STATUSES = ("ok", "diverged")   # reused by another role too; a stopped trial is partial, grid-only

# --- trial params -----------------------------------------------------------------------------
P_DOMAIN = "domain"
P_UNIT = "unit"
P_SUBSET_SIZE = "subset_size"
P_N_PARAMS = "n_params"
P_LR = "lr"
P_SEED = "seed"
P_BUDGET = "budget"
P_SIZE_PREFIX = "size."            # size knobs: size.width, size.layers, ...
P_TRAIN_PREFIX = "train."          # TrainSettings fields

# --- trial metrics ----------------------------------------------------------------------------
M_TRAIN_LOSS = "train_loss"        # per round, step = optimizer step
M_VAL_LOSS = "val_loss"
M_VAL_ERROR = "val_error"
M_MIN_VAL_ERROR = "min_val_error"  # the trial's value: minimum over its rounds of val_error (domains.loop.round_rank)
M_MIN_VAL_LOSS = "min_val_loss"    # minimum over its rounds of val_loss (the overfitting criterion's), wherever it fell
M_BEST_EPOCH = "best_epoch"        # epoch of the min_val_error round (best_step: its optimizer step)
M_FINAL_TRAIN_LOSS = "final_train_loss"
M_WALL_TIME_S = "wall_time_s"
M_STEPS = "steps"
M_BEST_STEP = "best_step"
M_EPOCHS = "epochs"
BEST_EXTRA_PREFIX = "best_"       # + a domain's further metric at the min_val_error round: best_val_top5_error
M_ROUNDS = "rounds"                # validation rounds logged (the length of val_error's history)
M_TRAIN_FLOPS = "train_flops"      # FLOPs the trial trained, every step: domain.train_flops(n_params, epochs x subset_size)
                                   # (`domains.protocol.trained_flops`); a reference run repeats its trial's

# --- study (parent run) metrics: step = subset size m, so MLflow's chart is the curve ---------
M_BEST_VAL_ERROR = "best_val_error"        # learning curve eps(m)
M_BEST_N_PARAMS = "best_n_params"          # model-size curve s(m)
M_BETA_G = "beta_g"
M_BETA_P = "beta_p"
M_ALPHA = "alpha"
M_GAMMA = "gamma"
M_SIGMA = "sigma"

# --- registry tags ----------------------------------------------------------------------------
R_SUBSET_SIZE = "subset_size"
R_N_PARAMS = "n_params"
R_MIN_VAL_ERROR = "min_val_error"  # the registered trial's min_val_error (its weights are that round's)
R_METRIC = "metric"
R_TRIAL_HASH = "trial_hash"
R_STUDY_RUN = "study_run_id"
ALIAS_LARGEST = "largest"          # alias of the largest subset's best fit


def best_extra(name: str) -> str:
    """Summary key of a further validation metric (``val_bleu``) at the trial's min_val_error round."""
    return BEST_EXTRA_PREFIX + name
