"""train_run with the real network from harness.run.build on tiny hand-made event frames."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from _train_tiny import Recorder, TinyData, _TimeMajor
from torch.utils.data import DataLoader, TensorDataset

from harness.config import RunConfig
from harness.run.build import binary_parameters
from harness.run.train import binary_parameter_names, train_run


def _frames() -> TinyData:
    g = torch.Generator().manual_seed(0)
    n, t = 96, 4
    y = torch.arange(n) % 3
    x = (torch.rand(n, t, 2, 8, 8, generator=g) < 0.1 + 0.2 * y.view(-1, 1, 1, 1, 1)).float()
    parts = [slice(0, 48), slice(48, 72), slice(72, 96)]
    loaders = [_TimeMajor(DataLoader(TensorDataset(x[s], y[s]), batch_size=16)) for s in parts]
    return TinyData(*loaders, input_shape=(2, 8, 8), num_classes=3, time_steps=t)


def _cfg(**factors: Any) -> RunConfig:
    return RunConfig.from_dict({
        "model": {"channels": [4, 8], "hidden": 16},
        "train": {"epochs": 2, "num_threads": 1, "lr": 0.005},
        "factors": {"binarization": "ste", **factors}})


@pytest.mark.parametrize("loss", ["mse-rate", "ce-membrane"])
def test_binary_conv_net_reports_every_metric(loss: str) -> None:
    result = train_run(_cfg(loss=loss, optimizer={"name": "hybrid", "switch_at": 1}),
                       data=_frames())
    assert result.status == "complete", result.error
    m = result.metrics
    for key in ("test_acc", "test_acc_shift_bn", "val_acc_best", "val_acc_last", "train_loss",
                "train_acc", "epochs_to_95pct", "spike_rate", "synops_per_sample",
                "energy_uj_per_sample", "weight_memory_bits", "weight_memory_ratio",
                "sign_flip_rate", "switch_epoch", "switch_lr", "train_time_s", "params"):
        assert key in m, key
    assert m["switch_epoch"] == 1 and m["weight_memory_ratio"] < 0.5
    assert sum(k.startswith("spike_rate/") for k in m) >= 2


def test_bop_owns_exactly_the_binarized_weights_of_the_real_network() -> None:
    rec = Recorder()
    captured: dict[str, Any] = {}
    result = train_run(_cfg(optimizer={"name": "bop", "threshold": 1e-7, "gamma": 0.01}),
                       data=_frames(), callbacks=[rec],
                       on_module=lambda module: captured.setdefault("model", module.model))
    assert result.status == "complete", result.error
    model = captured["model"]
    binary = list(binary_parameters(model))
    assert binary and binary_parameter_names(model) == {
        n for n, p in model.named_parameters() if any(p is b for b in binary)}
    for p in binary:
        assert set(p.detach().abs().unique().tolist()) == {1.0}
    assert {k for _, k in rec.steps} == {"adam+bop"}
    assert result.metrics["sign_flip_rate"] > 0


def test_full_precision_network_has_no_binary_weights() -> None:
    result = train_run(_cfg(binarization="fp32"), data=_frames())
    assert result.status == "complete"
    assert result.curves["sign_flip_rate"][0] != result.curves["sign_flip_rate"][0]  # NaN
    with pytest.raises(Exception, match="needs binary weights"):
        train_run(_cfg(binarization="fp32", optimizer="bop"), data=_frames())


def test_same_config_and_seed_give_identical_metrics_with_the_real_network() -> None:
    cfg = _cfg(optimizer={"name": "hybrid", "switch_at": 1})
    a, b = train_run(cfg, data=_frames()), train_run(cfg, data=_frames())
    assert {k: v for k, v in a.metrics.items() if k != "train_time_s"} == {
        k: v for k, v in b.metrics.items() if k != "train_time_s"}
    assert a.curves == b.curves
