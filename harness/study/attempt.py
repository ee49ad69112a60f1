"""One attempt at one claimed run: train under a heartbeat, resume from its checkpoint, record.

:func:`record` is the single place a run's outcome is written (and where follow-up work on a
finished run, such as keeping its weights, belongs).
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from harness.deploy.weights import keep_best
from harness.errors import UserError
from harness.store import claims
from tricks._registry import TrickError

__all__ = ["Attempt", "checkpoint_path", "record", "run_attempt"]


@dataclasses.dataclass
class Attempt:
    """What every attempt of one worker shares."""

    opts: Any  # WorkerOptions
    engine: Any
    worker: str
    host: str
    versions: dict[str, Any]
    run_fn: Callable[..., Any]
    signals: Any  # harness.study.worker.Signals
    #: The run function is Lightning's (train_run): give it checkpoint and curve callbacks.
    lightning: bool = True


class _Heartbeat(threading.Thread):
    def __init__(self, engine: Any, claim: claims.Claim, worker: str, every_s: float) -> None:
        super().__init__(daemon=True, name="bsnn-heartbeat")
        self.engine, self.claim, self.worker, self.every_s = engine, claim, worker, every_s
        self.done = threading.Event()
        self.lost = False

    def run(self) -> None:
        while not self.done.wait(self.every_s):
            try:
                if not claims.heartbeat(self.engine, self.claim, self.worker):
                    self.lost = True
                    return
            except Exception:  # noqa: BLE001 - a transient DB error must not kill the run
                continue


def checkpoint_path(folder: str, study: str, claim: claims.Claim) -> Path:
    """``<folder>/<study>/<run id>.ckpt``; the study name made safe as a folder name."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", study).strip("._") or "study"
    return Path(folder) / safe / f"run-{claim.run_id}.ckpt"


def _pruning_callbacks(opts: Any, claim: claims.Claim, cfg: Any) -> list[Any]:
    if opts.pruning == "none" or claim.trial_number is None:
        return []
    if opts.pruning_seed is not None and cfg.train.seed != opts.pruning_seed:
        return []
    from harness.study.trials import make_pruning_callback

    return [make_pruning_callback(opts.url, opts.study_name, claim.trial_number, opts.pruning)]


def _config(opts: Any, claim: claims.Claim) -> Any:
    from harness.config import RunConfig

    data = dict(claim.config)
    if opts.device is not None:
        # The device is where the run happens, not what it computes (recorded in `device`).
        data["train"] = {**(data.get("train") or {}),
                         "accelerator": "cpu" if opts.device == "cpu" else "gpu"}
    return RunConfig.from_dict(data)


def _outcome(result: Any) -> dict[str, Any]:
    return dict(status=getattr(result, "status", "failed"),
                metrics=dict(getattr(result, "metrics", {}) or {}),
                curves=dict(getattr(result, "curves", {}) or {}),
                error=getattr(result, "error", None),
                wall_time_s=getattr(result, "wall_time_s", None),
                device=getattr(result, "device", None))


def _failure(exc: BaseException, signals: Any) -> dict[str, Any]:
    empty = dict(metrics={}, curves={}, wall_time_s=None, device=None)
    if signals.requested is not None:
        name = signal.Signals(signals.requested).name
        return dict(status="interrupted",
                    error=f"interrupted ({name}); re-run the command to resume", **empty)
    if isinstance(exc, UserError | TrickError):
        # The user's setting, not a bug: the message says it all, no traceback.
        return dict(status="failed", error=f"{type(exc).__name__}: {exc}", **empty)
    if isinstance(exc, Exception):
        tb = traceback.format_exception(exc)
        return dict(status="failed", error=f"{type(exc).__name__}: {exc}\n{''.join(tb[-6:])}",
                    **empty)
    raise exc


def run_attempt(att: Attempt, claim: claims.Claim) -> None:
    """Train ``claim``'s run (from its checkpoint when there is one) and record the outcome."""
    opts, signals = att.opts, att.signals
    beat = _Heartbeat(att.engine, claim, att.worker, opts.heartbeat_s)
    beat.start()
    started = time.perf_counter()
    ckpt = checkpoint_path(opts.checkpoints, opts.study_name, claim)
    resumed: int | None = None
    result: Any = None
    try:
        cfg = _config(opts, claim)
        callbacks = _pruning_callbacks(opts, claim, cfg)
        kwargs: dict[str, Any] = {}
        if att.lightning:
            callbacks += _training_callbacks(att, claim, ckpt)
            resumed = _resume_epoch(ckpt)
            if resumed is not None:
                kwargs["ckpt_path"] = str(ckpt)
        signals.in_run = True
        try:
            if signals.requested is not None:
                # A signal arrived while this run was being claimed: hand it back untouched.
                raise KeyboardInterrupt
            result = att.run_fn(cfg, progress=False, callbacks=callbacks, **kwargs)
        finally:
            signals.in_run = False
        outcome = _outcome(result)
        if outcome["status"] == "interrupted" and signals.requested is not None:
            name = signal.Signals(signals.requested).name
            outcome["error"] = (f"interrupted ({name}): {outcome['error']}; the next worker "
                                f"resumes from the checkpoint")
        if any(getattr(cb, "pruned", False) for cb in callbacks):
            outcome["status"] = "pruned"
    except BaseException as exc:  # noqa: BLE001 - every outcome of a run is recorded
        outcome = _failure(exc, signals)
    finally:
        beat.done.set()
    if outcome["wall_time_s"] is None:
        outcome["wall_time_s"] = time.perf_counter() - started
    if outcome["status"] not in ("complete", "failed", "interrupted", "pruned"):
        outcome["error"] = f"run function returned unknown status {outcome['status']!r}"
        outcome["status"] = "failed"
    record(att, claim, outcome, result=result if outcome["status"] == "complete" else None,
           resumed_from_epoch=resumed, checkpoint=ckpt)


def _training_callbacks(att: Attempt, claim: claims.Claim, ckpt: Path) -> list[Any]:
    from harness.run.checkpoint import EpochCurves, Preemption

    def write(epoch: int, values: Mapping[str, float]) -> None:
        try:
            claims.write_epoch(att.engine, claim, att.worker, epoch, values)
        except Exception:  # noqa: BLE001 - live curves are a display; the result rewrites them
            pass

    return [EpochCurves(write),
            Preemption(ckpt, stop=att.signals.preempt, every_s=att.opts.checkpoint_every_s)]


def _resume_epoch(ckpt: Path) -> int | None:
    if not ckpt.is_file():
        return None
    from harness.run.checkpoint import checkpoint_epoch

    return checkpoint_epoch(ckpt)


def record(att: Attempt, claim: claims.Claim, outcome: Mapping[str, Any], *, result: Any,
           resumed_from_epoch: int | None, checkpoint: Path) -> bool:
    """Write one attempt's outcome (only while this worker still holds the run), keep a complete
    run's best weights (``result``: the run function's result, None unless complete), and drop
    the checkpoint of a run done for good unless the user keeps checkpoints."""
    written = claims.record_result(att.engine, claim, att.worker, host=att.host,
                                   versions=att.versions, resumed_from_epoch=resumed_from_epoch,
                                   **outcome)
    keep_best(att.engine, att.opts.url, att.opts.study_name, claim, att.worker, result)
    if written and outcome["status"] != "interrupted" and not att.opts.keep_checkpoints:
        try:
            os.unlink(checkpoint)
        except FileNotFoundError:
            pass
    return written
