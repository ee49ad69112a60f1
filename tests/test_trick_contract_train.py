"""What the training-side levels (optimizer, lr_schedule, loss) meet beyond the registry
contract (tests/test_registry.py): one tiny training step through the level's slot."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tricks

FACTORS = ("optimizer", "lr_schedule", "loss")
LEVELS = [(f, name) for f in FACTORS for name in tricks.registry()[f]]


def _ids(params: list[tuple[str, str]]) -> list[str]:
    return [f"{f}:{n}" for f, n in params]


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
