"""End to end: ``bsnn-bench run`` fills a database through the real runner, ``bsnn-bench report``
turns it into files whose numbers match an independent computation.

The training function is swapped for ``synthetic_run`` (through ``BSNN_BENCH_RUN_FN``, as the
runner's own tests do), so the spec, the worker process, the claims and the result writes are the
real ones while the metrics are known in closed form. tests/test_report_real.py trains for real.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from test_study_fakes import FakeResult

from harness.cli import main
from harness.results import runs_frame

RUN_FN = "test_report_e2e:synthetic_run"


def synthetic_accuracy(binarization: str, optimizer: str, seed: int) -> float:
    acc = 0.80 + 0.002 * seed
    acc -= 0.05 if binarization != "fp32" else 0.0
    acc += 0.01 if optimizer.startswith("hybrid") else 0.0
    return acc + (0.003 if (binarization == "fp32") == (seed % 2 == 0) else 0.0)


def synthetic_run(cfg: Any, *, progress: bool = False, callbacks: Any = ()) -> FakeResult:
    """Closed-form metrics of a run; one configuration diverges, as a real one may."""
    t0 = time.perf_counter()
    labels = cfg.labels()
    binz, opt, seed = labels["binarization"], labels["optimizer"], cfg.train.seed
    if binz != "fp32" and opt.startswith("hybrid") and seed == 1:
        return FakeResult("failed", {"train_loss": math.nan}, {"val_acc": [0.3]},
                          "training loss became NaN at epoch 1", time.perf_counter() - t0)
    acc = synthetic_accuracy(binz, opt, seed)
    bits = 32_000.0 if binz == "fp32" else 1_000.0
    metrics = {"test_acc": acc, "test_acc_shift_bn": acc - 0.004, "val_acc_best": acc,
               "epochs_to_95pct": 2.0, "spike_rate": 0.12, "synops_per_sample": 5e4,
               "weight_memory_bits": bits, "weight_memory_ratio": bits / 32_000.0,
               "energy_uj_per_sample": bits / 1e4, "train_time_s": 1.0}
    if opt.startswith("hybrid"):
        metrics["switch_epoch"] = 1.0
    curves = {"val_acc": [acc - 0.2, acc - 0.1, acc], "train_loss": [1.0, 0.6, 0.4]}
    return FakeResult("complete", metrics, curves, None, time.perf_counter() - t0)


def write_spec(path: Path, name: str, **over: Any) -> Path:
    spec: dict[str, Any] = {
        "study": name,
        "design": "full-factorial",
        "dataset": {"name": "digits-dvs", "limit": 32},
        "model": {"arch": "mlp", "hidden": 16},
        "train": {"epochs": 3, "batch_size": 16, "seeds": [0, 1]},
        "factors": {"binarization": ["fp32", "ste-clip"],
                    "optimizer": ["adam", {"name": "hybrid", "switch_at": 0.5}]},
    }
    spec.update(over)
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def test_runner_then_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BSNN_BENCH_RUN_FN", RUN_FN)
    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    spec = write_spec(tmp_path / "study.yaml", "e2e")
    # One run diverges: the study goes on and the command says so with exit code 1.
    assert main(["run", str(spec), "--db", url, "--quiet"]) == 1
    out = tmp_path / "reports"
    assert main(["report", "--db", url, "--out", str(out)]) == 0
    folder = out / "e2e"

    md = (folder / "report.md").read_text(encoding="utf-8")
    assert "8 runs: 7 complete, 1 failed, 0 pending" in md
    assert "Finished with 1 of 8 runs not complete (1 failed, listed at the end)" in md
    assert "Partial study" not in md
    assert "training loss became NaN at epoch 1" in md[md.index("## Failed runs"):]

    runs = runs_frame(url, "e2e")
    labels = runs.attrs["levels"]
    hybrid = labels["optimizer"][1]
    assert hybrid.startswith("hybrid")
    me = pd.read_csv(folder / "main_effects.csv", keep_default_na=False, na_values=[""])
    failed = ("ste-clip", hybrid, 1)
    complete = [(b, o, s) for b in labels["binarization"] for o in labels["optimizer"]
                for s in (0, 1) if (b, o, s) != failed]
    for _, row in me.iterrows():
        idx = 0 if row["factor"] == "binarization" else 1
        mine = [c for c in complete if c[idx] == row["level"]]
        # The level mean is the mean of its seed means (the failed run unbalances seed 1).
        seed_means = [np.mean([synthetic_accuracy(*c) for c in mine if c[2] == s])
                      for s in (0, 1)]
        assert row["runs"] == len(mine) and row["seeds"] == 2
        assert row["mean"] == pytest.approx(np.mean(seed_means))
    ste = me[me["level"] == "ste-clip"].iloc[0]
    # Per seed, the mean over the optimizer cells where both levels ran; the failed run's
    # partner drops out of seed 1. Two seeds: unresolved, no p-value.
    d = []
    for s in (0, 1):
        cells = [o for o in labels["optimizer"] if ("ste-clip", o, s) != failed]
        d.append(np.mean([synthetic_accuracy("ste-clip", o, s) - synthetic_accuracy("fp32", o, s)
                          for o in cells]))
    assert ste["n_seeds"] == 2 and ste["test"].startswith("unresolved")
    assert ste["diff"] == pytest.approx(np.mean(d))
    assert math.isnan(ste["p"]) and not ste["resolved"]

    grid = pd.read_csv(folder / "interaction_binarization_optimizer.csv")
    assert grid.iloc[0][hybrid] == pytest.approx(np.mean(
        [synthetic_accuracy("fp32", hybrid, s) for s in (0, 1)]))
    cost = pd.read_csv(folder / "cost.csv")
    assert cost["weight_memory_bits"].tolist() == [32_000.0, 1_000.0]
    assert cost["arch"].tolist() == ["mlp", "mlp"]
    bn = pd.read_csv(folder / "bn_vs_shift_bn.csv")
    assert bn["diff"].iloc[0] == pytest.approx(0.004)
    assert (folder / "learning_curves.png").stat().st_size > 5000
    assert "bsnn-bench: error" not in capsys.readouterr().err
