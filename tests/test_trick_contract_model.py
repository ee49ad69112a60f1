"""Contract every level of the model-side factors runs through: registry round-trip, stable
label, parameter validation naming the parameter, pickling, and a tiny training step."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
import torch

import tricks
from harness.build import build_model
from tests._models_common import cfg

FACTORS = ("binarization", "surrogate", "normalization", "shift_bn")
ALL = [(f, name) for f in FACTORS for name in tricks.registry()[f]]


@pytest.mark.parametrize(("factor", "name"), ALL)
def test_registry_round_trip_and_label(factor: str, name: str) -> None:
    level = tricks.make(factor, name)
    assert level.name == name and level.factor == factor
    again = tricks.make(factor, level.to_dict())
    assert again == level
    assert again.label() == level.label() == name  # defaults are not printed
    assert pickle.loads(pickle.dumps(level)) == level
    assert level.summary


@pytest.mark.parametrize(("factor", "name"), ALL)
def test_parameter_validation_names_the_parameter(factor: str, name: str) -> None:
    cls = tricks.registry()[factor][name]
    with pytest.raises(tricks.TrickError, match="'bogus'"):
        tricks.make(factor, {"name": name, "bogus": 1})
    for f in dataclasses.fields(cls):
        with pytest.raises(tricks.TrickError, match=f"parameter '{f.name}'"):
            tricks.make(factor, {"name": name, f.name: "not-a-value"})
        if f.type in ("float", float):
            with pytest.raises(tricks.TrickError, match=f"parameter '{f.name}'"):
                tricks.make(factor, {"name": name, f.name: -1.0})
            changed = tricks.make(factor, {"name": name, f.name: 0.25})
            assert changed.label() == f"{name}({f.name}=0.25)"


@pytest.mark.parametrize(("factor", "name"), ALL)
def test_one_training_step_on_a_tiny_net(factor: str, name: str) -> None:
    torch.manual_seed(0)
    c = cfg({factor: name})
    model = build_model(c, input_shape=(2, 8, 8), num_classes=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = (torch.rand(4, 6, 2, 8, 8) < 0.3).float()
    out = model(x)
    assert out.shape == (4, 6, 3)
    loss = torch.nn.functional.cross_entropy(out.mean(0) * 5, torch.arange(6) % 3)
    opt.zero_grad()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    opt.step()
    c.level("binarization").after_step(model)
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(x)).all()
