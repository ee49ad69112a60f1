"""The readers, the frame pipeline and a short training run on real recordings.

The recordings live beside the project, in ``../shared/data`` (see its README: 1,100 real
N-MNIST recordings and one real DVXplorer AEDAT4 file); they are never copied into the
repository. Where that folder is absent (a user's clone) these tests skip, saying why.
Malformed variants are written to ``tmp_path`` from the real bytes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.config import RunConfig
from harness.data import real
from harness.data.pipeline import build_data, check_dataset
from harness.errors import RecordingError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NMNIST_ROOT = SHARED / "nmnist-small"
AEDAT4 = SHARED / "real-aedat4" / "dvxplorer_person.aedat4"
TRAIN_COUNTS = [97, 116, 99, 93, 105, 92, 94, 117, 87, 100]

needs_nmnist = pytest.mark.skipif(
    not (NMNIST_ROOT / "NMNIST" / "Train").is_dir(),
    reason=f"the real N-MNIST recordings are not at {NMNIST_ROOT} (they sit beside the project "
           f"in ../shared/data on developer machines and in CI, not in a clone)")
needs_aedat4 = pytest.mark.skipif(
    not AEDAT4.is_file(), reason=f"the real AEDAT4 recording is not at {AEDAT4} "
                                 f"(../shared/data is not part of a clone)")


def decode_bin(path: Path) -> np.ndarray:
    """Our own reading of N-MNIST's format: 5 bytes per event, x | y | p<<7 + t[22:16] | t[15:8]
    | t[7:0] (us), and y == 240 marks a timestamp overflow: +2**13 us for everything after."""
    raw = np.frombuffer(path.read_bytes(), dtype=np.uint8).reshape(-1, 5).astype(np.int64)
    t = ((raw[:, 2] & 0x7F) << 16) | (raw[:, 3] << 8) | raw[:, 4]
    overflow = raw[:, 1] == 240
    t = t + (np.cumsum(overflow) << 13)
    keep = ~overflow
    return np.rec.fromarrays([raw[keep, 0], raw[keep, 1], t[keep], raw[keep, 2] >> 7],
                             names="x,y,t,p")


def nmnist_cfg(root: Path, **dataset) -> RunConfig:
    return RunConfig.from_dict({"dataset": {"name": "nmnist", "root": str(root), **dataset}})


@needs_nmnist
@pytest.mark.parametrize("split,n", [("train", 1000), ("test", 100)])
def test_reader_matches_our_decoding_of_every_real_file(split: str, n: int) -> None:
    pool = real.open_pool("nmnist", split, str(NMNIST_ROOT))
    files = sorted((NMNIST_ROOT / "NMNIST" / split.capitalize()).glob("*/*.bin"))
    assert pool.size == len(files) == n
    assert pool.labels.tolist() == [int(f.parent.name) for f in files]
    for i, path in enumerate(files):
        ours, got = decode_bin(path), pool.read(i)
        assert len(got) == len(ours) > 1000, path
        for field in "xytp":
            np.testing.assert_array_equal(got[field], ours[field], err_msg=f"{path} {field}")
    if split == "train":
        assert np.bincount(pool.labels, minlength=10).tolist() == TRAIN_COUNTS
    else:
        assert pool.labels.tolist().count(1) == 14  # a cross-check with test100.txt
        listed = [int(line.split()[1]) for line in
                  (NMNIST_ROOT / "test100.txt").read_text().splitlines()[1:]]
        assert listed.count(1) == 14


@needs_nmnist
def test_frame_pipeline_on_real_saccades() -> None:
    data = build_data(nmnist_cfg(NMNIST_ROOT, time_steps=3, limit=20,
                                 options={"denoise_us": None}))
    assert data.input_shape == (2, 34, 34) and data.test.frames.shape == (20, 3, 2, 34, 34)
    files = sorted((NMNIST_ROOT / "NMNIST" / "Test").glob("*/*.bin"))
    by_count = {}
    for path in files:
        ev = decode_bin(path)
        width = (ev.t.max() - ev.t.min()) // 3
        k = (ev.t - ev.t.min()) // width
        frames = np.zeros((3, 2, 34, 34), np.int64)
        np.add.at(frames, (k[k < 3], ev.p[k < 3], ev.y[k < 3], ev.x[k < 3]), 1)
        by_count[np.clip(frames, 0, 255).astype(np.uint8).tobytes()] = (path, frames)
    for frames, label in zip(data.test.frames.numpy(), data.test.labels.tolist()):
        path, expected = by_count[frames.tobytes()]  # exactly the frames of one real file
        assert int(path.parent.name) == label
        # Three saccades of ~100 ms: each third of the recording holds a good share of the
        # events (the sensor moves all the time), and both polarities fire.
        per_bin = expected.sum(axis=(1, 2, 3))
        assert per_bin.min() > 0.15 * per_bin.sum(), (path, per_bin)
        assert expected[:, 0].sum() > 0.2 * expected.sum() < expected[:, 1].sum() * 5
    # The default pipeline (Denoise 10 ms) drops events, never adds any.
    den = build_data(nmnist_cfg(NMNIST_ROOT, time_steps=3, limit=20))
    raw_sum = data.test.frames.to(int).sum(dim=(1, 2, 3, 4))
    den_sum = den.test.frames.to(int).sum(dim=(1, 2, 3, 4))
    assert bool((den_sum < raw_sum).all()) and bool((den_sum > 0.5 * raw_sum).all())


@needs_nmnist
def test_short_training_on_real_recordings_learns() -> None:
    from harness.run.train import train_run

    cfg = RunConfig.from_dict({
        "dataset": {"name": "nmnist", "root": str(NMNIST_ROOT), "time_steps": 6,
                    "downsample": 2, "limit": 300, "val_fraction": 0.05,
                    "options": {"denoise_us": None}},
        "model": {"channels": [8, 16], "hidden": 64},
        "train": {"epochs": 4, "lr": 0.005, "batch_size": 32, "num_threads": 1}})
    result = train_run(cfg)
    assert result.status == "complete"
    # 300 training recordings at 17x17, T=6: about 4 s. 100 real test recordings, 10 classes:
    # chance is 0.10 (±0.03); this run reached 0.77 (binomial noise ±0.04), so 0.5 is far above
    # chance and well below what it reaches.
    assert result.metrics["test_acc"] >= 0.5, result.metrics


# -- malformed real files ----------------------------------------------------------------

def _tree(tmp_path: Path, files_per_class: int = 2) -> Path:
    """A small N-MNIST tree of real files (copies, in tmp_path)."""
    for split in ("Train", "Test"):
        for digit in (0, 1):
            src = sorted((NMNIST_ROOT / "NMNIST" / split / str(digit)).glob("*.bin"))
            dst = tmp_path / "NMNIST" / split / str(digit)
            dst.mkdir(parents=True)
            for f in src[:files_per_class]:
                shutil.copy(f, dst / f.name)
    return tmp_path


def _one_line_error(args: list[str], capsys: pytest.CaptureFixture) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("bsnn-bench: error: "), err
    assert "Traceback" not in err
    return err


@needs_aedat4
def test_oversized_recording_under_cifar10dvs_is_one_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("aedat", reason="CIFAR10-DVS's reader 'aedat' is not installed")
    folder = tmp_path / "CIFAR10DVS" / "airplane"
    folder.mkdir(parents=True)
    placed = folder / "dvxplorer_person.aedat4"
    placed.symlink_to(AEDAT4)
    cfg = RunConfig.from_dict({"dataset": {"name": "cifar10dvs", "root": str(tmp_path)}})
    check_dataset(cfg)  # the layout is right: the presence check passes
    with pytest.raises(RecordingError) as info:
        build_data(cfg)
    message = str(info.value)
    assert str(placed) in message and "expected 128x128" in message
    # The DVXplorer is 320x240: the largest coordinates are beyond 128 on both axes.
    max_x = int(message.split("max x ")[1].split(",")[0])
    max_y = int(message.split("max y ")[1].split(" ")[0])
    assert 128 <= max_x < 320 and 128 <= max_y < 240
    err = _one_line_error(["train", "--set", "dataset.name=cifar10dvs", "--set",
                           f"dataset.root={tmp_path}", "--set", "train.epochs=1"], capsys)
    assert str(placed) in err and "expected 128x128" in err


@needs_nmnist
@pytest.mark.parametrize("damage,expect", [
    ("truncated", "not a whole number of 5-byte"),
    ("zero-byte", "zero-byte file"),
    ("empty", "has no events"),
    ("outside", "max x 40"),
])
def test_malformed_bin_files_are_one_clear_error_naming_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture, damage: str, expect: str) -> None:
    root = _tree(tmp_path)
    victim = sorted((root / "NMNIST" / "Test" / "1").glob("*.bin"))[0]
    data = victim.read_bytes()
    if damage == "truncated":
        victim.write_bytes(data[:-2])
    elif damage == "zero-byte":
        victim.write_bytes(b"")
    elif damage == "empty":
        victim.write_bytes(bytes([0, 240, 0, 0, 0]) * 3)  # overflow markers only
    else:
        victim.write_bytes(data + bytes([40, 3, 0x80, 0, 1]))  # x = 40 on a 34-wide sensor
    with pytest.raises(RecordingError, match=expect) as info:
        build_data(nmnist_cfg(root))
    assert str(victim) in str(info.value)
    err = _one_line_error(["train", "--set", "dataset.name=nmnist", "--set",
                           f"dataset.root={root}", "--set", "train.epochs=1"], capsys)
    assert str(victim) in err and expect in err


@needs_nmnist
def test_decreasing_timestamps_are_sorted_with_a_warning(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    victim = sorted((root / "NMNIST" / "Test" / "0").glob("*.bin"))[0]
    raw = np.frombuffer(victim.read_bytes(), dtype=np.uint8).reshape(-1, 5)
    assert not (raw[:, 1] == 240).any()  # no overflow markers: rows can be swapped freely
    swapped = raw.copy()
    swapped[[0, -1]] = swapped[[-1, 0]]  # the last event first: time goes backwards
    victim.write_bytes(swapped.tobytes())
    pool = real.open_pool("nmnist", "test", str(root))
    with pytest.warns(UserWarning, match=f"{victim}: timestamps decrease"):
        got = pool.read(0)
    ours = decode_bin(victim)
    assert np.all(np.diff(got["t"]) >= 0)
    order = np.argsort(ours.t, kind="stable")
    for field in "xytp":
        np.testing.assert_array_equal(got[field], ours[field][order])


@needs_nmnist
@pytest.mark.parametrize("folder", ["13", "seven"])
def test_unexpected_class_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture,
                                            folder: str) -> None:
    root = _tree(tmp_path)
    odd = root / "NMNIST" / "Train" / folder
    odd.mkdir()
    shutil.copy(next((root / "NMNIST" / "Train" / "0").glob("*.bin")), odd / "00099.bin")
    with pytest.raises(RecordingError, match=f"unexpected class folder '{folder}'"):
        check_dataset(nmnist_cfg(root))
    err = _one_line_error(["train", "--set", "dataset.name=nmnist", "--set",
                           f"dataset.root={root}"], capsys)
    assert str(odd) in err


@needs_nmnist
def test_label_list_disagreeing_with_the_folders_is_refused(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    shutil.copy(NMNIST_ROOT / "train1K.txt", root / "train1K.txt")
    shutil.copy(NMNIST_ROOT / "test100.txt", root / "test100.txt")
    check_dataset(nmnist_cfg(root))  # the real lists agree with the real folders
    first = sorted((root / "NMNIST" / "Test" / "1").glob("*.bin"))[0]
    sample = 60000 + int(first.stem)
    lines = (root / "test100.txt").read_text().splitlines()
    lines = [f"{sample}\t7" if line.split()[0] == str(sample) else line for line in lines]
    (root / "test100.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordingError, match=f"sample {sample} has label 7") as info:
        check_dataset(nmnist_cfg(root))
    assert "test100.txt" in str(info.value) and str(first) in str(info.value)


@needs_nmnist
def test_real_lists_agree_with_the_shared_tree() -> None:
    check_dataset(nmnist_cfg(NMNIST_ROOT))


@needs_nmnist
def test_nmnist_small_study_split_is_the_documented_one() -> None:
    """studies/nmnist_small.yaml: 849 train / 151 val (per class round(15 %)) / 100 test."""
    from harness.data.pipeline import DATASETS, _Source

    plan = _Source(nmnist_cfg(NMNIST_ROOT, val_fraction=0.15), DATASETS["nmnist"]).plan()
    sizes = {split: len(idx) for split, (_, idx) in plan.items()}
    assert sizes == {"train": 849, "val": 151, "test": 100}
    labels = real.open_pool("nmnist", "train", str(NMNIST_ROOT)).labels
    val = np.bincount(labels[plan["val"][1]], minlength=10).tolist()
    assert val == [15, 17, 15, 14, 16, 14, 14, 18, 13, 15]
    assert not set(plan["val"][1].tolist()) & set(plan["train"][1].tolist())
