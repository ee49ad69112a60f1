"""Fused CPU kernels: the LIF recurrence in one pass over memory each way.

On the CPU the torch loop of :mod:`models.neurons` makes 4 passes over each time step's slice in
forward and 4-5 in backward; every pass of a conv layer's spike map is memory traffic, and
these loops were the largest part of a default training step (about 6.9 of 23 ms at one thread
on the project's machine). :file:`lif.c` runs the same recurrence in one pass per step each way:
forward bit-equal to the torch loop, backward the same formula (equal to rounding; tests compare
both in float64 and float32).

The C file is compiled on first use with the system's C compiler (``$CC``, else ``cc``) into the
cache directory (``$BSNN_CACHE_DIR``, else ``~/.cache/bsnn-bench``, subfolder ``kernels``), named
by a hash of the source and the flags, and loaded with :mod:`ctypes`; later processes load the
compiled file. ``target_clones`` builds AVX-512, AVX2 and baseline variants into one library that
picks the machine's at load time, so a cache shared by different x86 machines is safe, and
``-ffp-contract=off`` makes every variant round alike. ctypes releases the GIL during a call: with
``torch.get_num_threads() > 1`` a large block is split into that many chunks run on a small
thread pool.

Without a compiler (or with ``BSNN_BENCH_FUSED=0``) :func:`kernels` returns None and the torch
loop is used; the first failure is reported once as a warning naming the reason.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import Tensor

try:
    import fcntl
except ImportError:  # not POSIX: compiling processes are not serialized
    fcntl = None  # type: ignore[assignment]

__all__ = ["ENV", "Kernels", "dense_time_major", "kernels"]

#: Set to 0 to use the torch loop everywhere.
ENV = "BSNN_BENCH_FUSED"
SOURCE = Path(__file__).with_name("lif.c")
FLAGS = ("-O3", "-shared", "-fPIC", "-ffp-contract=off", "-fno-math-errno", "-std=c11")
ABI_VERSION = 1
#: Blocks below this many elements run in one call (a thread hand-off costs ~20 us).
_SPLIT_MIN = 1 << 16

_lock = threading.Lock()
_loaded: Kernels | None = None
_tried = False


def _cache_dir() -> Path:
    env = os.environ.get("BSNN_CACHE_DIR")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "bsnn-bench"
    return root / "kernels"


def _compile(source: Path, target: Path) -> None:
    """Compile ``source`` into ``target`` atomically (a temporary file renamed into place), so
    processes compiling at the same time never load a half-written library."""
    compiler = os.environ.get("CC") or "cc"
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C compiler ({compiler!r} not found; set CC)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.stem, suffix=".so.tmp", dir=target.parent)
    os.close(fd)
    try:
        proc = subprocess.run([compiler, *FLAGS, str(source), "-o", tmp, "-lm"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            raise RuntimeError(f"{compiler} failed: {msg[0] if msg else proc.returncode}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _library_path() -> Path:
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode()
                            + sys.platform.encode()).hexdigest()[:16]
    return _cache_dir() / f"lif-{digest}.so"


class Kernels:
    """The loaded library: :meth:`forward` and :meth:`backward` on dense ``[T, ...]`` tensors."""

    _RESET = {"subtract": 0, "zero": 1, "none": 2}

    def __init__(self, lib: ctypes.CDLL) -> None:
        if lib.lif_abi_version() != ABI_VERSION:
            raise RuntimeError("stale compiled kernel (ABI version differs)")
        i64, dbl, int_, ptr = ctypes.c_int64, ctypes.c_double, ctypes.c_int, ctypes.c_void_p
        self._fwd = {}
        self._bwd = {}
        for dtype, suffix in ((torch.float32, "f32"), (torch.float64, "f64")):
            f = getattr(lib, f"lif_forward_{suffix}")
            f.argtypes = [ptr, ptr, ptr, i64, i64, i64, i64, dbl, dbl, int_, int_]
            f.restype = None
            b = getattr(lib, f"lif_backward_{suffix}")
            b.argtypes = [ptr, ptr, ptr, ptr, ptr, i64, i64, i64, i64, dbl, dbl, int_, int_,
                          int_, dbl]
            b.restype = None
            self._fwd[dtype], self._bwd[dtype] = f, b
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._pool_size = 0

    def supports(self, t: Tensor) -> bool:
        return t.device.type == "cpu" and t.dtype in self._fwd and dense_time_major(t)

    def _map(self, fn, n: int) -> None:
        """Run ``fn(begin, end)`` over ``[0, n)``: one call, or chunks on the thread pool."""
        chunks = min(torch.get_num_threads(), max(1, n // 64))
        if chunks <= 1:
            fn(0, n)
            return
        pid = os.getpid()
        if self._pool is None or self._pool_pid != pid or self._pool_size != chunks:
            # A pool is per process (a forked worker must not reuse its parent's threads).
            self._pool = ThreadPoolExecutor(max_workers=chunks, thread_name_prefix="bsnn-lif")
            self._pool_pid, self._pool_size = pid, chunks
        step = -(-n // chunks)
        step = -(-step // 16) * 16  # chunk starts on a 64-byte boundary for float32
        bounds = [(b, min(b + step, n)) for b in range(0, n, step)]
        futures = [self._pool.submit(fn, b, e) for b, e in bounds[1:]]
        fn(*bounds[0])
        for future in futures:
            future.result()

    def forward(self, current: Tensor, mem: Tensor, spk: Tensor | None, beta: float,
                threshold: float, reset: str, fire: bool) -> None:
        """Fill ``mem`` (and ``spk`` when ``fire``) from ``current``; all of one layout."""
        steps = current.shape[0]
        n = current.numel() // steps if steps else 0
        f = self._fwd[current.dtype]
        args = (current.data_ptr(), mem.data_ptr(), spk.data_ptr() if fire else None)
        code = self._RESET[reset]

        def call(begin: int, end: int) -> None:
            f(*args, steps, n, begin, end, beta, threshold, code, int(fire))

        self._dispatch(call, steps, n)

    def backward(self, mem: Tensor, spk: Tensor | None, g_spk: Tensor | None,
                 g_mem: Tensor | None, grad: Tensor, beta: float, threshold: float, reset: str,
                 fire: bool, kind: int, alpha: float) -> None:
        """Fill ``grad`` (dL/dI) from the saved ``mem``/``spk`` and the incoming gradients."""
        steps = mem.shape[0]
        n = mem.numel() // steps if steps else 0
        f = self._bwd[mem.dtype]

        def ptr(t: Tensor | None) -> int | None:
            return None if t is None else t.data_ptr()

        args = (ptr(mem), ptr(spk), ptr(g_spk), ptr(g_mem), ptr(grad))
        code = self._RESET[reset]

        def call(begin: int, end: int) -> None:
            f(*args, steps, n, begin, end, beta, threshold, code, int(fire), kind, alpha)

        self._dispatch(call, steps, n)

    def _dispatch(self, call, steps: int, n: int) -> None:
        if steps * n < _SPLIT_MIN:
            call(0, n)
        else:
            self._map(call, n)


def dense_time_major(t: Tensor) -> bool:
    """True if ``t [T, ...]`` is T consecutive dense blocks: ``t[s]`` starts at ``s * N`` and
    covers its ``N`` elements without gaps (contiguous, channels-last, or any dense permutation
    of the dimensions after time)."""
    if t.dim() < 1 or t.numel() == 0:
        return False
    n = t.numel() // t.shape[0]
    if t.shape[0] > 1 and t.stride(0) != n:
        return False
    expect = 1
    for stride, size in sorted((s, d) for s, d in zip(t.stride()[1:], t.shape[1:]) if d != 1):
        if stride != expect:
            return False
        expect *= size
    return True


def kernels() -> Kernels | None:
    """The compiled kernels, compiling them on first use; None where unavailable (see module)."""
    global _loaded, _tried
    if _tried:
        return _loaded
    with _lock:
        if _tried:
            return _loaded
        if os.environ.get(ENV, "1") == "0":
            _tried = True
            return None
        try:
            path = _library_path()
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                # One process compiles; the others (a study's workers) wait for its result.
                with open(path.parent / ".compile.lock", "w") as lock:
                    if fcntl is not None:
                        fcntl.flock(lock, fcntl.LOCK_EX)
                    if not path.exists():
                        _compile(SOURCE, path)
            _loaded = Kernels(ctypes.CDLL(str(path)))
        except (OSError, RuntimeError) as exc:
            warnings.warn(f"fused CPU LIF kernel unavailable, using the torch loop: {exc}",
                          RuntimeWarning, stacklevel=2)
            _loaded = None
        _tried = True
        return _loaded
