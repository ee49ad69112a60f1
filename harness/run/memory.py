"""The C allocator setting every training process starts with.

glibc hands the freed activation memory of one training step back to the OS and page-faults it
in again in the next (millions of minor faults per epoch; see docs/design.md). Told to keep
freed memory, the same step runs 1.3-2x faster on this CPU. glibc reads the setting only at
process start, so it goes into the environment of the processes we start (study workers) or,
for a command that trains in its own process (``bsnn-bench train``, a one-worker ``run``), the
command re-executes itself once with it.

``BSNN_BENCH_ALLOCATOR_TUNING=0`` keeps the allocator's defaults; a ``GLIBC_TUNABLES`` already
set, or jemalloc preloaded, is left alone.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

__all__ = ["ALLOCATOR_ENV", "GLIBC_RETAIN", "reexec_with_retained_memory", "tuned_environ"]

#: Set to 0 to keep the C allocator's defaults.
ALLOCATOR_ENV = "BSNN_BENCH_ALLOCATOR_TUNING"
#: No mmap'd blocks (they are unmapped on free) and no trimming of the heap top below 16 GiB.
GLIBC_RETAIN = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184"


def tuned_environ(environ: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """``environ`` (default ``os.environ``) with the allocator setting added, or None when
    nothing is to change: turned off, already tuned, jemalloc preloaded, or not Linux."""
    env = dict(os.environ if environ is None else environ)
    if not sys.platform.startswith("linux") or env.get(ALLOCATOR_ENV, "1") == "0":
        return None
    if "GLIBC_TUNABLES" in env or "jemalloc" in env.get("LD_PRELOAD", ""):
        return None
    env["GLIBC_TUNABLES"] = GLIBC_RETAIN
    return env


def reexec_with_retained_memory(args: Sequence[str]) -> None:
    """Replace this process by ``python *args`` with :func:`tuned_environ`, if that changes
    anything; otherwise return. Call it before anything has been computed or printed."""
    env = tuned_environ()
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *args], env)
