"""Crash and resume a run with an optimizer switch, before and after it (as Lightning's SWA)."""

from __future__ import annotations

import glob
import os
from typing import Any

import lightning as L
import pytest
import torch
from _train_tiny import Recorder, TinyNet, tiny_cfg, tiny_data

from harness.config import RunConfig
from harness.run.train import train_run


class Crash(Exception):
    """Stands in for a killed worker."""


class CrashAt(L.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        if trainer.current_epoch == self.epoch:
            raise Crash


def _uninterrupted(cfg: RunConfig, tmp: str) -> tuple[Recorder, Any, TinyNet]:
    rec = Recorder()
    torch.manual_seed(cfg.train.seed)
    model = TinyNet()
    result = train_run(cfg, model=model, data=tiny_data(), callbacks=[rec],
                       ckpt_dir=os.path.join(tmp, "full"))
    return rec, result, model


@pytest.mark.parametrize(("optimizer", "crash"), [
    ({"name": "hybrid", "switch_at": 2}, 1),   # crash before the switch
    ({"name": "hybrid", "switch_at": 2}, 3),   # crash after the switch
    ({"name": "swats", "eps": 1.0}, 2),        # SWATS switched itself at its second step
])
def test_resume_before_and_after_the_switch_repeats_the_uninterrupted_run(
        tmp_path: Any, optimizer: dict, crash: int) -> None:
    cfg = tiny_cfg(epochs=4, optimizer=optimizer)
    full_rec, full, full_model = _uninterrupted(cfg, str(tmp_path))

    first = Recorder()
    torch.manual_seed(cfg.train.seed)
    with pytest.raises(Crash):
        train_run(cfg, model=TinyNet(), data=tiny_data(), callbacks=[first, CrashAt(crash)],
                  ckpt_dir=str(tmp_path / "crashed"))
    (ckpt,) = glob.glob(str(tmp_path / "crashed" / f"epoch={crash - 1}-*.ckpt"))
    second = Recorder()
    torch.manual_seed(123)  # the resumed run must not depend on a fresh initialization
    model = TinyNet()
    data = tiny_data()
    resumed = train_run(cfg, model=model, data=data, callbacks=[second], ckpt_path=ckpt,
                        ckpt_dir=str(tmp_path / "resumed"))

    # The resumed run trains epochs crash..3 on those epochs' shuffles, not epoch 0's again.
    assert data.train.epochs_seen == list(range(crash, 4))
    assert first.steps + second.steps == full_rec.steps
    assert [c.__name__ for c in first.classes + second.classes] == [
        c.__name__ for c in full_rec.classes]
    for p, q in zip(model.parameters(), full_model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert resumed.curves == full.curves
    assert resumed.metrics["switch_epoch"] == full.metrics["switch_epoch"]
    assert resumed.metrics["test_acc"] == full.metrics["test_acc"]


