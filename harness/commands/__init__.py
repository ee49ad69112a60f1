"""One module per ``bsnn-bench`` subcommand: ``register(subparsers)`` adds its parser and sets
``func``; the function returns the exit code. :mod:`harness.cli` lists them in ``COMMANDS``."""
