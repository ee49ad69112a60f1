"""The on-disk cache of generated events and preprocessed frames.

An entry is one ``.npz`` file of named arrays under ``<cache dir>/<kind>/``, whose name carries the
hash of everything that determines its content: the caller's parameters (dataset, split, every
preprocessing parameter) and :data:`PREPROCESS_VERSION`. Changing any of them gives a new key, so a
stale entry is never returned; bump the version whenever preprocessing code changes its output.

Writes are atomic (a temporary file in the same folder, then ``os.replace``) and serialized per
key by an advisory lock, so worker processes that ask for the same entry at once build it once and
never read half a file. A file that fails to load is reported and rebuilt, never trusted. numpy
checks a member's CRC-32 only when it reads the member to its end, which a ``.npy`` header
claiming a smaller shape avoids; so the entry's metadata also records each array's shape, dtype
and SHA-256, and an array that differs from its record in any of them rebuilds the entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "PREPROCESS_VERSION",
    "cache_dir",
    "cache_key",
    "entry_path",
    "load_or_build",
    "pack_events",
    "unpack_events",
]

log = logging.getLogger(__name__)

#: Version of the event generation and preprocessing code; part of every key.
PREPROCESS_VERSION = 1

_META = "__meta__"


def cache_dir() -> Path:
    """``$BSNN_CACHE_DIR``, else ``~/.cache/bsnn-bench``."""
    env = os.environ.get("BSNN_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "bsnn-bench"


def _canonical(params: Mapping[str, Any]) -> str:
    return json.dumps({"params": params, "version": PREPROCESS_VERSION}, sort_keys=True,
                      default=_json_default, separators=(",", ":"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, tuple | set):
        return list(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cache key parameter of type {type(obj).__name__} is not JSON-able")


def cache_key(params: Mapping[str, Any]) -> str:
    """Hash of the parameters and the preprocessing code version (hex, 20 characters)."""
    return hashlib.sha256(_canonical(params).encode()).hexdigest()[:20]


def entry_path(kind: str, name: str, params: Mapping[str, Any]) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    return cache_dir() / kind / f"{safe}-{cache_key(params)}.npz"


def _read(path: Path, params: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
    """The arrays of a valid entry, or None (missing or corrupt: the reason is logged)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data[_META]))
            arrays = {k: data[k] for k in data.files if k != _META}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("cache entry %s is unreadable (%s); rebuilding it", path, exc)
        return None
    if not isinstance(meta, dict) or meta.get("key") != _canonical(params):
        log.warning("cache entry %s was written for other parameters; rebuilding it", path)
        return None
    problem = _mismatch(meta.get("arrays"), arrays)
    if problem:
        log.warning("cache entry %s does not hold what it recorded (%s); rebuilding it", path,
                    problem)
        return None
    return arrays


def _describe(array: np.ndarray) -> dict[str, Any]:
    """What the metadata records of one array: shape, dtype and the SHA-256 of its bytes."""
    contiguous = np.ascontiguousarray(array)
    return {"shape": list(contiguous.shape),
            "dtype": json.loads(json.dumps(np.lib.format.dtype_to_descr(contiguous.dtype))),
            "sha256": hashlib.sha256(contiguous.data).hexdigest()}


def _mismatch(recorded: Any, arrays: Mapping[str, np.ndarray]) -> str | None:
    """Why ``arrays`` are not the arrays ``recorded`` describes, or None when they are."""
    if not isinstance(recorded, dict):
        return "no record of its arrays (written by an older bsnn-bench)"
    if set(recorded) != set(arrays):
        return f"arrays {sorted(arrays)}, recorded {sorted(recorded)}"
    for name, array in arrays.items():
        want = recorded[name]
        if not isinstance(want, dict):
            return f"no record of array {name!r}"
        have = {"shape": list(array.shape),
                "dtype": json.loads(json.dumps(np.lib.format.dtype_to_descr(array.dtype)))}
        for field in ("shape", "dtype"):
            if have[field] != want.get(field):
                return f"{name!r} {field} {have[field]}, recorded {want.get(field)}"
        if _describe(array)["sha256"] != want.get("sha256"):
            return f"{name!r} content differs from its recorded SHA-256"
    return None


def _write(path: Path, params: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    if _META in arrays:
        raise ValueError(f"'{_META}' is reserved in cache entries")
    meta = {"key": _canonical(params),
            "arrays": {name: _describe(array) for name, array in arrays.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays, **{_META: np.array(json.dumps(meta))})
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock for ``path`` (no-op where fcntl does not exist)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: atomic replace still prevents torn reads
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def load_or_build(kind: str, name: str, params: Mapping[str, Any],
                  build: Callable[[], Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The cached arrays for ``params``, building and storing them first if needed.

    Args:
        kind: sub-folder (``events``, ``frames``).
        name: readable file-name prefix (dataset and split); the key makes it unique.
        params: everything the content depends on (JSON-able); hashed with the code version.
        build: computes the arrays on a miss.
    """
    path = entry_path(kind, name, params)
    arrays = _read(path, params)
    if arrays is not None:
        return arrays
    with _locked(path):
        # Another process may have built it while this one waited for the lock.
        arrays = _read(path, params)
        if arrays is not None:
            return arrays
        arrays = {k: np.asarray(v) for k, v in build().items()}
        _write(path, params, arrays)
        return arrays


#: Compact on-disk event fields; timestamps stay 64-bit (long recordings exceed 2**32 us).
_PACKED = np.dtype([("x", np.uint16), ("y", np.uint16), ("t", np.int64), ("p", np.uint8)])


def pack_events(events: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Concatenate per-sample event arrays into ``events`` + ``offsets`` (N+1)."""
    offsets = np.zeros(len(events) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(e) for e in events])
    packed = np.empty(int(offsets[-1]), dtype=_PACKED)
    for name in _PACKED.names:
        packed[name] = np.concatenate([e[name] for e in events]) if events else []
    return {"events": packed, "offsets": offsets}


def unpack_events(arrays: Mapping[str, np.ndarray], dtype: np.dtype) -> list[np.ndarray]:
    """Inverse of :func:`pack_events`, giving per-sample arrays of ``dtype``."""
    packed, offsets = arrays["events"], arrays["offsets"]
    full = np.empty(len(packed), dtype=dtype)
    for name in dtype.names:
        full[name] = packed[name]
    return [full[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
