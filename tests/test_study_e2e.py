"""End to end with the real ``train_run``: a tiny one-at-a-time study on digits-dvs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from harness.store.schema import Run, RunCurve, RunFactor, RunMetric
from harness.study.coordinator import run_study_command
from harness.study.worker import RUN_FN_ENV


@pytest.mark.slow
def test_tiny_real_study_runs_records_and_fails_a_diverging_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(RUN_FN_ENV, raising=False)
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump({
        "study": "tiny-real",
        "design": "one-at-a-time",
        "dataset": {"name": "digits-dvs", "limit": 32},
        "model": {"channels": [4, 8], "hidden": 16},
        "train": {"epochs": 1, "batch_size": 16, "seeds": [0]},
        # The second level stops a run as diverged at its first loss: a real failing run.
        "factors": {"binarization": ["fp32", "ste-clip"],
                    "train.divergence_loss": [1.0e6, 1.0e-12]},
    }))
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    assert run_study_command(str(spec), db=url, workers=1, progress=True) == 1
    out, err = capsys.readouterr()
    assert "[1/3] complete" in out
    assert "1 failed runs" in err and "train.divergence_loss=1e-12" in err

    engine = create_engine(url)
    with Session(engine) as s:
        runs = {r.run_key: r for r in s.scalars(select(Run))}
        assert len(runs) == 3
        ok = runs["binarization=ste-clip|train.divergence_loss=1000000|seed=0"]
        bad = runs["binarization=fp32|train.divergence_loss=1e-12|seed=0"]
        assert ok.status == "complete" and bad.status == "failed"
        assert "diverged" in bad.error
        assert ok.device == "cpu" and ok.host and ok.versions["torch"]
        assert ok.config["factors"]["binarization"]["name"] == "ste-clip"
        assert ok.config["model"]["channels"] == [4, 8]
        metrics = {m.name: m.value for m in s.scalars(
            select(RunMetric).where(RunMetric.run_id == ok.id))}
        assert 0.0 <= metrics["test_acc"] <= 1.0 and "val_acc_best" in metrics
        assert metrics["weight_memory_ratio"] < 1.0  # binary weights are smaller
        curve = s.scalars(select(RunCurve).where(RunCurve.run_id == ok.id,
                                                 RunCurve.name == "val_acc")).all()
        assert [c.epoch for c in curve] == [0]
        factors = {f.factor: f.level for f in s.scalars(
            select(RunFactor).where(RunFactor.run_id == ok.id))}
        assert factors == {"binarization": "ste-clip", "train.divergence_loss": "1000000"}
    engine.dispose()
