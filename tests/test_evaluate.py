"""The final test pass: one loop over the test set gives what separate evaluations give."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from harness.config import RunConfig
from harness.data.pipeline import build_data
from harness.run.build import build_model, has_batch_norm, to_shift_bn
from harness.run.costs import SynOpsCounter
from harness.run.evaluate import evaluate_test


@torch.no_grad()
def evaluate(model: Any, loader: Any, loss_level: Any, *, rates: bool = True
             ) -> dict[str, float]:
    """The reference: one model's accuracy and batch-weighted spike rates, its own pass."""
    model.eval()
    correct = total = 0
    sums: dict[str, float] = {}
    for x, y in loader:
        out = model(x)
        correct += int((loss_level.logits(out).argmax(-1) == y).sum())
        total += y.shape[0]
        for name, r in (model.spike_rates() if rates else {}).items():
            sums[name] = sums.get(name, 0.0) + float(r) * y.shape[0]
    model.train()
    out_metrics = {"test_acc": correct / total}
    for name, v in sums.items():
        out_metrics["spike_rate" if name == "overall" else f"spike_rate/{name}"] = v / total
    return out_metrics


@pytest.mark.parametrize("normalization", ["bn", "none"])
def test_one_pass_equals_separate_evaluations(normalization: str) -> None:
    cfg = RunConfig.from_dict({"dataset": {"limit": 80}, "train": {"batch_size": 16},
                               "factors": {"normalization": normalization}})
    data = build_data(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, input_shape=data.input_shape, num_classes=10, time_steps=6)
    loss = cfg.level("loss")
    with torch.no_grad():  # BN running statistics away from their initial values
        for x, _ in data.train:
            model(x)
    model.train()
    cpu = torch.device("cpu")
    with SynOpsCounter(model) as ops:
        expected = evaluate(model, data.test, loss)
    if has_batch_norm(model):
        expected["test_acc_shift_bn"] = evaluate(to_shift_bn(model), data.test, loss,
                                                 rates=False)["test_acc"]
    expected["test_samples"] = float(sum(y.shape[0] for _, y in data.test))
    metrics, synops = evaluate_test(model, data.test, loss, cpu)
    assert metrics == expected
    assert synops == ops.per_sample() and synops["synops_per_sample"] > 0
    assert ("test_acc_shift_bn" in metrics) == (normalization == "bn")
    assert model.training  # mode restored
