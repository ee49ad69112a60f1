"""The final test pass: one loop over the test set gives what separate evaluations give."""

from __future__ import annotations

import pytest
import torch

from harness.config import RunConfig
from harness.data.pipeline import build_data
from harness.run.build import build_model
from harness.run.costs import SynOpsCounter
from harness.run.evaluate import _evaluate, _shift_bn_copy, evaluate_test


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
        expected = _evaluate(model, data.test, loss, cpu, prefix="test")
    shifted = _shift_bn_copy(model)
    if shifted is not None:
        expected["test_acc_shift_bn"] = _evaluate(shifted, data.test, loss, cpu, prefix="test",
                                                  rates=False)["test_acc"]
    expected["test_samples"] = float(sum(y.shape[0] for _, y in data.test))
    metrics, synops = evaluate_test(model, data.test, loss, cpu)
    assert metrics == expected
    assert synops == ops.per_sample() and synops["synops_per_sample"] > 0
    assert ("test_acc_shift_bn" in metrics) == (normalization == "bn")
    assert model.training  # mode restored
