"""dataset.options of real datasets: bilinear resize + normalization, the file-order split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.config import RunConfig
from harness.data.catalogue import CATALOGUE
from harness.data.frames import Preprocess
from harness.data.options import parse_real_options
from harness.data.pipeline import build_data
from harness.data.splits import file_order_split, natural_key
from harness.errors import ConfigError
from tests.test_data_real import nmnist_bytes, write_nmnist

MEAN, STD = (0.2728, 0.1295), (0.2225, 0.1290)


def test_bilinear_resize_and_normalization_of_frames() -> None:
    rng = np.random.default_rng(0)
    n = 500
    ev = np.zeros(n, dtype=[("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])
    ev["x"], ev["y"] = rng.integers(0, 128, n), rng.integers(0, 128, n)
    ev["t"], ev["p"] = np.sort(rng.integers(0, 10_000, n)), rng.integers(0, 2, n)
    prep = Preprocess(sensor_size=(128, 128, 2), target_size=(48, 48), resize="bilinear",
                      normalize=(MEAN, STD))
    assert prep.event_sensor_size == (128, 128, 2) and prep(ev) is ev  # events untouched
    got = prep.frames([ev], 10)
    assert got.shape == (1, 10, 2, 48, 48) and got.dtype == np.float32
    # By hand: counts at 128x128 (tonic's bins), bilinear with corners aligned, then per
    # polarity (x - mean) / std.
    width = (ev["t"].max() - ev["t"].min()) // 10
    k = (ev["t"] - ev["t"].min()) // width
    counts = np.zeros((10, 2, 128, 128), np.float32)
    keep = k < 10
    np.add.at(counts, (k[keep], ev["p"][keep], ev["y"][keep], ev["x"][keep]), 1)
    want = F.interpolate(torch.from_numpy(counts), size=(48, 48), mode="bilinear",
                         align_corners=True)
    want = (want - torch.tensor(MEAN).view(1, 2, 1, 1)) / torch.tensor(STD).view(1, 2, 1, 1)
    np.testing.assert_allclose(got[0], want.numpy(), rtol=1e-5, atol=1e-5)
    # align_corners=True: the four corner pixels of the output are the input's corners.
    raw = Preprocess(sensor_size=(128, 128, 2), target_size=(48, 48), resize="bilinear")
    plain = raw.frames([ev], 10)[0]
    np.testing.assert_allclose(plain[..., 0, 0], counts[..., 0, 0])
    np.testing.assert_allclose(plain[..., -1, -1], counts[..., -1, -1])
    # The sum resize (default) stays integer counts, every event kept.
    summed = Preprocess(sensor_size=(128, 128, 2), target_size=(48, 48))
    frames = summed.frames([summed(ev)], 10)
    assert frames.dtype == np.uint8 and int(frames.sum()) == int(keep.sum())


def test_bilinear_through_build_data(tmp_path: Path) -> None:
    write_nmnist(tmp_path)
    cfg = RunConfig.from_dict({"dataset": {
        "name": "nmnist", "root": str(tmp_path), "downsample": 2, "val_fraction": 0.25,
        "options": {"denoise_us": None, "resize": "bilinear", "normalize": [[1, 2], [2, 4]]}}})
    data = build_data(cfg)
    assert data.input_shape == (2, 17, 17)
    assert data.test.frames.dtype == torch.float32
    # Empty pixels are (0 - mean) / std = -0.5 in both polarities.
    assert float(data.test.frames.min()) == pytest.approx(-0.5)
    x, _ = next(iter(data.test))
    assert x.shape == (18, 4, 2, 17, 17) and x.dtype == torch.float32
    with pytest.raises(ConfigError, match="acts on events"):
        build_data(cfg.with_path("factors.augmentation", "drop-event"))


@pytest.mark.parametrize("options,message", [
    ({"resize": "nearest"}, "'sum' or 'bilinear'"),
    ({"normalize": [[0.1, 0.2], [0.3, 0.4]]}, "needs 'dataset.options.resize: bilinear'"),
    ({"resize": "bilinear", "normalize": [[0.1], [0.3]]}, "one per polarity"),
    ({"resize": "bilinear", "normalize": [[0.1, 0.2], [0.3, 0.0]]}, "std > 0"),
    ({"split": "file-order"}, "unknown key 'dataset.options.split'"),  # N-MNIST has its own
    ({"denoise": 5}, "unknown key 'dataset.options.denoise'"),
])
def test_bad_options_are_config_errors(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_real_options(CATALOGUE["nmnist"], options)


def test_split_option_only_where_the_test_split_is_a_share() -> None:
    assert parse_real_options(CATALOGUE["cifar10dvs"], {"split": "file-order"}).split == \
        "file-order"
    with pytest.raises(ConfigError, match="'seeded' or 'file-order'"):
        parse_real_options(CATALOGUE["cifar10dvs"], {"split": "random"})
    with pytest.raises(ConfigError, match="unknown key 'dataset.options.resize'"):
        parse_real_options(CATALOGUE["shd"], {"resize": "bilinear"})


def test_file_order_split_takes_the_first_90_percent_of_each_class() -> None:
    # Class 0: files 0..19, listed in a scrambled order; class 1: files 0..9.
    names = [f"/d/airplane/cifar10_airplane_{i}.aedat4" for i in (3, 10, 0, 19, 2, 11, 1, 12,
                                                                   4, 13, 5, 14, 6, 15, 7, 16,
                                                                   8, 17, 9, 18)]
    names += [f"/d/cat/cifar10_cat_{i}.aedat4" for i in range(9, -1, -1)]
    labels = np.array([0] * 20 + [3] * 10)
    rest, held = file_order_split(labels, names, 0.1)
    assert [names[i].rsplit("_", 1)[1] for i in held] == ["18.aedat4", "19.aedat4",
                                                          "9.aedat4"]
    assert sorted(rest.tolist() + held.tolist()) == list(range(30))
    kept0 = [int(names[i].rsplit("_", 1)[1].split(".")[0]) for i in rest if labels[i] == 0]
    assert kept0 == list(range(18))  # natural order: 2 before 10
    assert natural_key("a_2") < natural_key("a_10")


def test_file_order_split_through_build_data(tmp_path: Path) -> None:
    pytest.importorskip("aedat", reason="CIFAR10-DVS's reader 'aedat' is not installed")
    pytest.importorskip("dv_processing", reason="the AEDAT4 writer dv-processing is not "
                                                "installed")
    from tests.test_data_real import CIFAR_CLASSES, cifar_events, write_aedat4

    for name, count in (("airplane", 10), ("cat", 20)):
        d = tmp_path / "CIFAR10DVS" / name
        d.mkdir(parents=True)
        for k in range(count):
            write_aedat4(d / f"cifar10_{name}_{k}.aedat4",
                         cifar_events(CIFAR_CLASSES.index(name), k), "LZ4")
    cfg = RunConfig.from_dict({"dataset": {"name": "cifar10dvs", "root": str(tmp_path),
                                           "val_fraction": 0.0,
                                           "options": {"split": "file-order"}}})
    data = build_data(cfg)
    # Test: airplane 9, cat 18 and 19, identified by their distinct event counts
    # (40 + k + 10 * label events, the last one past tonic's last bin).
    totals = sorted(data.test.frames.to(int).sum(dim=(1, 2, 3, 4)).tolist())
    assert totals == sorted([40 + 9 - 1, 40 + 18 + 30 - 1, 40 + 19 + 30 - 1])
    assert data.train.num_samples == 27


def test_label_lists_ignore_comment_lines(tmp_path: Path) -> None:
    write_nmnist(tmp_path)
    (tmp_path / "train_list.txt").write_text("#sample #class\n1\t1\n")
    cfg = RunConfig.from_dict({"dataset": {"name": "nmnist", "root": str(tmp_path)}})
    build_data(cfg)  # file 00001 lies in folder 1: agrees
    (tmp_path / "train_list.txt").write_text("#sample #class\n1\t0\n")
    from harness.errors import RecordingError

    with pytest.raises(RecordingError, match="sample 1 has label 0"):
        build_data(cfg)
    assert nmnist_bytes([(0, 0, 0, 0)], None) == bytes(5)


def test_other_text_files_are_not_label_lists(tmp_path: Path) -> None:
    write_nmnist(tmp_path)
    (tmp_path / "train_notes.txt").write_text("trained on 2 cores\n1 0\n")
    build_data(RunConfig.from_dict({"dataset": {"name": "nmnist", "root": str(tmp_path)}}))


def test_bilinear_dvsgesture_with_frame_crop_like_he2025(tmp_path: Path) -> None:
    from tests.test_data_real import write_dvsgesture

    write_dvsgesture(tmp_path)
    cfg = RunConfig.from_dict({
        "dataset": {"name": "dvsgesture", "root": str(tmp_path), "val_fraction": 0.5,
                    "options": {"resize": "bilinear"}},
        "factors": {"augmentation": {"name": "random-crop", "pad": 2}}})
    data = build_data(cfg)
    assert data.input_shape == (2, 32, 32) and data.train.frames.dtype == torch.float32
    # Bilinear resize keeps the mass only approximately; it is not integer counts any more.
    frames = data.test.frames
    assert bool((frames >= 0).all()) and bool((frames != frames.round()).any())
    x, y = next(iter(data.train))
    assert x.shape == (25, 3, 2, 32, 32) and x.dtype == torch.float32
