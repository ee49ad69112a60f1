"""One training run: a RunConfig in, a :class:`RunResult` (metrics, curves, status) out.

The run is a Lightning fit of :class:`BSNNModule`. The optimizer level builds the optimizer for
the phase that :class:`OptimizerSwitch` keeps in its checkpointed state, so a hybrid switch
survives a resume from before or after it; the learning-rate schedule is rebuilt on the new
optimizer and advanced to the current epoch, so it continues where it was.

Per epoch the curves ``train_loss``, ``train_acc``, ``val_acc``, ``lr`` (in effect at the
epoch's start, after any switch) and ``sign_flip_rate`` (fraction of binary weights whose sign
changed during the epoch) are recorded. At the end, the best-validation weights (kept in memory,
the earliest best on ties) are evaluated on the test split (``test_acc``) and after the
post-hoc shift-BN conversion (``test_acc_shift_bn``, models with BN only).
``epochs_to_95pct`` is the 1-based number of epochs after which validation accuracy first
reached 95% of the run's best. A NaN/inf training loss, or one above
``train.divergence_loss``, stops the run as ``failed`` with the curves so far.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.plugins.environments import LightningEnvironment
from torch import Tensor, nn

from harness.config import RunConfig
from harness.errors import ConfigError
from harness.run.checkpoint import Preempted
from harness.run.evaluate import evaluate_test
from harness.run.switch import OptimizerSwitch
from tricks.optimizer import current_lr

__all__ = [
    "BSNNModule",
    "Diverged",
    "OptimizerSwitch",
    "RunResult",
    "binary_parameter_names",
    "format_metrics",
    "train_run",
]

CURVES = ("train_loss", "train_acc", "val_acc", "lr", "sign_flip_rate")


@dataclasses.dataclass
class RunResult:
    #: "interrupted": stopped at an epoch end by :class:`harness.run.checkpoint.Preemption`.
    status: Literal["complete", "failed", "interrupted"]
    metrics: dict[str, float]
    curves: dict[str, list[float]]
    error: str | None
    wall_time_s: float
    device: str
    #: The best-validation weights (CPU tensors) of a complete run, kept for export.
    best_state: dict[str, Tensor] | None = None
    #: Entries of ``best_state`` whose forward uses only their sign (may be stored as bits).
    sign_only: tuple[str, ...] = ()


class Diverged(RuntimeError):
    """The training loss became NaN/inf or exceeded ``train.divergence_loss``."""


def binary_parameter_names(model: nn.Module) -> set[str]:
    """Names of the latent binary weights of ``model`` (what Bop owns and flips are counted on).

    A module's ``weight`` is binary when the module has a weight quantizer
    (``module.weight_quantizer`` not None) that binarizes (``module.binary`` not False): the
    synaptic layers of ``models/`` (``harness.run.build.binary_parameters``) and any hand-made
    module following the same convention.
    """
    names = set()
    for mod_name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if (getattr(module, "weight_quantizer", None) is not None
                and getattr(module, "binary", True) is True and isinstance(weight, nn.Parameter)):
            names.add(f"{mod_name}.weight" if mod_name else "weight")
    return names


class _SignFlips:
    """Fraction of binary weights whose sign changed between two snapshots."""

    def __init__(self, params: Sequence[Tensor]) -> None:
        self.params = list(params)
        self.signs: list[Tensor] = []

    def snapshot(self) -> None:
        self.signs = [p.detach() >= 0 for p in self.params]

    def rate(self) -> float:
        if not self.params or not self.signs:
            return math.nan  # no binary weight: a flip rate is undefined, not zero
        flipped = sum(int(((p.detach() >= 0) != s).sum()) for p, s in zip(self.params,
                                                                          self.signs))
        return flipped / sum(p.numel() for p in self.params)


class BSNNModule(L.LightningModule):
    """The LightningModule of one run: loss level, optimizer level, schedule, curves."""

    def __init__(self, cfg: RunConfig, model: nn.Module, *, switch: OptimizerSwitch) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = model
        self.switch = switch
        self.loss_level = cfg.level("loss")
        self.binarization = cfg.level("binarization")
        # The model, not the binarization level, knows which layers it quantized.
        binary = binary_parameter_names(model)
        self.binary_names = binary
        self.flips = _SignFlips([p for n, p in model.named_parameters() if n in binary])
        self.history: dict[str, list[float]] = {k: [] for k in CURVES}
        self.best_val = -math.inf
        self.best_state: dict[str, Tensor] | None = None
        self.final: dict[str, float] = {}
        self.synops: dict[str, float] | None = None
        self.test_loader: Any = None
        self._sums = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, samples
        self._val = torch.zeros(2, dtype=torch.float64)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def is_binary(self, name: str, p: Tensor) -> bool:
        return name in self.binary_names

    def configure_optimizers(self) -> dict[str, Any]:
        tc = self.cfg.train
        opt = self.switch.level.build(
            list(self.model.named_parameters()), lr=tc.lr, weight_decay=tc.weight_decay,
            decay_binary=tc.weight_decay_binary, is_binary=self.is_binary,
            phase=self.switch.phase, sgd_lr=self.switch.sgd_base_lr)
        sched = self.cfg.level("lr_schedule").build(opt, epochs=tc.epochs,
                                                    start_epoch=self.trainer.current_epoch)
        # One named scheduler: the lr curve keeps one name across an optimizer switch.
        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": sched, "interval": "epoch", "name": "lr"}}

    def on_train_epoch_start(self) -> None:
        # The data's train loader draws epoch e's shuffle and augmentation from (seed, e);
        # Lightning only tells samplers the epoch, so a resumed run would replay epoch 0's.
        set_epoch = getattr(self.trainer.train_dataloader, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(self.current_epoch)
        self._sums.zero_()
        self.flips.snapshot()
        self.history["lr"].append(current_lr(self.trainer.optimizers[0]))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        out = self.model(x)
        loss = self.loss_level.loss(out, y)
        value = float(loss.detach())
        if not math.isfinite(value) or value > self.cfg.train.divergence_loss:
            raise Diverged(f"training loss {value:.4g} at epoch {self.current_epoch}, batch "
                           f"{batch_idx} (limit train.divergence_loss="
                           f"{self.cfg.train.divergence_loss:g})")
        correct = (self.loss_level.logits(out.detach()).argmax(-1) == y).sum()
        n = y.shape[0]
        self._sums += torch.tensor([value * n, float(correct), n], dtype=torch.float64)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.binarization.after_step(self.model)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        correct = (self.loss_level.logits(self.model(x)).argmax(-1) == y).sum()
        self._val += torch.tensor([float(correct), y.shape[0]], dtype=torch.float64)
        # Logged too (batch-size weighted mean = the epoch's accuracy) so that callbacks such as
        # the study's pruner read it from trainer.callback_metrics in their epoch-end hook.
        self.log("val_acc", correct.float() / y.shape[0], on_step=False, on_epoch=True,
                 batch_size=y.shape[0])

    def on_validation_epoch_start(self) -> None:
        self._val.zero_()

    def on_validation_epoch_end(self) -> None:
        acc = float(self._val[0] / self._val[1]) if self._val[1] else 0.0
        self.history["val_acc"].append(acc)
        if acc > self.best_val:
            self.best_val = acc
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def on_train_epoch_end(self) -> None:
        loss_sum, correct, n = self._sums.tolist()
        self.history["train_loss"].append(loss_sum / n if n else math.nan)
        self.history["train_acc"].append(correct / n if n else math.nan)
        self.history["sign_flip_rate"].append(self.flips.rate())

    def on_train_end(self) -> None:
        # Runs before Lightning's teardown moves the model back to the CPU.
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        if self.test_loader is None:
            return
        # test_acc, test_samples, spike rates, synops and test_acc_shift_bn in one pass over
        # the test set.
        metrics, self.synops = evaluate_test(self.model, self.test_loader, self.loss_level,
                                             self.device)
        self.final.update(metrics)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["bsnn"] = {"history": self.history, "best_val": self.best_val,
                              "best_state": self.best_state}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("bsnn") or {}
        self.history = {k: list(saved.get("history", {}).get(k, [])) for k in CURVES}
        self.best_val = saved.get("best_val", -math.inf)
        self.best_state = saved.get("best_state")


@contextlib.contextmanager
def _quiet(progress: bool) -> Iterator[None]:
    """Silence Lightning's per-Trainer banner and advice that a study would print 100s of times."""
    names = ["lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
             "lightning.fabric.utilities.seed"]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING if progress else logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*LeafSpec.*")
            warnings.filterwarnings("ignore", message=".*log_every_n_steps.*")
            # Each run is one process by design (the LightningEnvironment plugin below); the
            # checkpoint connector still probes for Slurm on every fit and would advise srun.
            warnings.filterwarnings("ignore", message=".*The `srun` command is available.*")
            yield
    finally:
        for lg, lvl in zip(loggers, levels):
            lg.setLevel(lvl)


def _summary(module: BSNNModule, switch: OptimizerSwitch, model: nn.Module,
             train_time_s: float) -> dict[str, float]:
    h = module.history
    m: dict[str, float] = {}
    if h["val_acc"]:
        best = max(h["val_acc"])
        m["val_acc_best"] = best
        m["val_acc_last"] = h["val_acc"][-1]
        m["epochs_to_95pct"] = float(next(i + 1 for i, a in enumerate(h["val_acc"])
                                          if a >= 0.95 * best))
        # 0-based like switch_epoch: the epoch whose weights are tested (earliest best).
        m["best_epoch"] = float(h["val_acc"].index(best))
    if h["train_loss"]:
        m["train_loss"] = h["train_loss"][-1]
        m["train_acc"] = h["train_acc"][-1]
        m["sign_flip_rate"] = h["sign_flip_rate"][-1]
    if switch.switch_epoch is not None:
        m["switch_epoch"] = float(switch.switch_epoch)
        m["switch_lr"] = float(switch.switch_lr) if switch.switch_lr is not None else math.nan
    m["train_time_s"] = train_time_s
    m["params"] = float(sum(p.numel() for p in model.parameters()))
    return m


def _check_train_config(tc: Any) -> None:
    """Range checks of ``train.*`` that RunConfig's type checks cannot express."""
    checks = [
        ("epochs", tc.epochs >= 1, "at least 1"),
        ("lr", math.isfinite(tc.lr) and tc.lr > 0, "a positive number"),
        ("weight_decay", math.isfinite(tc.weight_decay) and tc.weight_decay >= 0, ">= 0"),
        ("grad_clip", tc.grad_clip is None or tc.grad_clip > 0, "a positive number or null"),
        ("divergence_loss", tc.divergence_loss > 0, "a positive number"),
        ("num_threads", tc.num_threads is None or tc.num_threads >= 1, "at least 1 or null"),
    ]
    for key, ok, expected in checks:
        if not ok:
            raise ConfigError(f"'train.{key}' must be {expected}, got {getattr(tc, key)!r}")


def train_run(cfg: RunConfig, *, progress: bool = False, callbacks: Sequence[L.Callback] = (),
              ckpt_path: str | None = None, ckpt_dir: str | None = None,
              model: nn.Module | None = None, data: Any = None,
              on_module: Callable[[BSNNModule], None] | None = None) -> RunResult:
    """Train one run and return its result; a diverging run returns ``status="failed"``.

    Args:
        cfg: the run configuration.
        progress: show Lightning's progress bar.
        callbacks: extra Lightning callbacks (tests inspect the optimizer from inside).
        ckpt_path: resume from this Lightning checkpoint.
        ckpt_dir: save a checkpoint after every epoch here (none are written otherwise).
        model, data: use these instead of building them from ``cfg`` (tests, notebooks);
            ``data`` needs ``train``, ``val``, ``test`` loaders and ``input_shape``.
        on_module: called with the LightningModule before fitting.
    """
    start = time.perf_counter()
    tc = cfg.train
    _check_train_config(tc)
    if tc.num_threads is not None:
        torch.set_num_threads(tc.num_threads)
    L.seed_everything(tc.seed, workers=True, verbose=False)
    if data is None:
        from harness.data.pipeline import build_data

        data = build_data(cfg)
    if model is None:
        from harness.run.build import build_model

        model = build_model(cfg, input_shape=tuple(data.input_shape),
                            num_classes=data.num_classes,
                            readout=cfg.level("loss").readout,  # type: ignore[attr-defined]
                            time_steps=getattr(data, "time_steps", None))
    switch = OptimizerSwitch(cfg.level("optimizer"), epochs=tc.epochs)  # type: ignore[arg-type]
    module = BSNNModule(cfg, model, switch=switch)
    module.test_loader = data.test
    if on_module is not None:
        on_module(module)
    all_callbacks: list[L.Callback] = [switch, *callbacks]
    if ckpt_dir is not None:
        from lightning.pytorch.callbacks import ModelCheckpoint

        all_callbacks.append(ModelCheckpoint(dirpath=ckpt_dir, save_top_k=-1, every_n_epochs=1,
                                             save_last=True))
    status: Literal["complete", "failed", "interrupted"] = "complete"
    error = None
    device = "cpu"
    with _quiet(progress):
        trainer = L.Trainer(
            max_epochs=tc.epochs, accelerator=tc.accelerator, devices=1, logger=False,
            enable_checkpointing=any(isinstance(cb, Checkpoint) for cb in all_callbacks),
            enable_progress_bar=progress,
            enable_model_summary=False, num_sanity_val_steps=0, callbacks=all_callbacks,
            gradient_clip_val=tc.grad_clip, gradient_clip_algorithm="norm",
            deterministic="warn" if _uses_gpu(tc.accelerator) else None,
            default_root_dir=ckpt_dir, log_every_n_steps=1_000_000,
            # One process, one device: never let Lightning adopt a Slurm allocation (nor print
            # its srun advice on every run) because SLURM_* variables are set.
            plugins=[LightningEnvironment()])
        device = str(trainer.strategy.root_device)
        if device == "cpu":
            from models import fused

            fused.kernels()  # a first compile (once per machine) is not training time
        fit_start = time.perf_counter()
        sigint = _sigint_handler()
        try:
            trainer.fit(module, train_dataloaders=data.train, val_dataloaders=data.val,
                        ckpt_path=ckpt_path)
        except Diverged as exc:
            status, error = "failed", f"diverged: {exc}"
        except Preempted as exc:
            status, error = "interrupted", str(exc)
        except SystemExit:
            # Lightning turns Ctrl-C into sys.exit(1) and ignores SIGINT from then on; callers
            # (the study worker) expect the KeyboardInterrupt itself and their own handler.
            if trainer.interrupted:
                raise KeyboardInterrupt from None
            raise
        finally:
            if sigint is not None:
                signal.signal(signal.SIGINT, sigint)
        train_time_s = time.perf_counter() - fit_start
    metrics = _summary(module, switch, model, train_time_s)
    if status == "complete":
        from harness.run.costs import cost_metrics

        metrics.update(module.final)
        metrics.update(cost_metrics(model, synops=module.synops))
    curves = {k: list(v) for k, v in module.history.items()}
    best = module.best_state if status == "complete" else None
    return RunResult(status=status, metrics=metrics, curves=curves, error=error,
                     wall_time_s=time.perf_counter() - start, device=device,
                     best_state={k: v.cpu() for k, v in best.items()} if best else None,
                     sign_only=tuple(sorted(_sign_only_names(model))))


def _sign_only_names(model: nn.Module) -> set[str]:
    """Binary weights without a per-channel scale: their forward is ``sign(w)`` alone."""
    return {f"{name}.weight" for name, m in model.named_modules()
            if getattr(m, "binary", False) is True
            and getattr(m, "weight_quantizer", None) is not None
            and not getattr(m.weight_quantizer, "scale_per_channel", False)}


def _uses_gpu(accelerator: str) -> bool:
    """Whether deterministic algorithms are worth asking for.

    CPU kernels are deterministic for a fixed thread count already; on a GPU, Lightning's
    ``deterministic="warn"`` makes cuBLAS/cuDNN deterministic and warns about ops that are not.
    """
    if accelerator in ("gpu", "cuda"):
        return True
    return accelerator == "auto" and torch.cuda.is_available()


def _sigint_handler() -> Any:
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.getsignal(signal.SIGINT)


def format_metrics(result: RunResult) -> str:
    """A plain two-column table of a run's metrics, then its curves, for the CLI."""
    lines = [f"status: {result.status}   device: {result.device}   "
             f"wall time: {result.wall_time_s:.1f} s"]
    if result.error:
        lines.append(f"error: {result.error}")
    if result.metrics:
        width = max(len(k) for k in result.metrics)
        lines.append("")
        for key in sorted(result.metrics):
            v = result.metrics[key]
            whole = math.isfinite(v) and v == int(v) and abs(v) >= 1 and key != "switch_lr"
            text = f"{v:.0f}" if whole else f"{v:.4g}"
            lines.append(f"{key:<{width}}  {text}")
    epochs = max((len(v) for v in result.curves.values()), default=0)
    if epochs:
        names = [k for k in CURVES if result.curves.get(k)]
        lines.append("")
        lines.append("epoch  " + "  ".join(f"{n:>14}" for n in names))
        for e in range(epochs):
            row = [result.curves[n][e] if e < len(result.curves[n]) else math.nan for n in names]
            lines.append(f"{e + 1:>5}  " + "  ".join(f"{v:>14.4g}" for v in row))
    return "\n".join(lines)
