"""Seeds planned by precision: the rule's validation, its batches, resume, --max-runs, dry run.

Runs are stand-ins (``BSNN_BENCH_RUN_FN``): the claims, workers and result writes are the real
ones, and the outcome of run (optimizer level, seed) is known in closed form, so the seed count
a rule must stop at is computed here independently.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from scipy import stats
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from test_study_fakes import FakeResult

from harness.cli import main
from harness.errors import SpecError
from harness.store.schema import Run
from harness.study.spec import parse_spec

RUN_FN = "test_precision:slope_run"


def seed_slope(seed: int) -> float:
    return float(np.random.default_rng(1000 + seed).normal())


def slope_run(cfg: Any, *, progress: bool = False, callbacks: Any = ()) -> FakeResult:
    """Accuracy 0.8, sgd +3 points, plus a per-seed random slope of SD $SLOPE_SD for sgd."""
    import os

    sgd = cfg.labels()["optimizer"].startswith("sgd")
    sd = float(os.environ.get("SLOPE_SD", "0.001"))
    acc = 0.8 + (0.03 + sd * seed_slope(cfg.train.seed) if sgd else 0.0)
    return FakeResult("complete", {"test_acc": acc, "val_acc_best": acc}, {}, None, 0.0)


def write(path: Path, seeds: Any, name: str = "prec") -> Path:
    path.write_text(yaml.safe_dump({
        "study": name, "dataset": {"name": "digits-dvs", "limit": 16},
        "train": {"epochs": 1, "seeds": seeds},
        "factors": {"optimizer": ["adam", "sgd"], "lr_schedule": ["constant", "cosine"]}}))
    return path


def seeds_of(url: str) -> list[int]:
    engine = create_engine(url)
    with Session(engine) as s:
        out = sorted(set(s.scalars(select(Run.seed))))
        assert all(r.status == "complete" for r in s.scalars(select(Run)))
    engine.dispose()
    return out


def expected_stop(sd: float, start: int, step: int, top: int, hw: float) -> int:
    n = start
    while True:
        d = [sd * seed_slope(s) for s in range(n)]
        half = stats.t.ppf(0.975, n - 1) * np.std(d, ddof=1) / math.sqrt(n)
        if half <= hw or n >= top:
            return n
        n = min(n + step, top)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("BSNN_BENCH_RUN_FN", RUN_FN)
    return monkeypatch


def test_rule_validation() -> None:
    base = {"study": "s", "factors": {"optimizer": ["adam", "sgd"]}}
    ok = parse_spec({**base, "train": {"seeds": {"start": 4, "step": 2, "max": 8,
                                                 "half_width": 0.01, "first": 10}}})
    assert ok.seeds == (10, 11, 12, 13) and ok.seed_rule.max == 8
    assert ok.max_run_count() == 16 and ok.run_count() == 8
    bad = [({"start": 2, "step": 1, "max": 4, "half_width": 0.01}, "train.seeds.start"),
           ({"start": 4, "step": 1, "max": 3, "half_width": 0.01}, "train.seeds.max"),
           ({"start": 4, "step": 0, "max": 8, "half_width": 0.01}, "train.seeds.step"),
           ({"start": 4, "step": 1, "max": 8, "half_width": 0}, "train.seeds.half_width"),
           ({"start": 4, "step": 1, "max": 8}, "train.seeds.half_width"),
           ({"start": 4, "step": 1, "max": 8, "half_width": 0.01, "alpha": 1},
            "train.seeds.alpha")]
    for rule, key in bad:
        with pytest.raises(SpecError, match=key.replace(".", r"\.")):
            parse_spec({**base, "train": {"seeds": rule}})
    with pytest.raises(SpecError, match="grid design"):
        parse_spec({**base, "design": "search", "n_trials": 2,
                    "train": {"seeds": {"start": 3, "step": 1, "max": 4, "half_width": 0.1}}})
    with pytest.raises(SpecError, match="over the cap"):
        parse_spec({**base, "grid_cap": 10,
                    "train": {"seeds": {"start": 3, "step": 1, "max": 6, "half_width": 0.1}}})


def test_precise_enough_first_batch_stops(tmp_path: Path, fake: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    fake.setenv("SLOPE_SD", "0.001")
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    spec = write(tmp_path / "s.yaml", {"start": 3, "step": 2, "max": 9, "half_width": 0.02})
    assert main(["run", str(spec), "--db", url]) == 0
    assert seeds_of(url) == [0, 1, 2]
    assert "every main contrast resolved to ±0.02 with 3 seeds" in capsys.readouterr().err


def test_wide_contrasts_add_seeds_until_resolved_then_resume_adds_nothing(
        tmp_path: Path, fake: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    sd = 0.03
    fake.setenv("SLOPE_SD", str(sd))
    want = expected_stop(sd, 3, 2, 21, 0.03)
    assert 3 < want < 21  # the rule must grow the study, and stop before the maximum
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    spec = write(tmp_path / "s.yaml", {"start": 3, "step": 2, "max": 21, "half_width": 0.03})
    assert main(["run", str(spec), "--db", url, "--workers", "2"]) == 0
    assert seeds_of(url) == list(range(want))
    err = capsys.readouterr().err
    assert "adding seeds 3, 4" in err and f"resolved to ±0.03 with {want} seeds" in err
    # A re-run finds the seeds in the database: nothing new, the same decision.
    assert main(["run", str(spec), "--db", url]) == 0
    assert seeds_of(url) == list(range(want))
    assert f"with {want} seeds" in capsys.readouterr().err


def test_maximum_reached_and_max_runs_is_one_pass(tmp_path: Path, fake: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    fake.setenv("SLOPE_SD", "0.2")
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    spec = write(tmp_path / "s.yaml", {"start": 3, "step": 1, "max": 4, "half_width": 0.001})
    assert main(["run", str(spec), "--db", url, "--max-runs", "20"]) == 0
    assert seeds_of(url) == [0, 1, 2]  # one pass: the budget covers one batch, no seeds added
    assert main(["run", str(spec), "--db", url]) == 0
    assert seeds_of(url) == [0, 1, 2, 3]
    assert "at the maximum of 4 seeds" in capsys.readouterr().err


def test_dry_run_prints_the_rule(tmp_path: Path, fake: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    spec = write(tmp_path / "s.yaml", {"start": 4, "step": 2, "max": 8, "half_width": 0.02})
    t0 = time.perf_counter()
    assert main(["run", str(spec), "--db", url, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "seeds (4): 0, 1, 2, 3" in out and "16 runs = 4 combinations x 4 seeds" in out
    assert ("seeds planned by precision: start with 4, add 2 at a time up to 8 until every "
            "main contrast's 95% CI half-width on test_acc is <= 0.02 (at most 32 runs)") in out
    assert not (tmp_path / "r.sqlite").exists() and time.perf_counter() - t0 < 30
