"""Preemption-safe training: a checkpoint on signal (and every few minutes), live curves.

Both callbacks subclass Lightning's ``Checkpoint``: Lightning calls such callbacks' epoch-end
hooks *after* the LightningModule's own, which is where :class:`~harness.run.train.BSNNModule`
completes the epoch's curves; a checkpoint taken there resumes at the next epoch with every
state the run depends on (weights, optimizer, schedule, optimizer-switch phase, curves, best
weights; the data order is drawn from (seed, epoch)), and the torch random state on top.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint

__all__ = ["EpochCurves", "Preempted", "Preemption", "checkpoint_epoch"]


class Preempted(Exception):
    """Training stopped at an epoch end because a stop was requested; the checkpoint is saved."""

    def __init__(self, epochs_done: int, path: str) -> None:
        super().__init__(f"stopped after epoch {epochs_done}; checkpoint {path}")
        self.epochs_done = epochs_done
        self.path = path


class Preemption(Checkpoint):
    """Save ``path`` at the end of an epoch when ``stop`` is set (then raise
    :class:`Preempted`) or when ``every_s`` seconds of training passed since the last save."""

    def __init__(self, path: str | os.PathLike[str], *, stop: threading.Event,
                 every_s: float) -> None:
        self.path = str(path)
        self.stop = stop
        self.every_s = every_s
        self._last = time.monotonic()
        self.saves = 0
        #: The SIGTERM handler outside the fit (the study worker's), called on from ours.
        self._outer = signal.getsignal(signal.SIGTERM)

    @property
    def state_key(self) -> str:
        return "bsnn_preemption"

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._last = time.monotonic()
        # Lightning's own SIGTERM handler (installed by fit, restored after it) stops training
        # at the next batch with SystemExit, before any epoch end could checkpoint: take
        # SIGTERM over for the fit, so the run stops at the end of its epoch instead.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self.stop.set()
        if callable(self._outer):
            self._outer(signum, frame)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        stopping = self.stop.is_set()
        if stopping or time.monotonic() - self._last >= self.every_s:
            self.save(trainer)
        if stopping:
            raise Preempted(trainer.current_epoch + 1, self.path)

    def save(self, trainer: L.Trainer) -> None:
        target = Path(self.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        trainer.save_checkpoint(str(tmp))
        os.replace(tmp, target)  # a reader never sees half a file
        self._last = time.monotonic()
        self.saves += 1

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"torch_rng": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "torch_rng" in state_dict:
            torch.set_rng_state(state_dict["torch_rng"])
        if "cuda_rng" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda_rng"])


class EpochCurves(Checkpoint):
    """Hand each finished epoch's curve values to ``write(epoch, {name: value})``: the study
    worker stores them at once, so progress shows while a run trains."""

    def __init__(self, write: Callable[[int, Mapping[str, float]], Any]) -> None:
        self.write = write

    @property
    def state_key(self) -> str:
        return "bsnn_epoch_curves"

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        history: Mapping[str, list[float]] = getattr(pl_module, "history", {})
        epoch = trainer.current_epoch
        values = {k: v[epoch] for k, v in history.items() if len(v) > epoch}
        if values:
            self.write(epoch, values)


def checkpoint_epoch(path: str | os.PathLike[str]) -> int | None:
    """How many epochs the checkpoint at ``path`` has finished, or None if there is none
    readable (a run then starts from scratch)."""
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=False, mmap=True)
    except (OSError, RuntimeError, EOFError, ValueError):
        return None
    epoch = ckpt.get("epoch")
    return None if epoch is None else int(epoch) + 1
