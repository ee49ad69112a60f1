"""A preempted run resumes bit-exactly: stop after epoch 2 of 4 (checkpoint at the epoch end),
resume from the checkpoint, and end with the metrics and curves of an uninterrupted run.

Gradient noise drawn from the global torch generator makes the run depend on the random state
too, which the checkpoint carries (without it the resumed run would differ)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import lightning as L
import torch
from _train_tiny import TinyNet, tiny_cfg, tiny_data

from harness.run.checkpoint import EpochCurves, Preemption, checkpoint_epoch
from harness.run.train import train_run

TIMING = {"train_time_s"}


class GradNoise(L.Callback):
    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        for p in pl_module.parameters():
            if p.grad is not None:
                p.grad.add_(torch.randn_like(p.grad), alpha=1e-2)


class StopAfter(L.Callback):
    """Stands in for SIGTERM: asks for a stop during epoch ``epoch`` (0-based)."""

    def __init__(self, stop: threading.Event, epoch: int) -> None:
        self.stop, self.epoch = stop, epoch

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        if trainer.current_epoch == self.epoch:
            self.stop.set()


def _run(cfg: Any, callbacks: list[Any], **kw: Any) -> Any:
    torch.manual_seed(cfg.train.seed)
    return train_run(cfg, model=TinyNet(), data=tiny_data(), callbacks=callbacks, **kw)


def _same(a: dict[str, float], b: dict[str, float]) -> None:
    assert set(a) == set(b)
    for k in a:
        if k not in TIMING:
            assert a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]), k


def test_interrupt_after_epoch_2_of_4_and_resume_is_bit_exact(tmp_path: Path) -> None:
    cfg = tiny_cfg(epochs=4, optimizer={"name": "hybrid", "switch_at": 2})
    never = threading.Event()
    full = _run(cfg, [GradNoise(), Preemption(tmp_path / "full.ckpt", stop=never,
                                                 every_s=1e9)])
    assert full.status == "complete"
    assert not (tmp_path / "full.ckpt").exists()  # no signal, no period elapsed: no file

    ckpt = tmp_path / "run.ckpt"
    stop = threading.Event()
    written: list[int] = []
    first = _run(cfg, [GradNoise(), StopAfter(stop, 1),
                       EpochCurves(lambda e, v: written.append(e)),
                       Preemption(ckpt, stop=stop, every_s=1e9)])
    assert first.status == "interrupted"
    assert checkpoint_epoch(ckpt) == 2
    assert len(first.curves["val_acc"]) == 2

    resumed = _run(cfg, [GradNoise(), EpochCurves(lambda e, v: written.append(e)),
                         Preemption(ckpt, stop=threading.Event(), every_s=1e9)],
                   ckpt_path=str(ckpt))
    assert resumed.status == "complete"
    assert written == [0, 1, 2, 3]  # every epoch written once, none repeated on resume
    assert resumed.curves == full.curves
    _same(resumed.metrics, full.metrics)


def test_periodic_checkpoint_and_unreadable_file(tmp_path: Path) -> None:
    cfg = tiny_cfg(epochs=2)
    cb = Preemption(tmp_path / "p.ckpt", stop=threading.Event(), every_s=0.0)
    assert _run(cfg, [cb]).status == "complete"
    assert cb.saves == 2 and checkpoint_epoch(tmp_path / "p.ckpt") == 2
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    assert checkpoint_epoch(tmp_path / "bad.ckpt") is None
    assert checkpoint_epoch(tmp_path / "missing.ckpt") is None
