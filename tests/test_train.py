"""One training run: optimizer switches seen from inside training, resume, losses, divergence."""

from __future__ import annotations

import math
import signal
from typing import Any

import lightning as L
import pytest
import torch
from _train_tiny import Recorder, TinyNet, tiny_cfg, tiny_data

import tricks
from harness.config import RunConfig
from harness.errors import ConfigError
from harness.run.switch import OptimizerSwitch
from harness.run.train import format_metrics, train_run


def _run(cfg: RunConfig, **kw: Any) -> Any:
    torch.manual_seed(cfg.train.seed)
    return train_run(cfg, model=TinyNet(binary=True, readout=cfg.level("loss").readout),
                     data=tiny_data(), **kw)


def test_hybrid_is_adam_before_the_switch_epoch_and_sgd_from_it_on() -> None:
    rec = Recorder()
    cfg = tiny_cfg(epochs=4, optimizer={"name": "hybrid", "switch_at": 2, "sgd_lr": 0.05})
    result = _run(cfg, callbacks=[rec])
    assert result.status == "complete"
    assert len(rec.steps) == 4 * 3  # 3 batches per epoch
    for (epoch, kind), cls in zip(rec.steps, rec.classes):
        assert kind == ("adam" if epoch < 2 else "sgd")
        assert issubclass(cls, torch.optim.Adam if epoch < 2 else torch.optim.SGD)
    assert result.metrics["switch_epoch"] == 2 and result.metrics["switch_lr"] == 0.05
    assert result.curves["lr"] == [0.01, 0.01, 0.05, 0.05]


def test_hybrid_auto_rate_is_the_swats_projection_and_the_schedule_continues() -> None:
    cfg = tiny_cfg(epochs=4, optimizer={"name": "hybrid", "switch_at": 0.5},
                 factors={"lr_schedule": {"name": "exponential", "gamma": 0.5}})
    result = _run(cfg)
    lr = result.curves["lr"]
    assert lr[:2] == pytest.approx([0.01, 0.005])
    # After the switch the SGD base rate b continues the same multiplier: b * 0.5^e.
    assert lr[3] == pytest.approx(lr[2] * 0.5)
    assert result.metrics["switch_lr"] == pytest.approx(lr[2]) and lr[2] != 0.0025


def test_swats_switch_is_recorded_from_inside_training() -> None:
    rec = Recorder()
    result = _run(tiny_cfg(epochs=2, optimizer={"name": "swats", "eps": 1.0}), callbacks=[rec])
    # A huge tolerance makes the first allowed step (k = 2) the switch: steps 1-2 are Adam.
    assert [k for _, k in rec.steps] == ["adam", "adam"] + ["sgd"] * 4
    assert result.metrics["switch_epoch"] == 0 and result.metrics["switch_lr"] > 0
    assert "switch_epoch" not in _run(tiny_cfg(epochs=1, optimizer="swats")).metrics


def test_best_epoch_and_test_samples_are_recorded() -> None:
    result = _run(tiny_cfg(epochs=3, optimizer={"name": "hybrid", "switch_at": 0.5}))
    val = result.curves["val_acc"]
    # 0-based, the earliest best (the weights the test accuracy comes from), like switch_epoch.
    assert result.metrics["best_epoch"] == val.index(max(val))
    hybrid = tricks.make("optimizer", {"name": "hybrid", "switch_at": 0.5})
    assert result.metrics["switch_epoch"] == hybrid.switch_epoch(3)
    assert result.metrics["test_samples"] == 24  # the last quarter of tiny_data's 96 samples


@pytest.mark.parametrize("loss", ["mse-rate", "ce-rate", "ce-count", "ce-membrane"])
def test_every_loss_level_trains_one_epoch(loss: str) -> None:
    torch.manual_seed(0)
    model = TinyNet(readout=tricks.make("loss", loss).readout)
    before = [p.detach().clone() for p in model.parameters()]
    result = train_run(tiny_cfg(epochs=1, factors={"loss": loss}), model=model, data=tiny_data())
    assert result.status == "complete", result.error
    assert math.isfinite(result.metrics["train_loss"]) and 0 <= result.metrics["test_acc"] <= 1
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


def test_same_config_and_seed_give_identical_results() -> None:
    cfg = tiny_cfg(epochs=2, optimizer={"name": "hybrid", "switch_at": 1})
    a, b = _run(cfg), _run(cfg)
    timing = {"train_time_s"}
    assert {k: v for k, v in a.metrics.items() if k not in timing} == {
        k: v for k, v in b.metrics.items() if k not in timing}
    assert a.curves == b.curves


class PoisonAt(L.Callback):
    """Sets the readout weights to NaN when an epoch starts: the loss becomes NaN."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        if trainer.current_epoch == self.epoch:
            with torch.no_grad():
                pl_module.model.fc2.weight.fill_(math.nan)


def test_a_diverging_run_fails_with_partial_curves() -> None:
    torch.manual_seed(0)
    result = train_run(tiny_cfg(epochs=3, factors={"loss": "ce-membrane"}),
                       model=TinyNet(binary=False, readout="membrane"), data=tiny_data(),
                       callbacks=[PoisonAt(1)])
    assert result.status == "failed" and "diverged" in result.error and "epoch 1" in result.error
    assert len(result.curves["train_loss"]) == 1 and len(result.curves["val_acc"]) == 1
    assert "test_acc" not in result.metrics
    huge = train_run(tiny_cfg(epochs=2, lr=1e30, optimizer="sgd",
                            factors={"loss": "ce-membrane"}),
                     model=TinyNet(binary=False, readout="membrane"), data=tiny_data())
    assert huge.status == "failed" and "diverged" in huge.error
    capped = _run(tiny_cfg(epochs=2, divergence_loss=1e-6))
    assert capped.status == "failed" and "divergence_loss" in capped.error


def test_bop_keeps_weights_binary_and_adam_trains_the_rest() -> None:
    rec = Recorder()
    torch.manual_seed(0)
    model = TinyNet()
    bn_before = model.bn.weight.detach().clone()
    result = train_run(tiny_cfg(epochs=2, optimizer={"name": "bop", "threshold": 1e-6,
                                                   "gamma": 0.01}),
                       model=model, data=tiny_data(), callbacks=[rec])
    assert result.status == "complete"
    assert {k for _, k in rec.steps} == {"adam+bop"}
    for layer in (model.fc1, model.fc2):
        assert set(layer.weight.detach().abs().unique().tolist()) == {1.0}
    assert not torch.equal(bn_before, model.bn.weight.detach())
    assert result.metrics["sign_flip_rate"] > 0


def test_weight_decay_spares_latent_binary_weights_when_asked() -> None:
    rec = Recorder()
    _run(tiny_cfg(epochs=1, weight_decay=0.01, weight_decay_binary=False), callbacks=[rec])
    decay = {g["binary"]: g["weight_decay"] for g in rec.groups[0]}
    assert decay == {True: 0.0, False: 0.01}


def test_metrics_and_curves() -> None:
    class Clip(L.Callback):
        value = None

        def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
            Clip.value = (trainer.gradient_clip_val, trainer.gradient_clip_algorithm)

    result = _run(tiny_cfg(epochs=3, grad_clip=0.5), callbacks=[Clip()])
    m, c = result.metrics, result.curves
    assert Clip.value == (0.5, "norm")
    assert set(c) == {"train_loss", "train_acc", "val_acc", "lr", "sign_flip_rate"}
    assert all(len(v) == 3 for v in c.values())
    assert m["val_acc_best"] == max(c["val_acc"]) and m["val_acc_last"] == c["val_acc"][-1]
    first = next(i for i, a in enumerate(c["val_acc"]) if a >= 0.95 * max(c["val_acc"]))
    assert m["epochs_to_95pct"] == first + 1
    assert m["train_loss"] == c["train_loss"][-1] and m["params"] == 8 * 16 + 2 * 16 + 16 * 3
    assert 0 < m["spike_rate"] < 1 and {"spike_rate/fc1", "spike_rate/fc2"} <= set(m)
    assert "switch_epoch" not in m and result.device == "cpu"
    table = format_metrics(result)
    assert "test_acc" in table and "val_acc" in table.splitlines()[-4]


def test_test_accuracy_uses_the_best_validation_weights() -> None:
    seen: dict[int, dict[str, torch.Tensor]] = {}

    class Snap(L.Callback):
        def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
            seen[trainer.current_epoch] = {k: v.clone() for k, v in
                                           pl_module.model.state_dict().items()}

    torch.manual_seed(0)
    model = TinyNet()
    result = train_run(tiny_cfg(epochs=3, lr=0.05), model=model, data=tiny_data(),
                       callbacks=[Snap()])
    best = result.curves["val_acc"].index(max(result.curves["val_acc"]))
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, seen[best][k], rtol=0, atol=0)


def test_switch_state_round_trip() -> None:
    sw = OptimizerSwitch(tricks.make("optimizer", "hybrid"), epochs=6)
    sw.load_state_dict({"phase": 1, "sgd_base_lr": 0.1, "switch_epoch": 3, "switch_lr": 0.1})
    assert sw.state_dict() == {"phase": 1, "sgd_base_lr": 0.1, "switch_epoch": 3,
                               "switch_lr": 0.1}
    sw.load_state_dict({})  # an older checkpoint without these keys
    assert sw.phase == 0 and sw.switch_at == 3


def test_ctrl_c_reaches_the_caller_and_its_sigint_handler_survives() -> None:
    class Interrupt(L.Callback):
        def on_train_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
            raise KeyboardInterrupt

    def handler(signum: int, frame: Any) -> None:
        raise AssertionError("not called")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            _run(tiny_cfg(epochs=1), callbacks=[Interrupt()])
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_val_acc_reaches_callbacks_in_the_same_epoch() -> None:
    # The study's pruner reads trainer.callback_metrics["val_acc"] in its epoch-end hook.
    seen: list[float] = []

    class Reader(L.Callback):
        def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
            seen.append(float(trainer.callback_metrics["val_acc"]))

    result = _run(tiny_cfg(epochs=2), callbacks=[Reader()])
    assert seen == pytest.approx(result.curves["val_acc"])


@pytest.mark.parametrize(("key", "value"), [("epochs", 0), ("lr", 0.0), ("grad_clip", -1.0),
                                            ("weight_decay", -0.1), ("num_threads", 0)])
def test_bad_training_parameters_are_user_errors(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"'train.{key}' must be"):
        _run(tiny_cfg(**{key: value}))
