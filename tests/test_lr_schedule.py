"""Learning-rate schedules: the rate in every epoch equals its formula, also across a switch."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

import tricks
from tricks import TrickError

E = 10  # epochs


def _one_cycle(b: float, e: int, pct: float = 0.3, div: float = 25.0,
               final: float = 1e4) -> float:
    initial, low = b / div, b / div / final
    end1, end2 = pct * E - 1, E - 1

    def anneal(start: float, stop: float, frac: float) -> float:
        return stop + (start - stop) / 2 * (1 + math.cos(math.pi * frac))

    if e <= end1:
        return anneal(initial, b, e / end1)
    return anneal(b, low, (e - end1) / (end2 - end1))


def _warmup_cosine(b: float, e: int, w: int) -> float:
    if e < w:
        return b * (e + 1) / (w + 1)
    return b * (1 + math.cos(math.pi * (e - w) / (E - w))) / 2


FORMULAS: dict[str, tuple[object, Callable[[float, int], float]]] = {
    "constant": ("constant", lambda b, e: b),
    "step": ("step", lambda b, e: b * 0.1 ** (e // 5)),
    "step3": ({"name": "step", "step_size": 3, "gamma": 0.5}, lambda b, e: b * 0.5 ** (e // 3)),
    "cosine": ("cosine", lambda b, e: b * (1 + math.cos(math.pi * e / E)) / 2),
    "exponential": ({"name": "exponential", "gamma": 0.7}, lambda b, e: b * 0.7 ** e),
    "warmup-cosine": ("warmup-cosine", lambda b, e: _warmup_cosine(b, e, 1)),
    "warmup-cosine3": ({"name": "warmup-cosine", "warmup": 3},
                       lambda b, e: _warmup_cosine(b, e, 3)),
    "linear-decay": ("linear-decay", lambda b, e: b * (1 - e / E)),
    "one-cycle": ("one-cycle", _one_cycle),
}


def _opt(lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD([nn.Parameter(torch.zeros(2))], lr=lr, momentum=0.9)


def _rates(spec: object, base: float, switch: tuple[int, float] | None = None) -> list[float]:
    """The rate in effect in each epoch, stepping once per epoch as the training loop does."""
    level = tricks.make("lr_schedule", spec)
    opt = _opt(base)
    sched = level.build(opt, epochs=E)
    out = []
    for epoch in range(E):
        if switch is not None and epoch == switch[0]:
            opt = _opt(switch[1])
            sched = level.build(opt, epochs=E, start_epoch=epoch)
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("key", list(FORMULAS))
def test_schedule_matches_formula(key: str) -> None:
    spec, formula = FORMULAS[key]
    assert _rates(spec, 0.1) == pytest.approx([formula(0.1, e) for e in range(E)], rel=1e-9,
                                              abs=1e-15)


@pytest.mark.parametrize("key", list(FORMULAS))
def test_schedule_continues_across_an_optimizer_switch(key: str) -> None:
    # Adam at base 0.1 for 4 epochs, then SGD with base 0.5: the same multiplier continues.
    spec, formula = FORMULAS[key]
    expected = [formula(0.1, e) for e in range(4)] + [formula(0.5, e) for e in range(4, E)]
    assert _rates(spec, 0.1, switch=(4, 0.5)) == pytest.approx(expected, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize(("spec", "message"), [
    ({"name": "step", "step_size": 1.5}, "\\[0, 1\\)"),
    ({"name": "step", "step_size": 0}, "> 0"),
    ({"name": "step", "gamma": 0.0}, "\\(0, 1\\]"),
    ({"name": "exponential", "gamma": 2}, "\\(0, 1\\]"),
    ({"name": "warmup-cosine", "warmup": -1}, ">= 0"),
    ({"name": "one-cycle", "pct_start": 1.0}, "\\(0, 1\\)"),
    ({"name": "one-cycle", "div_factor": 1}, "> 1"),
])
def test_schedule_validation(spec: dict, message: str) -> None:
    with pytest.raises(TrickError, match=message):
        tricks.make("lr_schedule", spec)


def test_short_runs_are_well_defined() -> None:
    # One epoch: warm-up shrinks to nothing, step size to one epoch; nothing divides by zero.
    for name in tricks.lr_schedule.LEVELS:
        opt = _opt(0.1)
        tricks.make("lr_schedule", name).build(opt, epochs=1)
        assert math.isfinite(opt.param_groups[0]["lr"]) and opt.param_groups[0]["lr"] > 0
