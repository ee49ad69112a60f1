"""The frame cache: keyed by every parameter, atomic, checksummed; fast framing equals tonic's."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.config import RunConfig
from harness.data import cache
from harness.data.dvs_sim import EVENT_DTYPE
from harness.data.frames import fast_frames, to_frames
from harness.data.pipeline import build_data


@pytest.fixture()
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BSNN_CACHE_DIR", str(tmp_path))
    return tmp_path


def counting_build(calls: list[int], value: int):
    def build() -> dict[str, np.ndarray]:
        calls.append(value)
        return {"a": np.arange(5) * value}
    return build


def test_unchanged_parameters_read_the_cache(own_cache: Path) -> None:
    calls: list[int] = []
    first = cache.load_or_build("frames", "x", {"p": 1}, counting_build(calls, 1))
    again = cache.load_or_build("frames", "x", {"p": 1}, counting_build(calls, 99))
    assert calls == [1]
    np.testing.assert_array_equal(first["a"], again["a"])


def test_changed_parameter_or_code_version_gives_new_entry(own_cache: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    cache.load_or_build("frames", "x", {"p": 1}, counting_build(calls, 1))
    other = cache.load_or_build("frames", "x", {"p": 2}, counting_build(calls, 2))
    assert calls == [1, 2] and other["a"][1] == 2
    monkeypatch.setattr(cache, "PREPROCESS_VERSION", cache.PREPROCESS_VERSION + 1)
    cache.load_or_build("frames", "x", {"p": 1}, counting_build(calls, 3))
    assert calls == [1, 2, 3]


@pytest.mark.parametrize("damage", ["truncate", "flip-bytes", "garbage"])
def test_corrupt_entry_is_detected_and_rebuilt(own_cache: Path, damage: str) -> None:
    calls: list[int] = []
    cache.load_or_build("frames", "x", {"p": 1}, counting_build(calls, 1))
    path = cache.entry_path("frames", "x", {"p": 1})
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "flip-bytes":
        # Inside the stored array data of "a" (npz members are stored uncompressed).
        pos = raw.find(np.arange(5, dtype=np.int64).tobytes())
        assert pos > 0
        raw[pos + 8] ^= 0xFF
    else:
        raw = bytearray(b"not a zip file at all")
    path.write_bytes(bytes(raw))
    rebuilt = cache.load_or_build("frames", "x", {"p": 1}, counting_build(calls, 1))
    assert calls == [1, 1]
    np.testing.assert_array_equal(rebuilt["a"], np.arange(5))
    assert cache.load_or_build("frames", "x", {"p": 1}, counting_build(calls, 7))["a"][1] == 1
    assert calls == [1, 1]


def _worker(args: tuple[str, str]) -> int:
    import os

    directory, marker = args
    os.environ["BSNN_CACHE_DIR"] = directory

    def build() -> dict[str, np.ndarray]:
        with open(marker, "a") as fh:
            fh.write("built\n")
        time.sleep(0.5)  # long enough that unlocked builders would overlap
        return {"a": np.ones(100_000)}

    return int(cache.load_or_build("frames", "shared", {"p": 1}, build)["a"].sum())


def test_concurrent_processes_build_once_and_read_whole_files(own_cache: Path) -> None:
    marker = own_cache / "builds.txt"
    # fork: the children only need numpy and files; spawn would re-import torch three times.
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs the fork start method")
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(3) as pool:
        sums = pool.map(_worker, [(str(own_cache), str(marker))] * 3)
    assert sums == [100_000] * 3
    assert marker.read_text().count("built") == 1
    assert not list((own_cache / "frames").glob("*.tmp"))


def random_events(rng: np.random.Generator, n: int, w: int, h: int) -> np.ndarray:
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["x"] = rng.integers(0, w, n)
    ev["y"] = rng.integers(0, h, n)
    ev["p"] = rng.integers(0, 2, n)
    ev["t"] = np.sort(rng.integers(0, 100_000, n))
    return ev


def test_fast_frames_equal_tonic_to_frame() -> None:
    rng = np.random.default_rng(0)
    samples = [random_events(rng, n, 7, 5) for n in (0, 1, 3, 500, 2000)]
    samples.append(samples[-1][:10].copy())
    samples[-1]["t"] = 42  # zero duration: tonic gives empty frames
    fast = fast_frames(samples, (7, 5, 2), 6)
    for i, ev in enumerate(samples):
        np.testing.assert_array_equal(fast[i], to_frames(ev.copy(), (7, 5, 2), 6), err_msg=str(i))
    assert fast[4].sum() > 0


def test_build_data_reuses_frames_and_rebuilds_when_time_steps_change(own_cache: Path) -> None:
    cfg = RunConfig.from_dict({"dataset": {"name": "digits-dvs", "limit": 8}})
    first = build_data(cfg)
    frames_dir = own_cache / "frames"
    before = {p.name: p.stat().st_mtime_ns for p in frames_dir.glob("*.npz")}
    assert len(before) == 3  # train, val, test
    again = build_data(cfg)
    assert {p.name: p.stat().st_mtime_ns for p in frames_dir.glob("*.npz")} == before
    assert np.array_equal(first.test.frames.numpy(), again.test.frames.numpy())
    other = build_data(cfg.with_path("dataset.time_steps", 4))
    assert len(list(frames_dir.glob("*.npz"))) == 6
    assert other.test.frames.shape[1] == 4 and first.test.frames.shape[1] == 6
    # Same events binned coarser: the same total count per sample.
    assert np.array_equal(other.test.frames.sum(dim=(1, 2, 3, 4)).numpy(),
                          first.test.frames.to(int).sum(dim=(1, 2, 3, 4)).numpy())


def test_runs_sharing_preprocessing_read_the_disk_once(own_cache: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """build_data keeps the entries it read in this process (a study worker's next runs)."""
    from harness.data import memo

    memo.clear()
    cfg = RunConfig.from_dict({"dataset": {"name": "digits-dvs", "limit": 6}})
    first = build_data(cfg)
    reads: list[str] = []
    real_read = cache._read
    monkeypatch.setattr(cache, "_read", lambda path, params: reads.append(str(path))
                        or real_read(path, params))
    again = build_data(RunConfig.from_dict({"dataset": {"name": "digits-dvs", "limit": 6},
                                            "train": {"seed": 3, "batch_size": 2}}))
    assert reads == []
    for split in ("train", "val", "test"):
        a, b = getattr(first, split), getattr(again, split)
        assert torch.equal(a.frames, b.frames) and torch.equal(a.labels, b.labels)
    assert again.train.batch_size == 2 and again.train.seed == 3
    # Other preprocessing (T) is another entry: read from disk (built there first).
    build_data(RunConfig.from_dict({"dataset": {"name": "digits-dvs", "limit": 6,
                                                "time_steps": 3}}))
    assert reads and all("frames" in r or "events" in r for r in reads)


def test_memo_budget_evicts_least_recent_and_zero_turns_it_off(
        own_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.data import memo

    memo.clear()
    calls: list[int] = []
    monkeypatch.setenv(memo.MEMO_ENV, str(100 / 2 ** 20))  # 100 bytes: two 40-byte entries
    memo.load_or_build("frames", "m", {"p": 1}, counting_build(calls, 1))
    memo.load_or_build("frames", "m", {"p": 2}, counting_build(calls, 2))
    assert memo.memo_bytes() == 80
    memo.load_or_build("frames", "m", {"p": 1}, counting_build(calls, 1))  # p=1 newest now
    memo.load_or_build("frames", "m", {"p": 3}, counting_build(calls, 3))  # evicts p=2
    assert memo.memo_bytes() == 80 and calls == [1, 2, 3]
    reads: list[str] = []
    real_read = cache._read
    monkeypatch.setattr(cache, "_read", lambda path, params: reads.append(str(path))
                        or real_read(path, params))
    memo.load_or_build("frames", "m", {"p": 1}, counting_build(calls, 9))
    assert reads == []
    memo.load_or_build("frames", "m", {"p": 2}, counting_build(calls, 9))
    assert len(reads) == 1 and calls == [1, 2, 3]  # from disk, not rebuilt
    monkeypatch.setenv(memo.MEMO_ENV, "0")
    memo.clear()
    memo.load_or_build("frames", "m", {"p": 1}, counting_build(calls, 9))
    assert memo.memo_bytes() == 0
