"""From a study run to NIR and to the packed integer model: kept weights, the export command, its
verification, the samples file; the schema migration that added the weights columns."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from nir_reference import simulate
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.orm import Session

from harness.cli import main
from harness.deploy.export import export_run
from harness.deploy.packed import load_packed, packed_weight_bits
from harness.deploy.weights import WEIGHTS_ENV
from harness.store import engine as store_engine
from harness.store.schema import SCHEMA_VERSION, Run, RunMetric
from harness.study.worker import RUN_FN_ENV


def _study(tmp_path: Path, name: str = "deploy") -> Path:
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({
        "study": name, "design": "full-factorial",
        "dataset": {"name": "digits-dvs", "limit": 96},
        "model": {"channels": [4, 8], "hidden": 16, "neuron": {"beta": 0.5, "reset": "zero"}},
        "train": {"epochs": 2, "batch_size": 16, "seeds": [0]},
        "factors": {"binarization": ["ste-clip"], "shift_bn": ["on"]},
    }))
    return spec


@pytest.mark.slow
def test_study_run_exports_to_nir_and_packed_and_both_verify(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import nir

    monkeypatch.delenv(RUN_FN_ENV, raising=False)
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    db = tmp_path / "r.sqlite"
    url = f"sqlite:///{db}"
    assert main(["run", str(_study(tmp_path)), "--db", url, "--quiet"]) == 0
    engine = create_engine(url)
    with Session(engine) as s:
        run = s.scalars(select(Run)).one()
        path, digest = Path(run.weights_path), run.weights_sha256
        bits = s.scalar(select(RunMetric.value).where(RunMetric.run_id == run.id,
                                                      RunMetric.name == "weight_memory_bits"))
    assert path.is_file() and path.parent.parent == tmp_path / "r-weights"
    assert len(digest) == 64
    capsys.readouterr()

    out = tmp_path / "m.nir"
    assert main(["export", "--db", url, "--study", "deploy", "--run", "best", "--format", "nir",
                 "--out", str(out), "--samples", "48"]) == 0
    printed = capsys.readouterr().out
    assert "predicted class equal" in printed and "differing 0" in printed
    samples = np.load(str(out) + ".samples.npz")
    t = samples["inputs"].shape[0]
    assert samples["inputs"].shape[1] == 48 and samples["inputs"].shape[2:] == (2, 17, 17)
    assert samples["spikes"].shape == (t, 48, 10) and samples["labels"].shape == (48,)
    got = simulate(nir.read(str(out)), samples["inputs"])
    ref = samples["spikes"]
    assert (got == ref).mean() >= 0.995 and ref.sum() > 0
    assert ((got == 1) & (ref == 1)).sum() >= 0.995 * ref.sum()
    assert (got.sum(0).argmax(-1) == ref.sum(0).argmax(-1)).mean() >= 0.97

    packed = tmp_path / "m.npz"
    rep = export_run(url, "deploy", run.run_key, fmt="packed", out=packed)
    assert rep.class_agreement == 1.0 and rep.spike_agreement == 1.0 and rep.verified
    assert rep.samples >= 48 and rep.exact_samples > 0
    assert packed_weight_bits(packed) <= bits
    header, _ = load_packed(packed)
    assert header["source"]["run_key"] == run.run_key
    assert header["config"]["factors"]["shift_bn"]["name"] == "on"
    json.dumps(header)
    with Session(engine) as s:
        metrics = {m.name: m.value for m in s.scalars(select(RunMetric).where(
            RunMetric.run_id == run.id, RunMetric.name.like("export_%")))}
    assert metrics["export_packed_verified"] == 1.0 and metrics["export_nir_verified"] == 1.0

    # Deleting the weights folder breaks no report, and export says what is missing.
    shutil.rmtree(tmp_path / "r-weights")
    assert main(["report", "--db", url, "--out", str(tmp_path / "reports")]) == 0
    top = (tmp_path / "reports" / "deploy" / "top_configurations.csv").read_text()
    assert "exported and verified" in top and "nir, packed" in top
    capsys.readouterr()
    assert main(["export", "--db", url, "--study", "deploy", "--format", "packed",
                 "--out", str(tmp_path / "x.npz")]) == 2
    assert "weights of run" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()
    engine.dispose()


@pytest.mark.slow
def test_no_weights_flag_keeps_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(RUN_FN_ENV, raising=False)
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    spec = _study(tmp_path, "nw")
    assert main(["run", str(spec), "--db", url, "--quiet", "--no-weights"]) == 0
    assert not (tmp_path / "r-weights").exists()
    assert main(["export", "--db", url, "--study", "nw", "--format", "nir",
                 "--out", str(tmp_path / "m.nir")]) == 2
    assert "no complete run with kept weights" in capsys.readouterr().err


def test_old_database_is_migrated_in_place(tmp_path: Path) -> None:
    """A schema-1 database (no weights columns) keeps its rows and gains the columns."""
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    store_engine.open_database(url).dispose()
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text("ALTER TABLE bench_runs DROP COLUMN weights_path"))
        c.execute(text("ALTER TABLE bench_runs DROP COLUMN weights_sha256"))
        c.execute(text("UPDATE bench_schema SET version = 1"))
        c.execute(text("INSERT INTO bench_studies (id, name, design, spec, spec_hash, "
                       "created_at) VALUES (1, 'old', 'full-factorial', '{}', 'h', "
                       "'2026-01-01 00:00:00')"))
        c.execute(text("INSERT INTO bench_runs (id, study_id, run_key, status, seed, config, "
                       "position, attempts) VALUES (1, 1, 'k', 'complete', 0, '{}', 0, 1)"))
        c.execute(text("INSERT INTO bench_run_metrics (run_id, name, value) "
                       "VALUES (1, 'energy_uj_per_sample', 1.165), (1, 'test_acc', 0.9)"))
    engine.dispose()
    assert SCHEMA_VERSION == 2
    engine = store_engine.open_database(url)
    cols = {c["name"] for c in inspect(engine).get_columns("bench_runs")}
    assert {"weights_path", "weights_sha256"} <= cols
    with Session(engine) as s:
        run = s.scalars(select(Run)).one()
        assert (run.run_key, run.status, run.weights_path) == ("k", "complete", None)
        assert s.scalar(text("SELECT version FROM bench_schema")) == SCHEMA_VERSION
        # The synops-only energy of schema 1 is kept under its own name, not mixed with the new.
        metrics = dict(s.execute(select(RunMetric.name, RunMetric.value)).all())
        assert metrics == {"energy_synops_only_uj_per_sample": 1.165, "test_acc": 0.9}
    engine.dispose()
