"""The optimizer-switch callback: the phase of a hybrid/SWATS optimizer, kept in the checkpoint."""

from __future__ import annotations

from typing import Any

import lightning as L

from tricks.optimizer import Optimizer, current_lr, optimizer_kind


class OptimizerSwitch(L.Callback):
    """Drives an optimizer level's phases; its state (the phase) is saved in checkpoints.

    A scheduled switch (``hybrid``) happens at the first training epoch ``>=`` the switch epoch
    that starts in phase 0, so a run resumed past the switch epoch still switches, and one
    resumed after the switch keeps SGD. A switch inside the optimizer (``swats``) is only
    observed and recorded.
    """

    def __init__(self, level: Optimizer, *, epochs: int) -> None:
        self.level = level
        self.switch_at = level.switch_epoch(epochs)
        self.phase = 0
        self.sgd_base_lr: float | None = None
        self.switch_epoch: int | None = None
        self.switch_lr: float | None = None

    @property
    def state_key(self) -> str:
        return self._generate_state_key(level=self.level.label())

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.switch_at is None or self.phase != 0 or trainer.current_epoch < self.switch_at:
            return
        old = trainer.optimizers[0]
        factor = 1.0
        if trainer.lr_scheduler_configs:
            base = trainer.lr_scheduler_configs[0].scheduler.base_lrs[0]
            factor = old.param_groups[0]["lr"] / base if base else 1.0
        sgd_base = getattr(self.level, "sgd_base_lr", None)
        self.sgd_base_lr = (sgd_base(old, schedule_factor=factor) if sgd_base is not None
                            else None)
        self.phase = 1
        # configure_optimizers asks for self.phase; editing trainer.optimizers in place would
        # keep the old optimizer's class and state.
        trainer.strategy.setup_optimizers(trainer)
        self.switch_epoch = trainer.current_epoch
        self.switch_lr = current_lr(trainer.optimizers[0])

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.switch_epoch is None and self.switch_at is None and len(self.level.phases) > 1:
            opt = trainer.optimizers[0]
            if optimizer_kind(opt) == self.level.phases[-1]:
                self.phase = len(self.level.phases) - 1
                self.switch_epoch = trainer.current_epoch
                self.switch_lr = current_lr(opt)

    def state_dict(self) -> dict[str, Any]:
        return {"phase": self.phase, "sgd_base_lr": self.sgd_base_lr,
                "switch_epoch": self.switch_epoch, "switch_lr": self.switch_lr}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.phase = state_dict.get("phase", 0)
        self.sgd_base_lr = state_dict.get("sgd_base_lr")
        self.switch_epoch = state_dict.get("switch_epoch")
        self.switch_lr = state_dict.get("switch_lr")
