"""Factor ``optimizer``: optimizer construction, and switches from Adam to SGD mid-training.

A level builds a torch optimizer for one *phase* of training (:meth:`Optimizer.build`). Levels
with a scheduled switch (``hybrid``) have two phases; the training loop's callback keeps the
phase in its saved state and asks for a new optimizer when the switch epoch is reached, so a
resumed run continues with the right optimizer. ``swats`` switches by itself inside its own
optimizer (the phase is part of the optimizer's state). ``bop`` routes parameters by a named
predicate: latent binary weights to Bop, everything real-valued to Adam.

Parameters reach a level as ``(name, parameter)`` pairs with a predicate ``is_binary(name, p)``
saying which are latent weights of binarized layers (the model decides; see ``harness/train``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from tricks._registry import Level, TrickError

__all__ = [
    "DEFAULT",
    "LEVELS",
    "SGD",
    "SWATS",
    "Adam",
    "Bop",
    "BopOptimizer",
    "CaseOptimizer",
    "Hybrid",
    "Optimizer",
    "SWATSOptimizer",
    "current_lr",
    "optimizer_kind",
    "param_groups",
]

DEFAULT = "adam"

NamedParams = Sequence[tuple[str, Tensor]]
Predicate = Callable[[str, Tensor], bool]


def _never_binary(name: str, p: Tensor) -> bool:
    return False


def param_groups(named_params: NamedParams, *, weight_decay: float = 0.0,
                 decay_binary: bool = True, is_binary: Predicate = _never_binary,
                 ) -> list[dict[str, Any]]:
    """Split parameters into groups tagged ``binary`` and with their own ``weight_decay``.

    Weight decay on a latent binary weight pulls it towards 0 and so flips signs at random;
    ``decay_binary=False`` exempts those weights. Empty groups are left out (torch refuses them).
    """
    buckets: dict[bool, list[Tensor]] = {False: [], True: []}
    for name, p in named_params:
        if p.requires_grad:
            buckets[bool(is_binary(name, p))].append(p)
    groups = []
    for binary in (False, True):
        if buckets[binary]:
            decay = weight_decay if (decay_binary or not binary) else 0.0
            groups.append({"params": buckets[binary], "weight_decay": decay, "binary": binary})
    if not groups:
        raise TrickError("the model has no trainable parameters")
    return groups


def _evaluate_closure(closure: Callable[[], Any] | None) -> Any:
    """The loss of an optimizer step's closure (with gradients on), None without one."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class SWATSOptimizer(torch.optim.Optimizer):
    """Adam that switches to SGD by itself (SWATS; Keskar & Socher 2017, arXiv:1712.07628).

    Adam phase, step k (the whole parameter vector; ``g`` includes L2 weight decay):
    ``p_k`` is Adam's step (as ``torch.optim.Adam``), ``gamma_k = p.p / (-p.g)`` when
    ``p.g != 0``, ``lambda_k = beta2 lambda_{k-1} + (1 - beta2) gamma_k``; the switch happens
    when ``k > 1`` and ``|lambda_k / (1 - beta2^k) - gamma_k| < switch_eps``, with
    ``Lambda = lambda_k / (1 - beta2^k)``. SGD phase: ``v = beta1 v + g``,
    ``w -= (1 - beta1) Lambda s v`` where ``s`` is the learning-rate schedule's factor since the
    switch (``group lr / lr at the switch``), so a schedule continues across the switch.

    With ``auto_switch=False`` it is plain Adam that tracks ``Lambda`` (:attr:`projected_lr`):
    the ``hybrid(sgd_lr=auto)`` level reads it at its scheduled switch.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, switch_eps: float = 1e-9,
                 auto_switch: bool = True) -> None:
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)
        # Global (not per-parameter) state: SWATS projects the whole parameter vector at once.
        # torch keeps non-tensor keys of `state` through state_dict()/load_state_dict().
        self.state["swats"] = {"phase": "adam", "step": 0, "lambda": 0.0, "gamma": None,
                               "sgd_lr": None, "switch_step": None, "lr_at_switch": None}
        self.switch_eps = switch_eps
        self.auto_switch = auto_switch

    @property
    def phase(self) -> str:
        return self.state["swats"]["phase"]

    @property
    def projected_lr(self) -> float | None:
        """Bias-corrected running estimate ``Lambda`` of the SGD rate that matches Adam's steps."""
        s = self.state["swats"]
        if s["step"] == 0:
            return None
        beta2 = self.param_groups[0]["betas"][1]
        return s["lambda"] / (1.0 - beta2 ** s["step"])

    @property
    def sgd_lr(self) -> float | None:
        """The SGD rate now (torch convention: momentum, no dampening); None before the switch."""
        s = self.state["swats"]
        if s["phase"] != "sgd":
            return None
        group = self.param_groups[0]
        scale = group["lr"] / s["lr_at_switch"] if s["lr_at_switch"] else 1.0
        return (1.0 - group["betas"][0]) * s["sgd_lr"] * scale

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = _evaluate_closure(closure)
        s = self.state["swats"]
        if s["phase"] == "sgd":
            self._sgd_step()
            return loss
        s["step"] += 1
        k = s["step"]
        # Dot products over the whole parameter vector, summed on the parameters' device in
        # float64 (float32 where the device has none): one host sync per step, not per tensor.
        pp_terms: list[Tensor] = []
        pg_terms: list[Tensor] = []
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p, g in _decayed_grads(group):
                st = self.state[p]
                if not st:
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_sq"] = torch.zeros_like(p)
                st["exp_avg"].lerp_(g, 1.0 - beta1)
                st["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
                denom = (st["exp_avg_sq"].sqrt() / math.sqrt(1.0 - beta2 ** k)).add_(group["eps"])
                step = st["exp_avg"] / denom * (-group["lr"] / (1.0 - beta1 ** k))
                p.add_(step)
                acc = torch.float32 if p.device.type == "mps" else torch.float64
                pp_terms.append(torch.sum(step * step, dtype=acc))
                pg_terms.append(torch.sum(step * g, dtype=acc))
        if not pp_terms:
            return loss
        pp_f = float(torch.stack([t.to(pp_terms[0].device) for t in pp_terms]).sum())
        pg_f = float(torch.stack([t.to(pg_terms[0].device) for t in pg_terms]).sum())
        if pg_f != 0.0:
            beta2 = self.param_groups[0]["betas"][1]
            gamma = pp_f / -pg_f
            s["gamma"] = gamma
            s["lambda"] = beta2 * s["lambda"] + (1.0 - beta2) * gamma
            estimate = s["lambda"] / (1.0 - beta2 ** k)
            if (self.auto_switch and k > 1 and abs(estimate - gamma) < self.switch_eps
                    and math.isfinite(estimate) and estimate > 0.0):
                s["phase"] = "sgd"
                s["sgd_lr"] = estimate
                s["switch_step"] = k
                s["lr_at_switch"] = self.param_groups[0]["lr"]
        return loss

    def _sgd_step(self) -> None:
        s = self.state["swats"]
        for group in self.param_groups:
            beta1 = group["betas"][0]
            scale = group["lr"] / s["lr_at_switch"] if s["lr_at_switch"] else 1.0
            rate = (1.0 - beta1) * s["sgd_lr"] * scale
            for p, g in _decayed_grads(group):
                st = self.state[p]
                if "momentum_buffer" not in st:
                    st["momentum_buffer"] = torch.zeros_like(p)
                buf = st["momentum_buffer"].mul_(beta1).add_(g)
                p.add_(buf, alpha=-rate)


def _decayed_grads(group: dict[str, Any]) -> Iterator[tuple[Tensor, Tensor]]:
    """(parameter, gradient with L2 weight decay added) for every parameter with a gradient."""
    for p in group["params"]:
        if p.grad is None:
            continue
        g = p.grad
        yield p, (g.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else g)


class BopOptimizer(torch.optim.Optimizer):
    """Bop, the binary optimizer (Helwegen et al. 2019, arXiv:1906.02107).

    ``m = (1 - gamma) m + gamma g``; a weight flips, ``w = -w``, iff ``|m| > threshold`` and
    ``sign(m) == sign(w)``. Weights are set to ``sign(w)`` (0 -> +1) before the first step, so
    they stay exactly ±1: there are no latent real values to accumulate.
    """

    def __init__(self, params: Iterable[Any], threshold: float = 1e-8, gamma: float = 1e-4,
                 lr: float = 0.0) -> None:
        # `lr` is unused by the rule; torch's schedulers need the key in every group.
        super().__init__(params, {"threshold": threshold, "gamma": gamma, "lr": lr})

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = _evaluate_closure(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["momentum"] = torch.zeros_like(p)
                    p.copy_(torch.where(p >= 0, 1.0, -1.0).to(p.dtype))
                m = st["momentum"].lerp_(p.grad, group["gamma"])
                sign_w = torch.where(p >= 0, 1.0, -1.0).to(p.dtype)
                flip = (m.abs() > group["threshold"]) & (torch.sign(m) == sign_w)
                p.copy_(torch.where(flip, -sign_w, sign_w))
        return loss


class CaseOptimizer(torch.optim.Optimizer):
    """Route each parameter to the one optimizer whose named predicate claims it (as larq's).

    ``cases`` are ``(name, predicate, factory)``; ``factory(groups)`` builds a torch optimizer.
    Every parameter must be claimed by exactly one predicate and every case must claim at least
    one parameter: anything else is a configuration mistake, reported by name. The parent owns
    the parameter groups and the state (the children share the very same objects), so
    schedulers, ``state_dict`` and checkpoints see one optimizer.
    """

    def __init__(self, groups: Sequence[dict[str, Any]], names: dict[int, str],
                 cases: Sequence[tuple[str, Predicate, Callable[[list[dict[str, Any]]],
                                                           torch.optim.Optimizer]]]) -> None:
        routed: list[list[dict[str, Any]]] = [[] for _ in cases]
        for group in groups:
            split: list[list[Tensor]] = [[] for _ in cases]
            for p in group["params"]:
                name = names[id(p)]
                claims = [i for i, (_, pred, _) in enumerate(cases) if pred(name, p)]
                if len(claims) > 1:
                    raise TrickError(f"parameter '{name}' is claimed by more than one optimizer: "
                                     f"{', '.join(cases[i][0] for i in claims)}")
                if not claims:
                    raise TrickError(f"parameter '{name}' is claimed by no optimizer "
                                     f"(cases: {', '.join(c[0] for c in cases)})")
                split[claims[0]].append(p)
            for i, params in enumerate(split):
                if params:
                    routed[i].append({**group, "params": params})
        for (case, _, _), case_groups in zip(cases, routed):
            if not case_groups:
                raise TrickError(f"optimizer '{case}' claims no parameter")
        self.children = [factory(g) for (_, _, factory), g in zip(cases, routed)]
        all_groups = []
        for i, child in enumerate(self.children):
            for g in child.param_groups:
                g["case"] = i
                all_groups.append(g)
        super().__init__(all_groups, {})
        self.case_names = [c[0] for c in cases]
        self._bind_children()

    def _bind_children(self) -> None:
        for i, child in enumerate(self.children):
            child.param_groups = [g for g in self.param_groups if g["case"] == i]
            child.state = self.state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        # torch replaces `state` and `param_groups` with new objects on load.
        self._bind_children()

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = _evaluate_closure(closure)
        for child in self.children:
            child.step()
        return loss


def optimizer_kind(opt: torch.optim.Optimizer) -> str:
    """What rule ``opt`` applies now: ``adam``, ``sgd``, ``bop+adam``, ... (unwraps Lightning)."""
    opt = getattr(opt, "optimizer", opt)  # LightningOptimizer keeps the real one here
    if isinstance(opt, SWATSOptimizer):
        return opt.phase
    if isinstance(opt, CaseOptimizer):
        return "+".join(optimizer_kind(c) for c in opt.children)
    if isinstance(opt, BopOptimizer):
        return "bop"
    if isinstance(opt, torch.optim.Adam):
        return "adam"
    if isinstance(opt, torch.optim.SGD):
        return "sgd"
    return type(opt).__name__.lower()


def current_lr(opt: torch.optim.Optimizer) -> float:
    """The learning rate in effect: SWATS's SGD rate after its switch; for ``bop`` Adam's."""
    opt = getattr(opt, "optimizer", opt)
    if isinstance(opt, SWATSOptimizer) and opt.sgd_lr is not None:
        return opt.sgd_lr
    if isinstance(opt, CaseOptimizer):
        for child in opt.children:
            if not isinstance(child, BopOptimizer):
                return current_lr(child)
    return float(opt.param_groups[0]["lr"])


@dataclasses.dataclass(frozen=True)
class Optimizer(Level):
    factor: ClassVar[str] = "optimizer"
    #: Phases in order; a level with more than one switches between them.
    phases: ClassVar[tuple[str, ...]] = ("adam",)

    def build(self, named_params: NamedParams, *, lr: float, weight_decay: float = 0.0,
              decay_binary: bool = True, is_binary: Predicate = _never_binary,
              phase: int = 0, sgd_lr: float | None = None) -> torch.optim.Optimizer:
        """A torch optimizer for ``phase`` (``sgd_lr``: the SGD base rate after a switch)."""
        raise NotImplementedError

    def switch_epoch(self, epochs: int) -> int | None:
        """First epoch of the second phase for a scheduled switch, else None."""
        return None


@dataclasses.dataclass(frozen=True)
class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), torch's implementation."""

    name: ClassVar[str] = "adam"
    summary: ClassVar[str] = "Adam, the run's lr"

    def build(self, named_params: NamedParams, *, lr: float, weight_decay: float = 0.0,
              decay_binary: bool = True, is_binary: Predicate = _never_binary,
              phase: int = 0, sgd_lr: float | None = None) -> torch.optim.Optimizer:
        groups = param_groups(named_params, weight_decay=weight_decay,
                              decay_binary=decay_binary, is_binary=is_binary)
        return torch.optim.Adam(groups, lr=lr)


@dataclasses.dataclass(frozen=True)
class SGD(Optimizer):
    """SGD with (heavy-ball or Nesterov) momentum, torch's implementation."""

    name: ClassVar[str] = "sgd"
    summary: ClassVar[str] = "SGD with momentum (its own lr, or the run's)"
    phases: ClassVar[tuple[str, ...]] = ("sgd",)
    param_help: ClassVar[dict[str, str]] = {
        "momentum": "in [0, 1)", "nesterov": "Nesterov momentum",
        "lr": "SGD base learning rate; null: the run's train.lr (tuned for Adam, usually too "
              "small for SGD)"}
    momentum: float = 0.9
    nesterov: bool = False
    lr: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lr is not None and not self.lr > 0.0:
            raise self.error("lr", f"must be > 0, got {self.lr}")
        if not 0.0 <= self.momentum < 1.0:
            raise self.error("momentum", f"must be in [0, 1), got {self.momentum}")
        if self.nesterov and self.momentum == 0.0:
            raise self.error("nesterov", "Nesterov momentum needs momentum > 0")

    def build(self, named_params: NamedParams, *, lr: float, weight_decay: float = 0.0,
              decay_binary: bool = True, is_binary: Predicate = _never_binary,
              phase: int = 0, sgd_lr: float | None = None) -> torch.optim.Optimizer:
        groups = param_groups(named_params, weight_decay=weight_decay,
                              decay_binary=decay_binary, is_binary=is_binary)
        return torch.optim.SGD(groups, lr=lr if self.lr is None else self.lr,
                               momentum=self.momentum, nesterov=self.nesterov)


@dataclasses.dataclass(frozen=True)
class Hybrid(Optimizer):
    """Adam, then SGD with momentum from a scheduled epoch (He et al. 2025's hybrid optimizer).

    ``switch_at``: a float in (0, 1) is a fraction of the run's epochs (SGD from epoch
    ``round(switch_at * epochs)``, at least 1); an int >= 1 is the first SGD epoch itself (0-based;
    one at or past the last epoch means the run never switches and records no switch).
    ``sgd_lr``: the SGD base rate, or ``auto``: the SWATS projection ``Lambda`` of Adam's steps
    (see :class:`SWATSOptimizer`) at the switch, used as ``(1 - momentum) Lambda``, the SGD
    rate whose steady-state momentum step matches it. The learning-rate schedule continues
    across the switch, applied to the SGD base rate.
    """

    name: ClassVar[str] = "hybrid"
    summary: ClassVar[str] = "Adam, then SGD with momentum from a switch epoch"
    phases: ClassVar[tuple[str, ...]] = ("adam", "sgd")
    always_show: ClassVar[tuple[str, ...]] = ("switch_at",)
    param_help: ClassVar[dict[str, str]] = {
        "switch_at": "float in (0,1): fraction of epochs; int >= 1: first SGD epoch",
        "sgd_lr": "SGD learning rate, or 'auto' (SWATS projection of Adam's step)",
        "momentum": "SGD momentum in [0, 1)",
    }
    switch_at: int | float = 0.5
    sgd_lr: float | str = "auto"
    momentum: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.switch_at, float) and not 0.0 < self.switch_at < 1.0:
            raise self.error("switch_at", f"a float is a fraction of the epochs and must be in "
                                          f"(0, 1), got {self.switch_at}; write an epoch number "
                                          f"as an integer")
        if isinstance(self.switch_at, int) and self.switch_at < 1:
            raise self.error("switch_at", f"an epoch number must be >= 1, got {self.switch_at}")
        if isinstance(self.sgd_lr, str) and self.sgd_lr != "auto":
            raise self.error("sgd_lr", f"expected a positive number or 'auto', got "
                                       f"{self.sgd_lr!r}")
        if isinstance(self.sgd_lr, float) and not (self.sgd_lr > 0 and math.isfinite(self.sgd_lr)):
            raise self.error("sgd_lr", f"must be > 0, got {self.sgd_lr}")
        if not 0.0 <= self.momentum < 1.0:
            raise self.error("momentum", f"must be in [0, 1), got {self.momentum}")

    def switch_epoch(self, epochs: int) -> int:
        if isinstance(self.switch_at, int):
            return self.switch_at
        return max(1, math.floor(self.switch_at * epochs + 0.5))

    def build(self, named_params: NamedParams, *, lr: float, weight_decay: float = 0.0,
              decay_binary: bool = True, is_binary: Predicate = _never_binary,
              phase: int = 0, sgd_lr: float | None = None) -> torch.optim.Optimizer:
        groups = param_groups(named_params, weight_decay=weight_decay,
                              decay_binary=decay_binary, is_binary=is_binary)
        if phase == 0:
            if self.sgd_lr == "auto":
                return SWATSOptimizer(groups, lr=lr, auto_switch=False)
            return torch.optim.Adam(groups, lr=lr)
        if sgd_lr is None:
            raise ValueError("the SGD phase of hybrid needs the SGD base rate")
        return torch.optim.SGD(groups, lr=sgd_lr, momentum=self.momentum)

    def sgd_base_lr(self, adam: torch.optim.Optimizer, *, schedule_factor: float) -> float:
        """The SGD base rate for a switch now, from the Adam phase's optimizer.

        ``schedule_factor`` is the schedule's current multiplier (lr now / base lr): a number
        ``sgd_lr`` is a base rate, while ``auto`` measures the rate in effect now, so it is
        divided by the factor to give the base rate the schedule continues from.
        """
        if self.sgd_lr != "auto":
            return float(self.sgd_lr)
        adam = getattr(adam, "optimizer", adam)
        projected = adam.projected_lr if isinstance(adam, SWATSOptimizer) else None
        if projected is None or not math.isfinite(projected) or projected <= 0.0:
            raise TrickError(f"hybrid(sgd_lr=auto): the SWATS projection of Adam's step is "
                             f"{projected} at the switch, not a usable learning rate; give "
                             f"sgd_lr as a number")
        rate = (1.0 - self.momentum) * projected
        return rate / schedule_factor if schedule_factor > 0 else rate


@dataclasses.dataclass(frozen=True)
class SWATS(Optimizer):
    """SWATS: Adam that switches to SGD when its projected SGD rate settles (Keskar & Socher 2017).

    See :class:`SWATSOptimizer` for the rule; ``eps`` is the switch tolerance on
    ``|Lambda_k - gamma_k|``.
    """

    name: ClassVar[str] = "swats"
    summary: ClassVar[str] = "Adam, switching itself to SGD when the projected rate settles"
    phases: ClassVar[tuple[str, ...]] = ("adam", "sgd")
    param_help: ClassVar[dict[str, str]] = {"eps": "switch tolerance on |Lambda - gamma| (> 0)"}
    eps: float = 1e-9

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.eps > 0:
            raise self.error("eps", f"must be > 0, got {self.eps}")

    def build(self, named_params: NamedParams, *, lr: float, weight_decay: float = 0.0,
              decay_binary: bool = True, is_binary: Predicate = _never_binary,
              phase: int = 0, sgd_lr: float | None = None) -> torch.optim.Optimizer:
        groups = param_groups(named_params, weight_decay=weight_decay,
                              decay_binary=decay_binary, is_binary=is_binary)
        return SWATSOptimizer(groups, lr=lr, switch_eps=self.eps)


@dataclasses.dataclass(frozen=True)
class Bop(Optimizer):
    """Bop for latent binary weights, Adam (the run's lr) for real-valued parameters.

    Helwegen et al. 2019: flip ``w`` when its gradient momentum ``m = (1-gamma) m + gamma g``
    exceeds ``threshold`` and agrees in sign. Parameters are routed by the predicate ``binary``
    (latent weights of binarized layers); a model with no binary weight (``binarization:
    fp32``) or with nothing real-valued is refused. Weight decay applies to Adam's parameters
    only; the learning-rate schedule acts on Adam's rate, not on ``gamma`` or ``threshold``.
    """

    name: ClassVar[str] = "bop"
    summary: ClassVar[str] = "Bop on binary weights (flip on momentum), Adam on the rest"
    phases: ClassVar[tuple[str, ...]] = ("bop",)
    param_help: ClassVar[dict[str, str]] = {"threshold": "flip threshold tau (>= 0)",
                                            "gamma": "momentum adaptivity rate in (0, 1]"}
    threshold: float = 1e-8
    gamma: float = 1e-4

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.threshold >= 0:
            raise self.error("threshold", f"must be >= 0, got {self.threshold}")
        if not 0.0 < self.gamma <= 1.0:
            raise self.error("gamma", f"must be in (0, 1], got {self.gamma}")

    def build(self, named_params: NamedParams, *, lr: float, weight_decay: float = 0.0,
              decay_binary: bool = True, is_binary: Predicate = _never_binary,
              phase: int = 0, sgd_lr: float | None = None) -> torch.optim.Optimizer:
        named = [(n, p) for n, p in named_params if p.requires_grad]
        names = {id(p): n for n, p in named}
        real = [(n, p) for n, p in named if not is_binary(n, p)]
        if len(real) == len(named):
            raise TrickError("optimizer level 'bop' needs binary weights, and this model has "
                             "none (use a binarization level with binary weights)")
        groups = param_groups(real, weight_decay=weight_decay) if real else []
        groups.append({"params": [p for n, p in named if is_binary(n, p)],
                       "weight_decay": 0.0, "binary": True})

        def real_valued(n: str, p: Tensor) -> bool:
            return not is_binary(n, p)

        return CaseOptimizer(groups, names, [
            ("adam", real_valued, lambda g: torch.optim.Adam(g, lr=lr)),
            ("bop", is_binary,
             lambda g: BopOptimizer(g, threshold=self.threshold, gamma=self.gamma)),
        ])


LEVELS: dict[str, type[Optimizer]] = {cls.name: cls for cls in (Adam, SGD, Hybrid, SWATS, Bop)}
