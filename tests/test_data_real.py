"""Real datasets read from tiny files written here in each dataset's on-disk format."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from harness.config import RunConfig
from harness.data.pipeline import build_data, check_dataset
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


CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck")
#: The tree written below: class -> (files, AEDAT4 compression). 20 "cat" files: 2 held out.
CIFAR_TREE = {"airplane": (10, "LZ4"), "cat": (20, "ZSTD"), "truck": (10, "NONE")}
_BIN_US = 100_000  # 10 bins of 100 ms: recordings of about 1 s, like CIFAR10-DVS's


def cifar_events(label: int, k: int) -> np.ndarray:
    """Known events of file ``k`` of class ``label``, in AEDAT4's order (t, x, y, on).

    Each file has its own count (it identifies the file in the frames), timestamps on a camera's
    clock (us since the epoch), equal timestamps, both polarities and the sensor's corners. The
    span is exactly 10 bins, so tonic's ToFrame drops only the last event (at the span's end).
    """
    rng = np.random.default_rng(1000 * label + k)
    n = 40 + k + 10 * label  # distinct for the tree below
    t0 = 1_600_000_000_000_000 + int(rng.integers(0, 10**9))
    ev = np.zeros(n, dtype=[("t", np.int64), ("x", np.int16), ("y", np.int16), ("on", bool)])
    ev["t"] = t0 + np.sort(rng.integers(0, 10 * _BIN_US, n))
    ev["t"][0], ev["t"][1], ev["t"][-1] = t0, t0, t0 + 10 * _BIN_US
    ev["x"], ev["y"] = rng.integers(0, 128, n), rng.integers(0, 128, n)
    ev["x"][:4], ev["y"][:4] = (0, 127, 0, 127), (0, 0, 127, 127)
    ev["on"] = rng.integers(0, 2, n).astype(bool)
    return ev


def write_aedat4(path: Path, ev: np.ndarray, compression: str) -> None:
    """An event-only AEDAT4 recording of a 128x128 DVS through iniVation's own writer
    (dv-processing), in three packets as a camera writes a stream."""
    import dv_processing as dv

    config = dv.io.MonoCameraWriter.EventOnlyConfig(
        "DVS128_test", (128, 128), getattr(dv.CompressionType, compression))
    writer = dv.io.MonoCameraWriter(str(path), config)
    for chunk in np.array_split(ev, 3):
        store = dv.EventStore()
        for t, x, y, on in chunk.tolist():
            store.push_back(t, x, y, on)
        writer.writeEvents(store)
    del writer  # the writer finishes the file (its table of packets) when destroyed


def expected_frames(ev: np.ndarray) -> np.ndarray:
    """The frames [10, 2, 48, 48] the pipeline must make of ``ev``: coordinates scaled by 48/128
    and floored (tonic's Downsample), 10 bins of (t_last - t_first) // 10 from the first event
    (tonic's ToFrame; events past the 10th bin dropped), channel = polarity."""
    t = ev["t"] - ev["t"][0]
    k = t // ((ev["t"][-1] - ev["t"][0]) // 10)
    keep = k < 10
    out = np.zeros((10, 2, 48, 48), dtype=np.int64)
    np.add.at(out, (k[keep], ev["on"][keep].astype(int), ev["y"][keep].astype(int) * 3 // 8,
                    ev["x"][keep].astype(int) * 3 // 8), 1)
    return out


def test_cifar10dvs_real_aedat4_files(tmp_path: Path) -> None:
    aedat = pytest.importorskip(
        "aedat", reason="CIFAR10-DVS's reader 'aedat' is not installed (pip install -e '.[test]')")
    pytest.importorskip(
        "dv_processing", reason="the AEDAT4 writer 'dv-processing' (iniVation) is not installed "
                                "(pip install -e '.[test]')")
    from harness.data import real

    written: dict[str, tuple[int, np.ndarray]] = {}
    for name, (count, compression) in CIFAR_TREE.items():
        label = CIFAR_CLASSES.index(name)
        d = tmp_path / "CIFAR10DVS" / name
        d.mkdir(parents=True)
        for k in range(count):
            path = d / f"cifar10_{name}_{k}.aedat4"
            ev = cifar_events(label, k)
            write_aedat4(path, ev, compression)
            written[str(path)] = (label, ev)
    assert len({len(ev) for _, ev in written.values()}) == len(written)

    # The file as the aedat package decodes it: one 128x128 event stream, several packets.
    for path, (_, ev) in written.items():
        decoder = aedat.Decoder(path)
        assert decoder.id_to_stream() == {0: {"type": "events", "width": 128, "height": 128}}
        packets = [packet["events"] for packet in decoder if packet["stream_id"] == 0]
        assert len(packets) == 3
        decoded = np.concatenate(packets)
        for field in ("t", "x", "y", "on"):
            np.testing.assert_array_equal(decoded[field], ev[field])

    # The project's reader (tonic's CIFAR10DVS over aedat): every event back, labels by folder.
    pool = real.open_pool("cifar10dvs", "all", str(tmp_path))
    order = sorted(written)  # the pool's order: sorted by path
    assert pool.size == len(written) == 40
    assert pool.labels.tolist() == [written[p][0] for p in order]
    for i in range(pool.size):
        got, ev = pool.read(i), written[order[i]][1]
        assert len(got) == len(ev)
        for ours, theirs in (("t", "t"), ("x", "x"), ("y", "y"), ("p", "on")):
            np.testing.assert_array_equal(got[ours], ev[theirs].astype(np.int64))

    # Frames, labels and the seeded 90/10 per-class split through build_data.
    def build(seed: int):
        return build_data(RunConfig.from_dict({"dataset": {"name": "cifar10dvs",
                                                           "root": str(tmp_path),
                                                           "val_fraction": 0.0},
                                               "train": {"seed": seed}}))

    data = build(0)
    assert data.input_shape == (2, 48, 48) and data.time_steps == 10 and data.num_classes == 10
    assert data.test.frames.shape == (4, 10, 2, 48, 48)
    assert data.train.frames.shape == (36, 10, 2, 48, 48) and data.val.num_samples == 0
    by_frames = {expected_frames(ev).astype(np.uint8).tobytes(): (path, label)
                 for path, (label, ev) in written.items()}
    assert len(by_frames) == len(written)

    def files(split) -> list[str]:
        out = []
        for frames, label in zip(split.frames.numpy(), split.labels.tolist()):
            path, true_label = by_frames[frames.tobytes()]  # exact frames of one written file
            assert label == true_label
            out.append(path)
        return out

    test_files, train_files = files(data.test), files(data.train)
    assert sorted(test_files + train_files) == order  # disjoint, and nothing lost
    assert sorted(data.test.labels.tolist()) == [0, 3, 3, 9]  # 10 % of each class
    assert sorted(data.train.labels.tolist()) == [0] * 9 + [3] * 18 + [9] * 9
    # The last event of each file lies past tonic's last bin.
    totals = data.test.frames.to(int).sum(dim=(1, 2, 3, 4)).tolist()
    assert totals == [len(written[p][1]) - 1 for p in test_files]
    x, y = next(iter(data.test))
    assert x.shape == (10, 4, 2, 48, 48) and x.dtype.is_floating_point
    # The split is fixed (SPLIT_SEED), not drawn from the run's seed.
    assert files(build(7).test) == test_files
