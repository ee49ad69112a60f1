"""A six-factor study shaped like studies/full_factorial.yaml, written through the ORM with
deterministic metrics and curves: the widest tables and busiest figures a shipped study makes,
for the LaTeX and browser checks of the report (no training)."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

import tricks
from harness.store import control
from harness.store.schema import (
    SCHEMA_VERSION,
    Base,
    Run,
    RunCurve,
    RunFactor,
    RunMetric,
    SchemaInfo,
    Study,
    encode_float,
)
from harness.study.factors import value_label

WIDE_SPEC: dict[str, Any] = {
    "study": "full_factorial",
    "design": "full-factorial",
    "dataset": {"name": "digits-dvs"},
    "train": {"seeds": [0, 1, 2]},
    "factors": {
        "binarization": ["fp32", "ste-clip"],
        "optimizer": ["adam", {"name": "sgd", "lr": 0.5}, {"name": "hybrid", "switch_at": 0.33},
                      {"name": "hybrid", "switch_at": 0.67}],
        "shift_bn": ["off", "on"],
        "surrogate": ["atan", "rectangle"],
        "lr_schedule": ["constant", "cosine"],
        "augmentation": ["none", {"name": "random-crop", "pad": 2}],
    },
}

#: Effect of each level index per factor (accuracy, fractions).
_EFFECT = {"binarization": [0, -0.13], "optimizer": [0, -0.10, -0.05, -0.01],
           "shift_bn": [0, -0.03], "surrogate": [0, -0.12], "lr_schedule": [0, -0.012],
           "augmentation": [0, -0.09]}


def level_label(factor: str, level: Any) -> str:
    """The label the coordinator stores for a level (trick registry or plain value)."""
    if factor in tricks.registry():
        return tricks.make(factor, level).label()
    return value_label(level)


def make_wide_study(url: str, spec: dict[str, Any] = WIDE_SPEC, epochs: int = 4) -> None:
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    labels = {f: [level_label(f, v) for v in lv] for f, lv in spec["factors"].items()}
    factors = list(labels)
    t0 = dt.datetime(2026, 11, 28, 9, 0, 0)
    with Session(engine) as s, s.begin():
        if s.get(SchemaInfo, 1) is None:
            s.add(SchemaInfo(id=1, version=SCHEMA_VERSION))
        study = Study(name=spec["study"], design=spec["design"], spec=spec, spec_hash="w" * 64)
        s.add(study)
        s.flush()
        # As the coordinator's registration writes them (harness.study.register).
        control.write_levels(s, study.id, labels, {})
        position = 0
        for idx in itertools.product(*(range(len(labels[f])) for f in factors)):
            for seed in spec["train"]["seeds"]:
                noise = ((7 * sum(idx) + 3 * idx[1] + 5 * seed + position) % 13 - 6) / 1000
                acc = 0.95 + sum(_EFFECT[f][i] for f, i in zip(factors, idx)) / 2 + noise
                levels = {f: labels[f][i] for f, i in zip(factors, idx)}
                key = "|".join(f"{f}={levels[f]}" for f in sorted(levels)) + f"|seed={seed}"
                run = Run(study_id=study.id, run_key=key, status="complete", seed=seed,
                          position=position, attempts=1,
                          config={"model": {"arch": "conv"}, "train": {"seed": seed}},
                          started_at=t0 + dt.timedelta(seconds=6 * position),
                          finished_at=t0 + dt.timedelta(seconds=6 * position + 5),
                          wall_time_s=5.0 + (position % 3), host="ci", device="cpu",
                          versions={"python": "3.11.7", "torch": "2.13.0"})
                s.add(run)
                s.flush()
                s.add_all(RunFactor(run_id=run.id, factor=f, level=lab)
                          for f, lab in levels.items())
                binary = idx[0] == 1
                values = {
                    "test_acc": acc, "test_acc_shift_bn": acc - 0.04, "val_acc_best": acc + 0.01,
                    "epochs_to_95pct": 3.0 + idx[1] % 2, "spike_rate": 0.12 + 0.01 * idx[3],
                    "synops_per_sample": 2.0e5 * (1 + 0.1 * idx[3]),
                    "energy_uj_per_sample": (0.9 if binary else 4.6) * 0.2 * (1 + 0.1 * idx[3]),
                    "weight_memory_bits": 30_000.0 * (1 if binary else 32) + 640 * idx[2],
                    "weight_memory_ratio": (1 / 32 if binary else 1.0),
                    "train_time_s": 4.0 + 0.1 * idx[1], "params": 30_000.0,
                    "switch_epoch": 1.0 if idx[1] == 2 else (2.0 if idx[1] == 3 else float("nan")),
                }
                for name, v in values.items():
                    val, special = encode_float(v)
                    s.add(RunMetric(run_id=run.id, name=name, value=val, special=special))
                for e in range(epochs):
                    v = acc * (0.6 + 0.4 * (e + 1) / epochs) + (0.004 if e == epochs - 2 else 0)
                    s.add(RunCurve(run_id=run.id, name="val_acc", epoch=e, value=v))
                position += 1
    engine.dispose()
