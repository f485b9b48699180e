"""The analysis's two defaults every command shares, in a module that imports nothing, so the CLI
can name them before it loads numpy and scipy."""

# Coverage of a predictive interval for a new observation when none is asked for.
DEFAULT_LEVEL = 0.9
# Bootstrap refits behind the intervals when none are asked for (the commands' --n-boot default).
DEFAULT_N_BOOT = 200
