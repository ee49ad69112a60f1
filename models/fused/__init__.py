"""Fused CPU kernels: the LIF recurrence and training batch norm in one pass over memory each.

On the CPU the torch loop of :mod:`models.neurons` makes 4 passes over each time step's slice in
forward and 4-5 in backward, and torch's batch norm reads a channels-last map twice for its
statistics; every pass over a conv layer's map is memory traffic, and these were most of a
default training step. The C files here do the same work in fewer passes:

* :file:`lif.c`: the LIF recurrence, one pass per step each way, tile by tile so that the
  previous step is read back from L1. Forward bit-equal to the torch loop; backward the same
  formula with another rounding order (tests/test_fused_lif.py).
* :file:`bn.c`: training BN (float, or shift ``on`` with its power-of-two scales) on a block of
  rows of channels (channels-last maps, FC features): statistics in one pass, the affine map in
  one; backward sums in one, ``dx`` in one; per-channel constants in C too, so a layer costs one
  call each way (tests/test_fused_bn.py).
* :file:`pool.c`: 2x2 max pooling of channels-last maps with torch's tie rule, the winning
  window position kept in one byte instead of an int64 index (a quarter of the traffic of the
  pooled map, not twice it), the channel loop unrolled for 16, 32, 64 and 128 channels, and a
  backward that zeroes each row pair and stores each window's gradient while the rows are in
  cache (tests/test_fused_pool.py).

The sources are compiled on first use with the system's C compiler (``$CC``, else ``cc``) into
the cache directory (``$BSNN_CACHE_DIR``, else ``~/.cache/bsnn-bench``, subfolder ``kernels``),
named by a hash of the sources and flags, under a file lock (a study's workers compile once);
later processes load the compiled file with :mod:`ctypes`. ``target_clones`` builds AVX2 and
baseline variants into one library that picks the machine's at load time, so a cache shared by
different x86 machines is safe, and ``-ffp-contract=off`` makes both round alike.

Threads: where torch's parallel backend is OpenMP (its Linux wheels), the library is built with
``-fopenmp`` and its ``libgomp.so.1`` resolves to the copy torch has already loaded, so the
kernels split their rows over torch's own thread pool (``torch.get_num_threads()``) with no
second runtime. Elsewhere they run on one thread.

Without a compiler (or with ``BSNN_BENCH_FUSED=0``) :func:`kernels` returns None and the torch
code runs; a failure to build is reported once, as a warning naming the reason.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

try:
    import fcntl
except ImportError:  # not POSIX: compiling processes are not serialized
    fcntl = None  # type: ignore[assignment]

__all__ = ["ENV", "MAX_CHANNELS", "Kernels", "dense_time_major", "in_layout_of", "kernels"]

#: Set to 0 to use the torch code everywhere.
ENV = "BSNN_BENCH_FUSED"
SOURCES = tuple(Path(__file__).with_name(name) for name in ("lif.c", "bn.c", "pool.c"))
#: Included by the sources: part of the library's name too.
HEADERS = (Path(__file__).with_name("fused.h"),)
FLAGS = ("-O3", "-shared", "-fPIC", "-ffp-contract=off", "-fno-math-errno", "-std=c11")
#: The most channels bn.c takes (its MAX_C).
MAX_CHANNELS = 4096
#: Blocks below this many elements run on one thread (a parallel region costs a few us).
SPLIT_MIN = 1 << 15
#: The dtypes the kernels take, with the suffix of their C functions.
_DTYPES = {torch.float32: "f32", torch.float64: "f64"}

_lock = threading.Lock()
_loaded: Kernels | None = None
_tried = False


def _cache_dir() -> Path:
    # harness.data.cache.cache_dir's rule, restated: models does not import the harness.
    env = os.environ.get("BSNN_CACHE_DIR")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "bsnn-bench"
    return root / "kernels"


def _openmp() -> bool:
    """True if torch runs on OpenMP, whose runtime the kernels can share."""
    return "parallel backend: OpenMP" in torch.__config__.parallel_info()


def _flags(openmp: bool) -> tuple[str, ...]:
    return FLAGS + (("-fopenmp",) if openmp else ())


def _library_path(flags: tuple[str, ...]) -> Path:
    """The compiled file for these sources and flags on this kind of host: the machine, the C
    library and the compiler are in the name, so a cache shared by unlike hosts (a cluster's
    home directory) keeps one library per kind instead of loading a foreign one."""
    host = (sys.platform, platform.machine(), *platform.libc_ver(),
            os.environ.get("CC") or "cc")
    digest = hashlib.sha256(b"".join(src.read_bytes() for src in SOURCES + HEADERS)
                            + repr((flags, host)).encode()).hexdigest()[:16]
    return _cache_dir() / f"fused-{digest}.so"


def _compile(flags: tuple[str, ...], target: Path) -> None:
    """Compile the sources into ``target`` atomically (a temporary file renamed into place), so
    processes compiling at the same time never load a half-written library."""
    compiler = os.environ.get("CC") or "cc"
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C compiler ({compiler!r} not found; set CC)")
    fd, tmp = tempfile.mkstemp(prefix=target.stem, suffix=".so.tmp", dir=target.parent)
    os.close(fd)
    try:
        proc = subprocess.run([compiler, *flags, *map(str, SOURCES), "-o", tmp, "-lm"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            raise RuntimeError(f"{compiler} failed: {msg[0] if msg else proc.returncode}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _build(flags: tuple[str, ...]) -> ctypes.CDLL:
    """Load the library for ``flags``, compiling it first where the cache lacks it. A cached
    file that does not load (damaged, or left by a host the name does not tell apart) is
    compiled again once, in place."""
    path = _library_path(flags)
    if path.exists():
        try:
            return ctypes.CDLL(str(path))
        except OSError:
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # One process compiles; the others (a study's workers) wait for its result, then load it.
    with open(path.parent / ".compile.lock", "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return ctypes.CDLL(str(path))  # another process compiled it while we waited
        except OSError:
            _compile(flags, path)
    return ctypes.CDLL(str(path))


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def in_layout_of(t: Tensor, ref: Tensor) -> Tensor:
    """``t`` with ``ref``'s strides, copied only if it has others: the kernels index every
    operand alike, and an incoming gradient may come in another layout (or expanded, stride 0)."""
    return t if t.stride() == ref.stride() else torch.empty_like(ref).copy_(t)


class Kernels:
    """The loaded library, on tensors the callers have checked (:meth:`supports`,
    :meth:`rows`)."""

    _RESET = {"subtract": 0, "zero": 1, "none": 2}

    def __init__(self, lib: ctypes.CDLL, threaded: bool) -> None:
        i64, dbl, int_, ptr = ctypes.c_int64, ctypes.c_double, ctypes.c_int, ctypes.c_void_p
        self.threaded = threaded
        signatures = {
            "lif_forward": [ptr, ptr, ptr, i64, i64, int_, dbl, dbl, int_, int_],
            "lif_backward": [ptr, ptr, ptr, ptr, ptr, i64, i64, int_, dbl, dbl, int_, int_,
                             int_, dbl],
            "bn_forward": [ptr, ptr, i64, i64, int_, ptr, ptr, ptr, ptr, dbl, dbl, int_, ptr,
                           ptr, ptr],
            "bn_backward": [ptr, ptr, ptr, i64, i64, int_, ptr, ptr, ptr, ptr, ptr],
            "maxpool2_forward": [ptr, ptr, ptr, i64, i64, i64, i64, int_],
            "maxpool2_backward": [ptr, ptr, ptr, i64, i64, i64, i64, int_],
        }
        #: ``self._fn[name][dtype]``: the C function ``<name>_f32`` / ``<name>_f64``.
        self._fn: dict[str, dict[torch.dtype, Any]] = {}
        for name, argtypes in signatures.items():
            self._fn[name] = {}
            for dtype, suffix in _DTYPES.items():
                fn = getattr(lib, f"{name}_{suffix}")
                fn.argtypes, fn.restype = argtypes, None
                self._fn[name][dtype] = fn

    def _chunks(self, elements: int) -> int:
        if not self.threaded or elements < SPLIT_MIN:
            return 1
        return max(1, torch.get_num_threads())

    # -- LIF (lif.c) ----------------------------------------------------------------------
    def supports(self, t: Tensor) -> bool:
        """True if the LIF kernels take ``t [T, ...]`` (CPU, float32/64, dense time-major)."""
        return t.device.type == "cpu" and t.dtype in _DTYPES and dense_time_major(t)

    def forward(self, current: Tensor, mem: Tensor, spk: Tensor | None, beta: float,
                threshold: float, reset: str, fire: bool) -> None:
        """Fill ``mem`` (and ``spk`` when ``fire``) from ``current``; all of one layout."""
        steps = current.shape[0]
        n = current.numel() // steps
        self._fn["lif_forward"][current.dtype](
            current.data_ptr(), mem.data_ptr(), _ptr(spk) if fire else None, steps, n,
            self._chunks(steps * n), beta, threshold, self._RESET[reset], int(fire))

    def backward(self, mem: Tensor, spk: Tensor | None, g_spk: Tensor | None,
                 g_mem: Tensor | None, grad: Tensor, beta: float, threshold: float, reset: str,
                 fire: bool, kind: int, alpha: float) -> None:
        """Fill ``grad`` (dL/dI) from the saved ``mem``/``spk`` and the incoming gradients."""
        steps = mem.shape[0]
        n = mem.numel() // steps
        self._fn["lif_backward"][mem.dtype](
            mem.data_ptr(), _ptr(spk), _ptr(g_spk), _ptr(g_mem), grad.data_ptr(), steps, n,
            self._chunks(steps * n), beta, threshold, self._RESET[reset], int(fire), kind, alpha)

    # -- batch norm on [M, C] rows (bn.c) -------------------------------------------------
    def rows(self, x: Tensor) -> tuple[int, int] | None:
        """``(M, C)`` if ``x [N, C, ...]`` lies in memory as M rows of its C channels (2-d
        contiguous, or channels-last 4-d) on the CPU in a supported dtype, else None."""
        if x.device.type != "cpu" or x.dtype not in _DTYPES or x.numel() == 0 or \
                x.dim() < 2 or x.shape[1] > MAX_CHANNELS:
            return None
        if x.dim() == 2 and x.is_contiguous():
            return x.shape[0], x.shape[1]
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and \
                x.stride(1) == 1:
            return x.numel() // x.shape[1], x.shape[1]
        return None

    def bn_forward(self, x: Tensor, gamma: Tensor, beta: Tensor, running_mean: Tensor | None,
                   running_var: Tensor | None, momentum: float, eps: float,
                   shift: bool) -> tuple[Tensor, Tensor]:
        """``(y, saved)``: the normalized ``x`` in its layout and the ``[4, C]`` per-channel
        ``(mean, inv_std, G, R)`` the backward needs; updates the running statistics. Every
        per-channel tensor must be contiguous and of ``x``'s dtype."""
        rows, channels = self.rows(x)  # type: ignore[misc]
        chunks = self._chunks(x.numel())
        y = torch.empty_like(x)
        saved = x.new_empty(4, channels)
        consts = x.new_empty(4, channels)
        ws = torch.empty(chunks, 2, channels, dtype=torch.float64)
        self._fn["bn_forward"][x.dtype](
            x.data_ptr(), y.data_ptr(), rows, channels, chunks, gamma.data_ptr(), beta.data_ptr(),
            _ptr(running_mean), _ptr(running_var), momentum, eps, int(shift), saved.data_ptr(),
            consts.data_ptr(), ws.data_ptr())
        return y, saved

    def bn_backward(self, g: Tensor, x: Tensor, saved: Tensor,
                    need_x: bool) -> tuple[Tensor | None, Tensor, Tensor]:
        """``(dx, dgamma, dbeta)``; ``g`` in ``x``'s layout; ``dx`` None unless ``need_x``."""
        rows, channels = self.rows(x)  # type: ignore[misc]
        chunks = self._chunks(x.numel())
        dx = torch.empty_like(x) if need_x else None
        out = x.new_empty(2, channels)
        consts = x.new_empty(4, channels)
        ws = torch.empty(chunks, 2, channels, dtype=torch.float64)
        self._fn["bn_backward"][x.dtype](
            g.data_ptr(), x.data_ptr(), _ptr(dx), rows, channels, chunks, saved.data_ptr(),
            out[0].data_ptr(), out[1].data_ptr(), consts.data_ptr(), ws.data_ptr())
        return dx, out[0], out[1]

    # -- 2x2 max pooling of channels-last maps (pool.c) ------------------------------------
    def pools(self, x: Tensor) -> bool:
        """True if :meth:`maxpool2` takes ``x [N, C, H, W]``: CPU, float32/64, channels-last,
        H and W at least 2."""
        return (x.device.type == "cpu" and x.dtype in _DTYPES and x.dim() == 4
                and x.shape[1] >= 1 and x.shape[2] >= 2 and x.shape[3] >= 2
                and x.is_contiguous(memory_format=torch.channels_last))

    def maxpool2(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(y, where)``: ``F.max_pool2d(x, 2)`` in the channels-last layout and each output's
        winning window position (0-3, uint8)."""
        n, c, h, w = x.shape
        y = torch.empty(n, c, h // 2, w // 2, dtype=x.dtype,
                        memory_format=torch.channels_last)
        where = torch.empty(n, h // 2, w // 2, c, dtype=torch.uint8)
        self._fn["maxpool2_forward"][x.dtype](x.data_ptr(), y.data_ptr(), where.data_ptr(), n, h,
                                              w, c, self._chunks(x.numel()))
        return y, where

    def maxpool2_grad(self, g: Tensor, where: Tensor, shape: torch.Size) -> Tensor:
        """The gradient of :meth:`maxpool2`'s input for the output gradient ``g``."""
        n, c, h, w = shape
        g = g.contiguous(memory_format=torch.channels_last)
        dx = torch.empty(n, c, h, w, dtype=g.dtype, memory_format=torch.channels_last)
        self._fn["maxpool2_backward"][g.dtype](g.data_ptr(), where.data_ptr(), dx.data_ptr(), n,
                                               h, w, c, self._chunks(dx.numel()))
        return dx


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
        errors = []
        for openmp in ((True, False) if _openmp() else (False,)):
            try:
                _loaded = Kernels(_build(_flags(openmp)), threaded=openmp)
                break
            except (OSError, RuntimeError, AttributeError) as exc:
                errors.append(str(exc))
        if _loaded is None:
            warnings.warn(f"fused CPU kernels unavailable, using the torch code: {errors[-1]}",
                          RuntimeWarning, stacklevel=2)
        _tried = True
        return _loaded
