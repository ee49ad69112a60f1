"""Real datasets read from tiny files written here in each dataset's on-disk format."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from harness.config import RunConfig
from harness.data import build_data, check_dataset
from harness.errors import DatasetMissingError


def nmnist_bytes(events: list[tuple[int, int, int, int]], overflow_after: int | None) -> bytes:
    """N-MNIST's 5-byte ATIS events; y == 240 marks a timestamp overflow (+2**13 us after it)."""
    out = bytearray()
    for i, (x, y, t, p) in enumerate(events):
        out += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
        if overflow_after is not None and i == overflow_after:
            out += bytes([0, 240, 0, 0, 0])
    return bytes(out)


def write_nmnist(root: Path) -> None:
    for folder, n_per_class in (("Train", 4), ("Test", 2)):
        for digit in (0, 1):
            d = root / "NMNIST" / folder / str(digit)
            d.mkdir(parents=True)
            for k in range(n_per_class):
                events = [(3 + digit, 5 + k, 100 * j, j % 2) for j in range(6)]
                events += [(20, 20, 50 * j, 1) for j in range(4)]  # after the overflow marker
                (d / f"{k:05d}.bin").write_bytes(nmnist_bytes(events, overflow_after=5))


def test_nmnist_five_byte_events_with_overflow(tmp_path: Path) -> None:
    write_nmnist(tmp_path)
    cfg = RunConfig.from_dict({"dataset": {"name": "nmnist", "root": str(tmp_path),
                                           "val_fraction": 0.25,
                                           "options": {"denoise_us": None}}})
    check_dataset(cfg)
    data = build_data(cfg)
    assert data.input_shape == (2, 34, 34) and data.time_steps == 18
    assert data.num_classes == 10
    assert (data.train.num_samples, data.val.num_samples, data.test.num_samples) == (6, 2, 4)
    frames = data.test.frames
    assert frames.shape == (4, 18, 2, 34, 34)
    # 10 events per file (the overflow marker is not one); the 4 after the marker have
    # t = 8192 + 50 j. tonic's bins are (8342 - 0) // 18 = 463 us wide and drop what lies past
    # the 18th, here the last event.
    width = 8342 // 18
    late_times = [8192 + 50 * j for j in range(4)]
    kept_late = [t for t in late_times if t // width < 18]
    assert len(kept_late) == 3
    assert frames.to(int).sum(dim=(1, 2, 3, 4)).tolist() == [6 + len(kept_late)] * 4
    late = frames[:, :, 1, 20, 20].to(int)
    assert late.sum(dim=1).tolist() == [3] * 4
    assert late[0].nonzero().flatten().tolist() == sorted({t // width for t in kept_late})
    assert sorted(data.test.labels.tolist()) == [0, 0, 1, 1]
    assert sorted(data.train.labels.tolist() + data.val.labels.tolist()) == [0] * 4 + [1] * 4


def test_nmnist_default_denoise_drops_isolated_events(tmp_path: Path) -> None:
    d = tmp_path / "NMNIST" / "Train" / "3"
    d.mkdir(parents=True)
    (tmp_path / "NMNIST" / "Test" / "3").mkdir(parents=True)
    # Pairs of neighbours firing together keep their second event (the first has no earlier
    # neighbour within 10 ms); a lone pixel is dropped.
    events = [(10, 10, 20_000, 1), (11, 10, 20_100, 1), (10, 20, 40_000, 1),
              (10, 21, 40_100, 0), (30, 30, 50_000, 0), (20, 5, 60_000, 1), (21, 5, 60_100, 1)]
    for folder in ("Train", "Test"):
        (tmp_path / "NMNIST" / folder / "3" / "00001.bin").write_bytes(
            nmnist_bytes(events, overflow_after=None))
    cfg = RunConfig.from_dict({"dataset": {"name": "nmnist", "root": str(tmp_path)}})
    denoised = build_data(cfg).test.frames.to(int)
    raw = build_data(cfg.with_path("dataset.options", {"denoise_us": None})).test.frames.to(int)
    # tonic's last bin excludes the last event in both cases.
    assert int(raw.sum()) == 6
    assert int(denoised.sum()) == 2
    assert int(denoised[0, :, :, 30, 30].sum()) == 0 and int(raw[0, :, :, 30, 30].sum()) == 1


def write_dvsgesture(root: Path) -> None:
    rng = np.random.default_rng(0)
    for folder, users in (("ibmGestureTrain", ("user01_fluorescent", "user02_led")),
                          ("ibmGestureTest", ("user24_natural",))):
        for user in users:
            d = root / "DVSGesture" / folder / user
            d.mkdir(parents=True)
            for label in (0, 3, 10):
                n = 100 + label
                ev = np.stack([rng.integers(0, 128, n), rng.integers(0, 128, n),
                               rng.integers(0, 2, n), np.sort(rng.integers(0, 6000, n))], 1)
                np.save(d / f"{label}.npy", ev.astype(np.int64))  # x, y, p, t in ms


def test_dvsgesture_npy_downsampled_to_32(tmp_path: Path) -> None:
    write_dvsgesture(tmp_path)
    cfg = RunConfig.from_dict({"dataset": {"name": "dvsgesture", "root": str(tmp_path),
                                           "val_fraction": 0.5}})
    data = build_data(cfg)
    assert data.input_shape == (2, 32, 32) and data.time_steps == 25 and data.num_classes == 11
    assert (data.train.num_samples, data.val.num_samples, data.test.num_samples) == (3, 3, 3)
    assert data.test.frames.shape == (3, 25, 2, 32, 32)
    sums = dict(zip(data.test.labels.tolist(),
                    data.test.frames.to(int).sum(dim=(1, 2, 3, 4)).tolist()))
    # Everything but events in tonic's dropped remainder past the last whole bin.
    for label, total in sums.items():
        assert 100 + label - 3 <= total <= 100 + label
    x, y = next(iter(data.test))
    assert x.shape == (25, 3, 2, 32, 32) and x.dtype.is_floating_point and y.dtype.is_signed


def test_shd_h5(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "SHD").mkdir()
    for split, n in (("train", 6), ("test", 3)):
        with h5py.File(tmp_path / "SHD" / f"shd_{split}.h5", "w") as fh:
            times = fh.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float32))
            units = fh.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
            for i in range(n):
                k = 50 + i
                times[i] = np.sort(rng.uniform(0, 1.0, k)).astype(np.float32)
                units[i] = rng.integers(0, 700, k).astype(np.uint16)
            fh["labels"] = np.arange(n, dtype=np.uint16) % 20
            fh["extra/keys"] = np.array([b"k"] * 20)
            fh["extra/speaker"] = np.zeros(n, dtype=np.uint16)
    data = build_data(RunConfig.from_dict({"dataset": {"name": "shd", "root": str(tmp_path),
                                                       "val_fraction": 0.0}}))
    assert data.input_shape == (700,) and data.time_steps == 50 and data.num_classes == 20
    assert data.test.frames.shape == (3, 50, 700)
    assert data.test.num_samples == 3 and data.train.num_samples == 6
    totals = data.test.frames.to(int).sum(dim=(1, 2)).tolist()
    label_of = data.test.labels.tolist()
    for lab, total in zip(label_of, totals):
        assert 50 + lab - 2 <= total <= 50 + lab
    with pytest.raises(Exception, match="image frames"):
        build_data(RunConfig.from_dict({"dataset": {"name": "shd", "root": str(tmp_path)},
                                        "factors": {"augmentation": "flip-lr"}}))


def test_cifar10dvs_without_aedat_says_how_to_install(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_aedat(name: str, *args, **kwargs):
        if name == "aedat":
            raise ImportError("no aedat")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_aedat)
    with pytest.raises(DatasetMissingError, match=r"bsnn-bench\[cifar10dvs\]"):
        check_dataset(RunConfig.from_dict({"dataset": {"name": "cifar10dvs",
                                                       "root": str(tmp_path)}}))


@pytest.mark.parametrize("name,layout", [("nmnist", "NMNIST/Train"),
                                         ("dvsgesture", "ibmGestureTrain"),
                                         ("shd", "shd_train.h5")])
def test_missing_dataset_names_path_layout_and_download(tmp_path: Path, name: str,
                                                        layout: str) -> None:
    cfg = RunConfig.from_dict({"dataset": {"name": name, "root": str(tmp_path / "nothing")}})
    with pytest.raises(DatasetMissingError) as info:
        check_dataset(cfg)
    message = str(info.value)
    assert str(tmp_path / "nothing") in message and layout in message
    assert "dataset.download: true" in message
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetMissingError, match=layout):
        build_data(cfg.with_path("dataset.root", str(tmp_path / "empty")))


class _StandInDecoder:
    """Stands in for aedat.Decoder (not installed here): the test's .aedat4 files hold .npy
    bytes of the AEDAT4 event dtype, so tonic's CIFAR10DVS reader and our pipeline run unchanged
    around the binary decoding, which is the aedat package's job."""

    def __init__(self, path: str) -> None:
        with open(path, "rb") as fh:
            self.events = np.load(fh)

    def id_to_stream(self) -> dict:
        return {0: {"type": "events"}}

    def __iter__(self):
        return iter([{"stream_id": 0, "events": self.events}])


def test_cifar10dvs_per_class_split_and_48x48(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    # Installed or not, `import aedat` finds the stand-in first.
    monkeypatch.setitem(sys.modules, "aedat", types.SimpleNamespace(Decoder=_StandInDecoder))
    dtype = np.dtype([("t", np.int64), ("x", np.int16), ("y", np.int16), ("on", bool)])
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]
    rng = np.random.default_rng(0)
    for name in classes[:3]:
        d = tmp_path / "CIFAR10DVS" / name
        d.mkdir(parents=True)
        for k in range(10):
            n = 200
            ev = np.zeros(n, dtype=dtype)
            ev["t"] = np.sort(rng.integers(0, 1_000_000, n))
            ev["x"], ev["y"] = rng.integers(0, 128, n), rng.integers(0, 128, n)
            ev["on"] = rng.integers(0, 2, n).astype(bool)
            with open(d / f"cifar10_{name}_{k}.aedat4", "wb") as fh:
                np.save(fh, ev)
    data = build_data(RunConfig.from_dict({"dataset": {"name": "cifar10dvs",
                                                       "root": str(tmp_path),
                                                       "val_fraction": 0.0}}))
    assert data.input_shape == (2, 48, 48) and data.time_steps == 10
    # 10 % of each class held out for testing, the rest for training.
    assert sorted(data.test.labels.tolist()) == [0, 1, 2]
    assert sorted(data.train.labels.tolist()) == sorted([0, 1, 2] * 9)
    assert data.test.frames.shape == (3, 10, 2, 48, 48)
    totals = data.test.frames.to(int).sum(dim=(1, 2, 3, 4)).tolist()
    assert all(195 <= t <= 200 for t in totals)
    again = build_data(RunConfig.from_dict({"dataset": {"name": "cifar10dvs",
                                                        "root": str(tmp_path),
                                                        "val_fraction": 0.0}}))
    assert torch_equal(again.test.frames, data.test.frames)


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))
