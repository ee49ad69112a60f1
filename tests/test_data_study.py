"""The shipped synthetic-gestures study runs end to end (shrunk: fewer samples, one epoch)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import yaml

from harness.study.coordinator import run_study_command

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_synthetic_gestures_quick_study_runs(tmp_path: Path) -> None:
    spec = yaml.safe_load((ROOT / "studies" / "synthetic_gestures_quick.yaml").read_text())
    spec["dataset"]["limit"] = 24
    spec["train"]["epochs"] = 1
    path = tmp_path / "quick.yaml"
    path.write_text(yaml.safe_dump(spec))
    db = tmp_path / "results.sqlite"
    code = run_study_command(str(path), db=f"sqlite:///{db}", workers=1, progress=False)
    assert code == 0
    with sqlite3.connect(db) as con:
        rows = con.execute("select status, count(*) from bench_runs group by status").fetchall()
        accs = con.execute("select value from bench_run_metrics where name = 'test_acc'").fetchall()
    assert rows == [("complete", 4)]
    assert len(accs) == 4 and all(0.0 <= a <= 1.0 for (a,) in accs)


def test_he2025_studies_are_valid_grids() -> None:
    from harness.study.spec import load_spec

    for name in ("nmnist", "dvsgesture", "cifar10dvs"):
        spec = load_spec(ROOT / "studies" / f"he2025_{name}.yaml")
        assert spec.run_count() == 3 * 4 * 2 * 2 * 2
        cfg = spec.config_for(next(iter(spec.combinations())), 0)
        assert cfg.dataset.name == name
        assert cfg.level("optimizer").name == "swats"
        assert cfg.level("surrogate").name == "rectangle"
        assert cfg.level("loss").name == "mse-rate"
        assert cfg.level("lr_schedule").name == "step"
