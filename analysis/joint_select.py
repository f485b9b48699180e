"""Which joint model several learning curves are compared in: F-tests, the choice, Akaike weights.

`analysis.joint` fits the six joint models (one exponent or own exponents, no floor, one floor or
own floors). This module fits them all to the curves, tests each constraint on the data, chooses
the model, and weighs the models for `analysis.compare`'s p_best.

A model is fitted only when N > p (a residual degree of freedom to test and weigh it by).

Test: each model M0 against a reference M1 that contains it, by the F-test on log RSS,

    F = ((RSS_0 - RSS_1) / (p_1 - p_0)) / (RSS_1 / (N - p_1)),   p = P(F(p_1 - p_0, N - p_1) > F),

rejected when p < `TEST_LEVEL` (5%). Exact under Gaussian noise in log y for models linear in
their parameters; here it is the usual approximation (tests/test_compare.py checks it on
simulated parallel curves with 2% noise: a shared exponent was rejected in 3 of 100 noise draws).
The reference is ``free``, which contains every other model; under ``form="m1"``, or when
``free`` has no residual degree of freedom (e.g. two curves of three points), it is ``free-m1``
and only the m1 models remain.

Choice: "a shared exponent is rejected" when every shared-exponent model (shift-m1, shift,
floors) is rejected: an intersection-union test, at level 5% too, whose p-value is the largest
of theirs. If it is not rejected, the simplest shared-exponent model not rejected is chosen (ties:
the larger p); if it is, the simplest own-exponent model not rejected (the reference never is).
So a crossover from different exponents is claimed only when the data reject one exponent.

Model weights (the form uncertainty in `analysis.compare`'s p_best): Akaike weights with the
small-sample correction, k = p + 1 (the noise variance counts),

    AICc_j = N log(RSS_j / N) + 2 k + 2 k (k + 1) / (N - k - 1),   w_j ~ exp(-(AICc_j - min AICc) / 2),

over the models with N - k - 1 > 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from scipy.stats import f as f_dist

from analysis.fit import FitError
from analysis.joint import AUTO, BY_NAME, MODELS, JointFit, Stack, bootstrap, fit_joint, models_for, nested, stack
from analysis.jsonsafe import json_number

TEST_LEVEL = 0.05   # a constraint is rejected when its F-test's p-value is below this


@dataclass(frozen=True)
class FTest:
    """``model`` (restricted) against ``reference``: F on (df1, df2) degrees of freedom, p-value."""

    model: str
    reference: str
    statistic: float
    df: tuple[int, int]
    p_value: float

    def rejected(self, level: float = TEST_LEVEL) -> bool:
        return self.p_value < level

    def to_dict(self, level: float = TEST_LEVEL) -> dict:
        return {"model": self.model, "reference": self.reference, "statistic": json_number(self.statistic),
                "df": list(self.df), "p_value": json_number(self.p_value), "rejected": self.rejected(level)}


def f_test(restricted: JointFit, full: JointFit) -> FTest:
    """The F-test of ``restricted`` nested in ``full`` (module docstring). Exact data on both
    (RSS 0) are no evidence against the restriction: F = 0, p = 1."""
    d1 = full.n_params - restricted.n_params
    d2 = full.dof
    if d1 <= 0 or d2 <= 0:
        raise ValueError(f"no F-test of {restricted.model.name} in {full.model.name}: df ({d1}, {d2})")
    # The restricted optimum cannot truly be better than the full one; an optimiser's last
    # digits can say so, which is no evidence either way.
    num = max(restricted.rss_log - full.rss_log, 0.0) / d1
    den = full.rss_log / d2
    if num == 0.0:
        stat = 0.0
    elif den == 0.0:
        stat = math.inf
    else:
        stat = num / den
    p = 1.0 if stat == 0.0 else (0.0 if math.isinf(stat) else float(f_dist.sf(stat, d1, d2)))
    return FTest(restricted.model.name, full.model.name, float(stat), (int(d1), int(d2)), p)


@dataclass(frozen=True)
class JointSelection:
    """Every joint model fitted, tested against the reference, the choice and the weights.

    ``fits`` by model name (simplest first); ``tests`` for every model but the reference (none
    when the reference has no residual degrees of freedom: then nothing is tested and the simplest
    model is chosen); ``weights`` the Akaike weights (module docstring); ``stack`` the points.
    """

    fits: dict[str, JointFit]
    reference: str | None
    tests: dict[str, FTest]
    chosen: str
    weights: dict[str, float]
    stack: Stack = field(repr=False)
    level: float = TEST_LEVEL

    @property
    def fit(self) -> JointFit:
        return self.fits[self.chosen]

    @property
    def names(self) -> tuple[str, ...]:
        return self.fit.names

    @property
    def exponent_test(self) -> FTest | None:
        """The shared-exponent model the data reject least (the intersection-union test's p)."""
        shared = [t for m, t in self.tests.items() if BY_NAME[m].shared_exponent]
        return max(shared, key=lambda t: t.p_value) if shared else None

    @property
    def exponents_differ(self) -> bool | None:
        t = self.exponent_test
        return None if t is None else t.rejected(self.level)

    def to_dict(self) -> dict:
        t = self.exponent_test
        return {
            "chosen": self.chosen,
            "chosen_means": BY_NAME[self.chosen].words,
            "form": self.fit.model.form,
            "reference": self.reference,
            "test": "F on log residual sums of squares, each model against the reference",
            "test_level": self.level,
            "exponents_differ": self.exponents_differ,
            "exponent_test": t.to_dict(self.level) if t else None,
            "tests": [t.to_dict(self.level) for t in self.tests.values()],
            "models": [{"name": m, "means": f.model.words, "form": f.model.form, "n_params": f.n_params,
                        "rss_log": json_number(f.rss_log), "aicc": json_number(f.aicc()),
                        "weight": json_number(self.weights.get(m, 0.0))} for m, f in self.fits.items()],
            "n_points": self.fit.n_points,
        }


def akaike_weights(fits: Mapping[str, JointFit]) -> dict[str, float]:
    """w_j ~ exp(-(AICc_j - min) / 2) over the fits with a finite AICc (module docstring)."""
    scores = {m: f.aicc() for m, f in fits.items()}
    finite = {m: s for m, s in scores.items() if math.isfinite(s)}
    if not finite:
        return {}
    best = min(finite.values())
    raw = {m: math.exp(-(s - best) / 2.0) for m, s in finite.items()}
    total = sum(raw.values())
    return {m: raw.get(m, 0.0) / total for m in fits}


def choose(tests: Mapping[str, FTest], fits: Mapping[str, JointFit], reference: str | None,
           level: float = TEST_LEVEL) -> str:
    """The simplest shared-exponent model not rejected, if any; else the simplest own-exponent
    model not rejected (the reference). Without tests: the simplest model (module docstring)."""
    if reference is None:
        return next(iter(fits))
    kept = [m for m in fits if m == reference or not tests[m].rejected(level)]
    for shared in (True, False):
        group = [m for m in kept if BY_NAME[m].shared_exponent == shared]
        if group:
            fewest = min(fits[m].n_params for m in group)
            return max((m for m in group if fits[m].n_params == fewest),
                       key=lambda m: 1.0 if m == reference else tests[m].p_value)
    return reference


def select_joint(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], form: str = AUTO, n_boot: int = 200,
                 seed: int = 0, level: float = TEST_LEVEL, boot_all: bool = True) -> JointSelection:
    """Fit every joint model of ``form`` to ``curves`` {name: (x, y)}, test, choose, weigh.

    ``boot_all``: bootstrap every model (p_best averages over them); else only the chosen model
    and the reference (a crossover's interval, the exponents' intervals).
    """
    if len(curves) < 2:
        raise ValueError(f"a joint fit needs at least 2 curves, got {len(curves)}")
    st = stack(curves)
    fits: dict[str, JointFit] = {}
    for model in sorted(models_for(form), key=lambda m: not m.separable):   # the free fits first
        if st.n_points <= model.n_params(st.n_curves):
            continue   # no residual degree of freedom: nothing to test or to weigh it by
        base = fits.get("free-m1" if model.floor == "none" else "free")
        fits[model.name] = fit_joint(st, model, project_from=base)
    if not fits:
        raise FitError(f"{st.n_points} points in {st.n_curves} curves are too few for any joint model of form {form}")
    reference = next((m for m in ("free", "free-m1") if m in fits), None)
    if reference is not None:   # only what the reference contains can be tested against it
        fits = {m: f for m, f in fits.items() if nested(BY_NAME[m], BY_NAME[reference])}
    fits = {m.name: fits[m.name] for m in MODELS if m.name in fits}   # simplest first again
    tests = {m: f_test(f, fits[reference]) for m, f in fits.items() if m != reference} if reference else {}
    chosen = choose(tests, fits, reference, level)
    boot = fits if boot_all else {m: f for m, f in fits.items() if m in (chosen, reference)}
    for i, m in enumerate(MODELS):
        if m.name in boot:
            fits[m.name] = bootstrap(st, fits[m.name], n_boot, seed=(seed, i))
    return JointSelection(fits, reference, tests, chosen, akaike_weights(fits), st, level)
