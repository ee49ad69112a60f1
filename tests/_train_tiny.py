"""A tiny time-major binary spiking model and data for training-loop tests (no other helpers)."""

from __future__ import annotations

import dataclasses
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset


class _Sign(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, w: Tensor) -> Tensor:
        return torch.where(w >= 0, 1.0, -1.0).to(w.dtype)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Tensor:
        return g


class SignQuantizer(nn.Module):
    def forward(self, w: Tensor) -> Tensor:
        return _Sign.apply(w)


class Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return g / (1 + (torch.pi * x) ** 2)


class BinLinear(nn.Linear):
    def __init__(self, i: int, o: int, binary: bool) -> None:
        super().__init__(i, o, bias=False)
        self.weight_quantizer = SignQuantizer() if binary else None

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight if self.weight_quantizer is None else self.weight_quantizer(self.weight)
        return nn.functional.linear(x, w) / self.in_features ** 0.5


class TinyNet(nn.Module):
    """[T, B, F] -> [T, B, K]: binary linear -> BN -> LIF -> linear -> LIF (or membrane)."""

    def __init__(self, features: int = 8, hidden: int = 16, classes: int = 3,
                 binary: bool = True, readout: str = "spike") -> None:
        super().__init__()
        self.fc1 = BinLinear(features, hidden, binary)
        self.bn = nn.BatchNorm1d(hidden)
        self.fc2 = BinLinear(hidden, classes, binary)
        self.readout = readout
        self._rates: dict[str, float] = {}

    def spike_rates(self) -> dict[str, float]:
        return dict(self._rates)

    def _lif(self, cur: Tensor, spiking: bool = True) -> Tensor:
        mem = torch.zeros_like(cur[0])
        outs = []
        for c in cur.unbind(0):
            mem = 0.9 * mem + c
            if spiking:
                s = Spike.apply(mem - 1.0)
                mem = mem - s
                outs.append(s)
            else:
                outs.append(mem)
        return torch.stack(outs)

    def forward(self, x: Tensor) -> Tensor:
        t, b = x.shape[:2]
        h = self.bn(self.fc1(x).reshape(t * b, -1)).reshape(t, b, -1)
        s1 = self._lif(h * 2.0)
        out = self._lif(self.fc2(s1) * 3.0, spiking=self.readout == "spike")
        self._rates = {"fc1": float(s1.detach().mean())}
        if self.readout == "spike":
            self._rates["fc2"] = float(out.detach().mean())
        self._rates["overall"] = sum(self._rates.values()) / len(self._rates)
        return out


@dataclasses.dataclass
class TinyData:
    train: Any
    val: Any
    test: Any
    input_shape: tuple[int, ...]
    num_classes: int
    time_steps: int


class _TimeMajor:
    """Wraps a batch-major loader into time-major batches, as the harness's loaders are."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader

    def __iter__(self):
        for x, y in self.loader:
            yield x.transpose(0, 1).contiguous(), y

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def num_samples(self) -> int:
        return len(self.loader.dataset)


class ShuffledByEpoch:
    """Time-major batches reshuffled per epoch from (seed, epoch), like the harness's loaders:
    ``set_epoch`` picks the epoch, otherwise each pass counts one up."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, seed: int = 0) -> None:
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.epoch = 0
        self.epochs_seen: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        self.epochs_seen.append(epoch)
        order = torch.randperm(len(self.y), generator=torch.Generator().manual_seed(
            1000 * self.seed + epoch))
        for i in range(0, len(order), self.batch_size):
            idx = order[i:i + self.batch_size]
            yield self.x[idx].transpose(0, 1).contiguous(), self.y[idx]

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)


def tiny_data(n: int = 96, t: int = 4, features: int = 8, classes: int = 3,
              seed: int = 0, batch_size: int = 16) -> TinyData:
    g = torch.Generator().manual_seed(seed)
    centers = torch.rand(classes, features, generator=g)
    y = torch.arange(n) % classes
    x = (torch.rand(n, t, features, generator=g) < centers[y].unsqueeze(1) * 0.8).float()
    parts = [slice(0, n // 2), slice(n // 2, 3 * n // 4), slice(3 * n // 4, n)]
    train = ShuffledByEpoch(x[parts[0]], y[parts[0]], batch_size, seed)
    val, test = (_TimeMajor(DataLoader(TensorDataset(x[s], y[s]), batch_size=batch_size))
                 for s in parts[1:])
    return TinyData(train, val, test, input_shape=(features,), num_classes=classes,
                    time_steps=t)


def tiny_cfg(epochs: int = 4, optimizer: Any = "adam", factors: dict | None = None,
             **train: Any) -> Any:
    """A RunConfig for the tiny model: one thread (the tiny nets gain nothing from two)."""
    from harness.config import RunConfig

    return RunConfig.from_dict({"train": {"epochs": epochs, "lr": 0.01, "num_threads": 1,
                                          **train},
                                "factors": {"optimizer": optimizer, **(factors or {})}})


class Recorder(L.Callback):
    """Records, for every training step, the epoch and the rule of the optimizer in use."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, str]] = []
        self.classes: list[type] = []
        self.groups: list[list[dict[str, Any]]] = []

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any,
                             batch_idx: int) -> None:
        from tricks.optimizer import optimizer_kind

        opt = trainer.optimizers[0]
        self.steps.append((trainer.current_epoch, optimizer_kind(opt)))
        self.classes.append(type(opt))
        self.groups.append([{k: v for k, v in g.items() if k != "params"}
                            for g in opt.param_groups])
