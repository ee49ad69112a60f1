"""The contract every training-side level meets (optimizer, lr_schedule, loss).

Registry round trip, label round trip, parameter validation, pickling, no torch state, and one
tiny training step through the level's slot.
"""

from __future__ import annotations

import dataclasses
import pickle

import pytest
import torch
from torch import nn

import tricks
from tricks import TrickError

FACTORS = ("optimizer", "lr_schedule", "loss")
LEVELS = [(f, name) for f in FACTORS for name in tricks.registry()[f]]


def _ids(params: list[tuple[str, str]]) -> list[str]:
    return [f"{f}:{n}" for f, n in params]


@pytest.mark.parametrize(("factor", "name"), LEVELS, ids=_ids(LEVELS))
def test_registry_label_and_state_round_trip(factor: str, name: str) -> None:
    level = tricks.make(factor, name)
    cls = tricks.registry()[factor][name]
    assert type(level) is cls and cls.name == name and cls.factor == factor
    assert cls.summary and cls.__doc__
    assert tricks.make(factor, level.to_dict()) == level
    assert tricks.make(factor, level) is level
    assert pickle.loads(pickle.dumps(level)) == level
    assert not any(isinstance(getattr(level, f.name), torch.Tensor | nn.Module)
                   for f in dataclasses.fields(level))
    with pytest.raises(dataclasses.FrozenInstanceError):
        level.__setattr__("x", 1)
    with pytest.raises(TrickError, match="unknown parameter"):
        tricks.make(factor, {"name": name, "no_such_param": 1})


@pytest.mark.parametrize(("factor", "name"), LEVELS, ids=_ids(LEVELS))
def test_parameters_are_type_checked(factor: str, name: str) -> None:
    cls = tricks.registry()[factor][name]
    for field in dataclasses.fields(cls):
        with pytest.raises(TrickError, match=f"parameter '{field.name}'"):
            tricks.make(factor, {"name": name, field.name: [object()]})


def test_default_levels() -> None:
    assert tricks.default_level("optimizer").name == "adam"
    assert tricks.default_level("lr_schedule").name == "constant"
    assert tricks.default_level("loss").name == "mse-rate"
    assert tricks.make("optimizer", {"name": "hybrid", "switch_at": 0.25,
                                     "sgd_lr": 0.1}).label() == (
        "hybrid(switch_at=0.25, sgd_lr=0.1)")


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.binary = nn.Linear(4, 3, bias=False)
        self.bn = nn.BatchNorm1d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T, B, 4] -> [T, B, 3]
        w = torch.where(self.binary.weight >= 0, 1.0, -1.0)
        w = w + self.binary.weight - self.binary.weight.detach()  # straight-through
        h = nn.functional.linear(x, w)
        t, b, k = h.shape
        return torch.sigmoid(self.bn(h.reshape(t * b, k)).reshape(t, b, k))


def _is_binary(name: str, p: torch.Tensor) -> bool:
    return name == "binary.weight"


def _step(opt: torch.optim.Optimizer, model: nn.Module, loss_name: str = "mse-rate") -> float:
    x = torch.rand(4, 6, 4, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    opt.zero_grad()
    loss = tricks.make("loss", loss_name).loss(model(x), y)
    loss.backward()
    opt.step()
    return float(loss.detach())


@pytest.mark.parametrize("name", list(tricks.registry()["optimizer"]))
def test_every_optimizer_takes_a_step(name: str) -> None:
    torch.manual_seed(0)
    model = _Tiny()
    before = [p.detach().clone() for p in model.parameters()]
    level = tricks.make("optimizer", name)
    for phase in range(len(level.phases)):
        opt = level.build(list(model.named_parameters()), lr=0.1, is_binary=_is_binary,
                          phase=phase, sgd_lr=0.1)
        _step(opt, model)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


@pytest.mark.parametrize("name", list(tricks.registry()["lr_schedule"]))
def test_every_schedule_steps_an_optimizer(name: str) -> None:
    model = _Tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = tricks.make("lr_schedule", name).build(opt, epochs=3)
    for _ in range(3):
        _step(opt, model)
        sched.step()
    assert all(g["lr"] >= 0 for g in opt.param_groups)


@pytest.mark.parametrize("name", list(tricks.registry()["loss"]))
def test_every_loss_takes_a_step(name: str) -> None:
    torch.manual_seed(0)
    model = _Tiny()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = _step(opt, model, name)
    for _ in range(20):
        last = _step(opt, model, name)
    assert last < first
