"""Evaluation of a trained model: the final test pass, which measures the model and its post-hoc
shift-BN copy at once."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def _shift_bn_copy(model: nn.Module) -> nn.Module | None:
    """The post-hoc shift-BN conversion of ``model`` (a copy), or None for a model without BN."""
    from harness.run.build import has_batch_norm, to_shift_bn

    return to_shift_bn(model) if has_batch_norm(model) else None


def evaluate_test(model: nn.Module, loader: Any, loss_level: Any, device: torch.device
                  ) -> tuple[dict[str, float], dict[str, float] | None]:
    """The final test metrics in one pass over ``loader``: ``test_acc``, ``test_samples`` (the
    number of test samples) and the spike rates of
    ``model``, its synaptic operations (a :class:`harness.run.costs.SynOpsCounter` per-sample
    result, None without synaptic layers) and ``test_acc_shift_bn`` of its post-hoc shift-BN
    copy (models with BN), each batch fed to both models, in inference mode.

    Gives what separate evaluations of the model (under the counter) and of the copy would
    (``tests/test_evaluate.py``).
    """
    from harness.run.costs import SynOpsCounter

    shifted = _shift_bn_copy(model)  # copied before the counter hooks the model's layers
    nets = [model] + ([shifted] if shifted is not None else [])
    modes = [m.training for m in nets]
    for m in nets:
        m.eval()
    correct = [0] * len(nets)
    total = 0
    rate_sums: dict[str, float] = {}
    try:
        with SynOpsCounter(model) as ops, torch.inference_mode():
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                for i, net in enumerate(nets):
                    out = net(x)
                    correct[i] += int((loss_level.logits(out).argmax(-1) == y).sum())
                    if i == 0:
                        spike_rates = getattr(model, "spike_rates", None)
                        for name, r in (spike_rates() if spike_rates else {}).items():
                            rate_sums[name] = rate_sums.get(name, 0.0) + float(r) * y.shape[0]
                total += y.shape[0]
    finally:
        for m, mode in zip(nets, modes):
            m.train(mode)
    # test_samples: the test-set size, on which the binomial SE of test_acc depends.
    metrics = {"test_acc": correct[0] / total if total else math.nan,
               "test_samples": float(total)}
    for name, v in rate_sums.items():
        metrics["spike_rate" if name == "overall" else f"spike_rate/{name}"] = v / total
    if shifted is not None:
        metrics["test_acc_shift_bn"] = correct[1] / total if total else math.nan
    return metrics, ops.per_sample() if ops.samples else None
