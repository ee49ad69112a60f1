"""The shipped synthetic-gestures study runs end to end (shrunk: fewer samples, one epoch)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import yaml

from harness.study.coordinator import run_study_command
from harness.study.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_synthetic_gestures_quick_study_runs(tmp_path: Path) -> None:
    spec = yaml.safe_load((ROOT / "studies" / "synthetic_gestures_quick.yaml").read_text())
    spec["dataset"]["limit"] = 24
    spec["train"]["epochs"] = 1
    path = tmp_path / "quick.yaml"
    path.write_text(yaml.safe_dump(spec))
    db = tmp_path / "results.sqlite"
    code = run_study_command(str(path), db=f"sqlite:///{db}", workers=1, progress=False)
    assert code == 0
    with sqlite3.connect(db) as con:
        rows = con.execute("select status, count(*) from bench_runs group by status").fetchall()
        accs = con.execute("select value from bench_run_metrics where name = 'test_acc'").fetchall()
    assert rows == [("complete", 4)]
    assert len(accs) == 4 and all(0.0 <= a <= 1.0 for (a,) in accs)


#: He et al.'s FC input sizes with unpadded 3x3 convs: 48 -> 46 -> 23 -> 21 -> 10 (the code's
#: 10*10*128); 34 -> 32 -> 16 -> 14 -> 7 (its N-MNIST linearing_size 6272);
#: 32 -> 30 -> 15 -> 13 -> 6 (DVS Gesture).
HE_FC_INPUT = {"nmnist": 7 * 7 * 128, "dvsgesture": 6 * 6 * 128, "cifar10dvs": 10 * 10 * 128}


def test_he2025_studies_follow_the_authors_code() -> None:
    from harness.data.catalogue import CATALOGUE
    from harness.run.build import build_model
    from models.layers import SynapticLinear
    from models.neurons import LIF
    from models.norm import TemporalBatchNorm
    from tricks.optimizer import SWATS

    for name in ("nmnist", "dvsgesture", "cifar10dvs"):
        spec = load_spec(ROOT / "studies" / f"he2025_{name}.yaml")
        assert spec.run_count() == 4 * 4 * 2 * 2 * 3
        rec = CATALOGUE[name]
        orders = set()
        for i, combo in enumerate(spec.combinations()):
            cfg = spec.config_for(combo, 0)
            assert cfg.dataset.name == name
            assert isinstance(cfg.level("optimizer"), SWATS)
            surrogate = cfg.level("surrogate")
            assert surrogate.name == "rectangle" and surrogate.width == 0.8
            assert cfg.level("loss").name == "mse-rate"
            schedule = cfg.level("lr_schedule")
            assert (schedule.name, schedule.step_size, schedule.gamma) == ("step", 0.5, 0.1)
            neuron = cfg.model.neuron
            assert (neuron.beta, neuron.threshold, neuron.reset) == (0.5, 1.0, "zero")
            orders.add(cfg.model.block_order)
            if i % 16:  # building every model is slow; one of each 16 covers all orders
                continue
            model = build_model(cfg, input_shape=rec.input_shape, num_classes=rec.num_classes,
                                time_steps=rec.time_steps)
            fcs = [m for m in model.layers if isinstance(m, SynapticLinear)]
            assert fcs[0].in_features == HE_FC_INPUT[name]
            assert fcs[-1].out_features == rec.num_classes
            if cfg.level("binarization").name != "fp32":
                assert all(layer.binary for _, layer in model.synaptic_layers())
            if cfg.level("normalization").name != "none":
                assert isinstance(model.layers[-2], TemporalBatchNorm)
            assert isinstance(model.layers[-1], LIF)
        assert orders == {"conv-norm-neuron-pool-norm-neuron", "conv-norm-neuron-pool",
                          "conv-pool-norm-neuron"}
    cifar = load_spec(ROOT / "studies" / "he2025_cifar10dvs.yaml").base["dataset"]["options"]
    assert cifar == {"resize": "bilinear", "normalize": [[0.2728, 0.1295], [0.2225, 0.1290]],
                     "split": "file-order"}


def test_nmnist_small_study_plan() -> None:
    spec = load_spec(ROOT / "studies" / "nmnist_small.yaml")
    assert spec.design == "one-at-a-time" and spec.run_count() == 8 * 6
    cfg = spec.config_for(next(iter(spec.combinations())), 0)
    assert cfg.dataset.name == "nmnist" and cfg.dataset.root is None  # $BSNN_DATA_DIR
    assert cfg.level("binarization").name == "ste"
