"""Model-size search: subsets, the overfitting search, interpolation, Monte Carlo grid search.

Depends on `domains` only; tracking is the caller's job (see `scal.study`).
"""
