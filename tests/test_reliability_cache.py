"""A cache that cannot lie: an entry whose ``.npy`` header claims a smaller shape than the data
it holds (numpy then never reads the member to its end, so its CRC goes unchecked) is detected
by the shape, dtype and SHA-256 the entry records, and rebuilt, for frames and events alike."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from harness.config import RunConfig
from harness.data import cache
from harness.data.pipeline import build_data


@pytest.fixture()
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BSNN_CACHE_DIR", str(tmp_path))
    return tmp_path


def shrink_header(path: Path, member: str, rows: int) -> None:
    """Rewrite ``member`` of the .npz so that its header claims ``rows`` rows, the data bytes
    unchanged (the zip CRCs are recomputed, so only the header lies)."""
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    raw = io.BytesIO(members[f"{member}.npy"])
    version = np.lib.format.read_magic(raw)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = read(raw)
    assert shape[0] > rows
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {
        "descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": fortran,
        "shape": (rows, *shape[1:])})
    members[f"{member}.npy"] = header.getvalue() + raw.read()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


@pytest.mark.parametrize("kind", ["frames", "events"])
def test_cache_entry_with_a_lying_npy_header_is_rebuilt(own_cache: Path, kind: str) -> None:
    rng = np.random.default_rng(0)
    if kind == "frames":
        truth = {"frames": rng.integers(0, 255, (6, 3, 2, 5, 5)).astype(np.uint8)}
        member = "frames"
    else:
        samples = [np.zeros(n, dtype=[("x", "<u2"), ("y", "<u2"), ("t", "<i8"), ("p", "u1")])
                   for n in (3, 4, 5)]
        for ev in samples:
            ev["x"], ev["t"] = rng.integers(0, 9, len(ev)), np.arange(len(ev))
        truth = cache.pack_events(samples)
        member = "events"
    builds: list[int] = []

    def build() -> dict[str, np.ndarray]:
        builds.append(1)
        return truth

    params = {"p": kind}
    cache.load_or_build(kind, "x", params, build)
    shrink_header(cache.entry_path(kind, "x", params), member, 2)
    got = cache.load_or_build(kind, "x", params, build)
    assert len(builds) == 2, "the lying entry was trusted instead of rebuilt"
    for name, array in truth.items():
        np.testing.assert_array_equal(got[name], array)
    # The rebuilt entry is whole again: read without another build.
    cache.load_or_build(kind, "x", params, build)
    assert len(builds) == 2


def test_an_entry_without_array_records_is_rebuilt(own_cache: Path) -> None:
    """Entries written before the records existed are not trusted either (built once more)."""
    path = cache.entry_path("frames", "old", {"p": 1})
    path.parent.mkdir(parents=True)
    import json

    np.savez(path, a=np.arange(3), __meta__=np.array(json.dumps(
        {"key": cache._canonical({"p": 1})})))
    got = cache.load_or_build("frames", "old", {"p": 1}, lambda: {"a": np.arange(4)})
    np.testing.assert_array_equal(got["a"], np.arange(4))


def test_build_data_rebuilds_lying_frames_and_events_entries(own_cache: Path) -> None:
    """The run's own data path: frames whose header lies used to crash the run (reshape), and
    lying events used to be framed and cached silently as wrong frames."""
    cfg = RunConfig.from_dict({"dataset": {"name": "digits-dvs", "limit": 6}})
    first = build_data(cfg)
    frame_entries = sorted((own_cache / "frames").glob("*.npz"))
    event_entries = sorted((own_cache / "events").glob("*.npz"))
    assert frame_entries and event_entries
    for path in frame_entries:
        shrink_header(path, "frames", 1)
    again = build_data(cfg)
    for split in ("train", "val", "test"):
        assert np.array_equal(getattr(first, split).frames.numpy(),
                              getattr(again, split).frames.numpy()), split
    # Events that lie, frames gone: the frames are built from rebuilt events, not the lie.
    for path in event_entries:
        shrink_header(path, "events", 2)
    for path in frame_entries:
        path.unlink()
    third = build_data(cfg)
    for split in ("train", "val", "test"):
        assert np.array_equal(getattr(first, split).frames.numpy(),
                              getattr(third, split).frames.numpy()), split
