"""Evaluation of a trained model: accuracy over a loader, the post-hoc shift-BN copy."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def _shift_bn_copy(model: nn.Module) -> nn.Module | None:
    """The post-hoc shift-BN conversion of ``model`` (a copy), or None for a model without BN."""
    from harness.run.build import has_batch_norm, to_shift_bn

    return to_shift_bn(model) if has_batch_norm(model) else None


@torch.no_grad()
def _evaluate(model: nn.Module, loader: Any, loss_level: Any, device: torch.device, *,
              prefix: str, rates: bool = True) -> dict[str, float]:
    """Accuracy over ``loader`` and, if the model reports them, batch-weighted spike rates."""
    was_training = model.training
    model.eval()
    correct = total = 0
    rate_sums: dict[str, float] = {}
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        out = model(x)
        correct += int((loss_level.logits(out).argmax(-1) == y).sum())
        total += y.shape[0]
        spike_rates = getattr(model, "spike_rates", None) if rates else None
        if spike_rates is not None:
            for name, r in spike_rates().items():
                rate_sums[name] = rate_sums.get(name, 0.0) + float(r) * y.shape[0]
    model.train(was_training)
    out_metrics = {f"{prefix}_acc": correct / total if total else math.nan}
    for name, s in rate_sums.items():
        key = "spike_rate" if name == "overall" else f"spike_rate/{name}"
        out_metrics[key] = s / total
    return out_metrics
