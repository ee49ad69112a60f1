"""Imported only by the workers' forkserver (the first of :data:`harness.study.prestart.PRELOAD`):
make the server's exit immediate.

The server exits when the command that started it does (its "alive" pipe closes). A normal
interpreter exit would then tear down the torch and Lightning it preloaded, 1-2 s during which
it still holds the command's stdout and stderr, so whoever reads them (a pipe, ``| tee``, a
script capturing the output) waits that long after the study ended. The server holds nothing to
clean up (no database connection, no file but the inherited pipes; workers are separate
processes that end on their own), so the first exit handler ends it at once.
"""

from __future__ import annotations

import atexit
import os
import sys


def _exit_now() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# Exit handlers run last-registered first: this one runs before any registered earlier.
atexit.register(_exit_now)
