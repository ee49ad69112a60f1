"""What the levels of the model-side factors meet beyond the registry contract
(tests/test_registry.py): labels without default parameters, float checks, and a tiny training
step."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import tricks
from harness.run.build import build_model
from tests._models_common import cfg

FACTORS = ("binarization", "surrogate", "normalization", "shift_bn")
ALL = [(f, name) for f in FACTORS for name in tricks.registry()[f]]


@pytest.mark.parametrize(("factor", "name"), ALL)
def test_default_parameters_are_not_in_the_label(factor: str, name: str) -> None:
    # The rest of the contract is tests/test_registry.py::test_level_contract.
    assert tricks.make(factor, name).label() == name


@pytest.mark.parametrize(("factor", "name"), ALL)
def test_float_parameters_refuse_negatives_and_show_in_the_label(factor: str, name: str) -> None:
    cls = tricks.registry()[factor][name]
    for f in dataclasses.fields(cls):
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
