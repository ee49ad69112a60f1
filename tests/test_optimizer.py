"""Optimizer levels: maths of SWATS and Bop, parameter routing, hybrid's switch arithmetic."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import tricks
from tricks import TrickError
from tricks.optimizer import (
    BopOptimizer,
    CaseOptimizer,
    SWATSOptimizer,
    current_lr,
    optimizer_kind,
    param_groups,
)

BETA1, BETA2 = 0.9, 0.999


def _quadratic_grads(w: torch.Tensor, a: torch.Tensor) -> None:
    w.grad = a * w.detach()  # gradient of 0.5 * sum(a w^2)


def test_swats_without_switch_is_torch_adam() -> None:
    a = torch.tensor([1.0, 3.0, 0.5, 2.0], dtype=torch.float64)
    w1 = nn.Parameter(torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64))
    w2 = nn.Parameter(w1.detach().clone())
    ours = SWATSOptimizer([w1], lr=0.05, weight_decay=0.01, auto_switch=False)
    ref = torch.optim.Adam([w2], lr=0.05, weight_decay=0.01)
    for _ in range(20):
        _quadratic_grads(w1, a)
        _quadratic_grads(w2, a)
        ours.step()
        ref.step()
    torch.testing.assert_close(w1, w2, rtol=1e-12, atol=1e-12)
    assert ours.phase == "adam" and ours.projected_lr is not None


def test_swats_switches_at_step_two_with_constant_projection() -> None:
    # A linear loss has a constant gradient g, so Adam's step p = -lr g / (|g| + eps) is the
    # same every step and gamma = p.p / (-p.g) is constant: the bias-corrected estimate equals
    # gamma from step 1 on, and the switch happens at the first allowed step, k = 2.
    g = torch.tensor([0.5, -2.0, 1.0, -0.25], dtype=torch.float64)
    lr, eps = 0.01, 1e-8
    w = nn.Parameter(torch.zeros(4, dtype=torch.float64))
    opt = SWATSOptimizer([w], lr=lr, eps=eps, switch_eps=1e-9)
    p = -lr * g / (g.abs() + eps)
    gamma = float((p @ p) / -(p @ g))
    w.grad = g.clone()
    opt.step()
    assert opt.phase == "adam"
    w.grad = g.clone()
    opt.step()
    assert opt.phase == "sgd"
    assert opt.state["swats"]["switch_step"] == 2
    assert opt.state["swats"]["sgd_lr"] == pytest.approx(gamma, rel=1e-12)
    assert opt.sgd_lr == pytest.approx((1 - BETA1) * gamma, rel=1e-12)
    assert optimizer_kind(opt) == "sgd" and current_lr(opt) == opt.sgd_lr
    # SGD phase: v = beta1 v + g (v starts at 0), w -= (1 - beta1) Lambda v.
    before = w.detach().clone()
    w.grad = g.clone()
    opt.step()
    torch.testing.assert_close(w.detach(), before - (1 - BETA1) * gamma * g)
    before = w.detach().clone()
    w.grad = g.clone()
    opt.step()
    torch.testing.assert_close(w.detach(), before - (1 - BETA1) * gamma * (BETA1 * g + g))


def _swats_reference(w: list[float], a: list[float], lr: float, switch_eps: float,
                     steps: int) -> int | None:
    """SWATS's Algorithm 1 on 0.5 sum(a w^2) in plain Python floats: the switch step."""
    m = [0.0] * len(w)
    v = [0.0] * len(w)
    lam = 0.0
    for k in range(1, steps + 1):
        g = [ai * wi for ai, wi in zip(a, w)]
        m = [BETA1 * mi + (1 - BETA1) * gi for mi, gi in zip(m, g)]
        v = [BETA2 * vi + (1 - BETA2) * gi * gi for vi, gi in zip(v, g)]
        p = [-lr / (1 - BETA1 ** k) * mi / (math.sqrt(vi) / math.sqrt(1 - BETA2 ** k) + 1e-8)
             for mi, vi in zip(m, v)]
        w = [wi + pi for wi, pi in zip(w, p)]
        pg = sum(pi * gi for pi, gi in zip(p, g))
        gamma = sum(pi * pi for pi in p) / -pg
        lam = BETA2 * lam + (1 - BETA2) * gamma
        if k > 1 and abs(lam / (1 - BETA2 ** k) - gamma) < switch_eps:
            return k
    return None


def test_swats_switch_step_matches_algorithm_on_a_quadratic() -> None:
    w0, a = [1.0, -2.0, 0.5], [1.0, 4.0, 2.0]
    expected = _swats_reference(w0, a, lr=0.01, switch_eps=1e-6, steps=200)
    assert expected is not None and expected > 2  # the problem is built to switch late
    w = nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    opt = SWATSOptimizer([w], lr=0.01, switch_eps=1e-6)
    at = torch.tensor(a, dtype=torch.float64)
    for _ in range(expected):
        _quadratic_grads(w, at)
        opt.step()
        if opt.phase == "sgd":
            break
    assert opt.state["swats"]["switch_step"] == expected


def test_swats_state_survives_state_dict() -> None:
    g = torch.tensor([1.0, -1.0], dtype=torch.float64)
    w = nn.Parameter(torch.zeros(2, dtype=torch.float64))
    opt = SWATSOptimizer([w], lr=0.01)
    for _ in range(3):
        w.grad = g.clone()
        opt.step()
    assert opt.phase == "sgd"
    w2 = nn.Parameter(w.detach().clone())
    opt2 = SWATSOptimizer([w2], lr=0.01)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert opt2.phase == "sgd" and opt2.sgd_lr == opt.sgd_lr
    for o, p in ((opt, w), (opt2, w2)):
        p.grad = g.clone()
        o.step()
    torch.testing.assert_close(w, w2)


def test_bop_flips_exactly_the_weights_the_rule_says() -> None:
    # m = (1 - gamma) m + gamma g; flip iff |m| > threshold and sign(m) == sign(w).
    w = nn.Parameter(torch.tensor([0.3, -0.7, 2.0, -0.1, 0.9, 0.0]))
    opt = BopOptimizer([w], threshold=0.1, gamma=0.5)
    w.grad = torch.tensor([0.4, -0.4, 0.1, 0.4, -0.4, 0.3])
    opt.step()
    # Latent values are snapped to sign(w) (0 -> +1) first; m = [.2, -.2, .05, .2, -.2, .15]:
    # flips at 0 (+,+), 1 (-,-) and 5 (+,+); 2 is under the threshold; 3 and 4 disagree.
    assert w.tolist() == [-1.0, 1.0, 1.0, -1.0, 1.0, -1.0]
    torch.testing.assert_close(opt.state[w]["momentum"],
                               torch.tensor([0.2, -0.2, 0.05, 0.2, -0.2, 0.15]))
    w.grad = torch.tensor([-0.3, 0.0, 0.0, 0.0, 0.0, -0.2])
    opt.step()
    # m = [-.05, -.1, .025, .1, -.1, -.025]: the only |m| >= 0.1 disagree with their weights.
    assert w.tolist() == [-1.0, 1.0, 1.0, -1.0, 1.0, -1.0]
    w.grad = torch.tensor([-1.0, 1.0, 1.0, 0.0, -1.0, 0.0])
    opt.step()
    # m = [-.525, .45, .5125, .05, -.55, -.0125]: 0 (-,-), 1 (+,+) and 2 (+,+) flip;
    # 3 and 5 are under the threshold; 4 disagrees.
    assert w.tolist() == [1.0, -1.0, -1.0, -1.0, 1.0, -1.0]


def _net() -> nn.Module:
    net = nn.Sequential(nn.Linear(4, 3, bias=False), nn.BatchNorm1d(3), nn.Linear(3, 2))
    return net


def _is_first_weight(name: str, p: torch.Tensor) -> bool:
    return name == "0.weight"


def test_param_groups_exempt_binary_weights_from_decay() -> None:
    net = _net()
    groups = param_groups(list(net.named_parameters()), weight_decay=0.1, decay_binary=False,
                          is_binary=_is_first_weight)
    by_binary = {g["binary"]: g for g in groups}
    assert by_binary[True]["params"] == [net[0].weight] and by_binary[True]["weight_decay"] == 0
    assert len(by_binary[False]["params"]) == 4 and by_binary[False]["weight_decay"] == 0.1
    groups = param_groups(list(net.named_parameters()), weight_decay=0.1, decay_binary=True,
                          is_binary=_is_first_weight)
    assert all(g["weight_decay"] == 0.1 for g in groups)


def test_case_optimizer_refuses_double_and_missing_claims() -> None:
    net = _net()
    named = list(net.named_parameters())
    names = {id(p): n for n, p in named}
    groups = [{"params": [p for _, p in named]}]

    def adam(g: list) -> torch.optim.Optimizer:
        return torch.optim.Adam(g)

    def everything(n: str, p: torch.Tensor) -> bool:
        return True

    def nothing(n: str, p: torch.Tensor) -> bool:
        return False

    with pytest.raises(TrickError, match="'0.weight' is claimed by more than one optimizer"):
        CaseOptimizer(groups, names, [("a", everything, adam), ("b", _is_first_weight, adam)])
    with pytest.raises(TrickError, match="claimed by no optimizer"):
        CaseOptimizer(groups, names, [("a", _is_first_weight, adam)])
    with pytest.raises(TrickError, match="optimizer 'b' claims no parameter"):
        CaseOptimizer(groups, names, [("a", everything, adam), ("b", nothing, adam)])


def test_bop_level_routes_and_refuses_a_model_without_binary_weights() -> None:
    net = _net()
    level = tricks.make("optimizer", "bop")
    opt = level.build(list(net.named_parameters()), lr=0.01, is_binary=_is_first_weight)
    assert optimizer_kind(opt) == "adam+bop"
    adam, bop = opt.children
    assert bop.param_groups[0]["params"] == [net[0].weight]
    assert net[0].weight not in {p for g in adam.param_groups for p in g["params"]}
    with pytest.raises(TrickError, match="needs binary weights"):
        level.build(list(net.named_parameters()), lr=0.01)


def test_case_optimizer_state_dict_round_trip_continues_identically() -> None:
    torch.manual_seed(0)
    net = _net()
    x = torch.randn(8, 4)
    level = tricks.make("optimizer", {"name": "bop", "threshold": 1e-4, "gamma": 0.1})

    def step(model: nn.Module, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad()
        model(x).pow(2).sum().backward()
        opt.step()

    opt = level.build(list(net.named_parameters()), lr=0.01, is_binary=_is_first_weight)
    for _ in range(3):
        step(net, opt)
    twin = _net()
    twin.load_state_dict(net.state_dict())
    opt2 = level.build(list(twin.named_parameters()), lr=0.01, is_binary=_is_first_weight)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    for _ in range(3):
        step(net, opt)
        step(twin, opt2)
    for p, q in zip(net.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert set(net[0].weight.detach().abs().unique().tolist()) == {1.0}


@pytest.mark.parametrize(("spec", "message"), [
    ({"switch_at": 1.0}, "must be in \\(0, 1\\)"),
    ({"switch_at": 0}, ">= 1"),
    ({"sgd_lr": "fast"}, "'auto'"),
    ({"sgd_lr": -1}, "> 0"),
    ({"momentum": 1.0}, "\\[0, 1\\)"),
])
def test_hybrid_validation(spec: dict, message: str) -> None:
    with pytest.raises(TrickError, match=message):
        tricks.make("optimizer", {"name": "hybrid", **spec})


def test_hybrid_switch_epoch_and_rates() -> None:
    assert tricks.make("optimizer", "hybrid").switch_epoch(6) == 3
    assert tricks.make("optimizer", {"name": "hybrid", "switch_at": 0.1}).switch_epoch(6) == 1
    assert tricks.make("optimizer", {"name": "hybrid", "switch_at": 4}).switch_epoch(6) == 4
    fixed = tricks.make("optimizer", {"name": "hybrid", "sgd_lr": 0.05})
    assert fixed.sgd_base_lr(torch.optim.Adam([nn.Parameter(torch.zeros(1))]),
                             schedule_factor=0.5) == 0.05
    w = nn.Parameter(torch.zeros(2, dtype=torch.float64))
    adam = tricks.make("optimizer", "hybrid").build([("w", w)], lr=0.01)
    assert isinstance(adam, SWATSOptimizer) and not adam.auto_switch
    for _ in range(3):
        w.grad = torch.tensor([1.0, -2.0], dtype=torch.float64)
        adam.step()
    auto = tricks.make("optimizer", "hybrid")
    rate = auto.sgd_base_lr(adam, schedule_factor=0.5)
    assert rate == pytest.approx((1 - 0.9) * adam.projected_lr / 0.5)
    sgd = auto.build([("w", w)], lr=0.01, phase=1, sgd_lr=rate)
    assert optimizer_kind(sgd) == "sgd" and sgd.param_groups[0]["momentum"] == 0.9
    assert tricks.make("optimizer", {"name": "sgd", "nesterov": True}).build(
        [("w", w)], lr=0.1).param_groups[0]["nesterov"] is True
