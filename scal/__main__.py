"""``python -m scal`` is the ``scal`` command (MLproject entry points use this form)."""

from scal.cli import main

main()
