"""End to end with real training: ``bsnn-bench run`` trains a tiny study (digits-dvs, a few
samples, one epoch), ``bsnn-bench report`` writes its tables, and their numbers match a pandas
computation on the runs frame."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from test_report_e2e import write_spec

from harness.cli import main
from harness.results import runs_frame


@pytest.mark.slow
def test_real_tiny_study_reports(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    spec = write_spec(tmp_path / "study.yaml", "tiny-real",
                      train={"epochs": 1, "batch_size": 16, "seeds": [0]},
                      factors={"binarization": ["fp32", "ste-clip"]})
    code = main(["run", str(spec), "--db", url, "--quiet"])
    runs = runs_frame(url, "tiny-real")
    assert code == 0, runs.loc[runs["status"] != "complete", "error"].tolist()
    out = tmp_path / "reports"
    assert main(["report", "--db", url, "--out", str(out), "--format", "csv,md"]) == 0
    assert len(runs) == 2 and set(runs["status"]) == {"complete"}
    me = pd.read_csv(out / "tiny-real" / "main_effects.csv")
    expected = runs.groupby("binarization")["test_acc"].agg(["size", "mean"])
    for _, row in me.iterrows():
        assert row["runs"] == expected.loc[row["level"], "size"]
        assert row["mean"] == pytest.approx(expected.loc[row["level"], "mean"])
    assert runs["test_acc"].between(0, 1).all() and runs["val_acc_best"].between(0, 1).all()
    md = (out / "tiny-real" / "report.md").read_text(encoding="utf-8")
    assert "2 runs: 2 complete, 0 failed, 0 pending" in md and "Partial study" not in md
    assert runs["host"].notna().all() and runs["versions"].map(lambda v: "torch" in v).all()
    cost = pd.read_csv(out / "tiny-real" / "cost.csv").set_index("binarization")
    # Binary weights take a 32nd of fp32's memory, whatever else the cost model counts.
    assert cost.loc["ste-clip", "weight_memory_bits"] < cost.loc["fp32", "weight_memory_bits"]
