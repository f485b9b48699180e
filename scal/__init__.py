"""scal: the MLflow glue (tracking, registry) and the `scal` CLI.

Named ``scal/`` rather than ``mlproject/``: MLflow finds the project file by a case-insensitive
directory listing, so a folder ``mlproject/`` beside the ``MLproject`` file is picked up instead
(and the two cannot coexist on macOS or Windows).
"""

__version__ = "0.1.0"
