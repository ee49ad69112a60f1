"""A CLI that refuses mistakes: typos exit 2 naming what exists, --dry-run makes every check run
makes (and estimates only what is left), every hint names an option of the command it names,
show and compare print what is in the database."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, update
from test_results import FULL_SPEC, make_study
from test_study_fakes import use_fake_run, write_spec

import tricks
from harness.cli import COMMANDS, build_parser, main
from harness.store.schema import SchemaInfo
from harness.study.coordinator import run_study_command


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("bsnn-bench: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_tricks_with_an_unknown_factor_exits_2_naming_the_known_ones(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tricks", "optimzer"]) == 2
    err = _one_error_line(capsys)
    assert "unknown factor 'optimzer'; did you mean 'optimizer'?" in err
    assert all(f in err for f in tricks.registry())
    assert capsys.readouterr().out == ""


def test_version() -> None:
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert re.fullmatch(r"bsnn-bench \d+\.\d+\.\d+\S*\n", proc.stdout), proc.stdout


@pytest.mark.parametrize(("dataset", "message"), [
    ({"name": "imagenet-dvs"}, "imagenet-dvs"),
    ({"name": "nmnist"}, "dataset 'nmnist' not found"),
])
def test_dry_run_checks_the_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    dataset: dict[str, str], message: str) -> None:
    spec = write_spec(tmp_path / "s.yaml", "dry", dataset=dataset)
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    assert main(["run", str(spec), "--db", url, "--dry-run"]) == 2
    err = _one_error_line(capsys)
    assert message in err
    # The hint names what a study spec can say; run has no --set.
    assert "--set" not in err
    if dataset["name"] == "nmnist":
        assert f"in {spec}: dataset: {{download: true}}" in err
    assert not (tmp_path / "r.sqlite").exists()


def test_train_hint_for_a_missing_dataset_names_train_s_option(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--set", "dataset.name=nmnist"]) == 2
    assert "(--set dataset.download=true)" in _one_error_line(capsys)


def test_dry_run_refuses_a_changed_spec_and_a_newer_schema_and_counts_what_is_left(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    use_fake_run(monkeypatch, tmp_path / "log")
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    spec = write_spec(tmp_path / "s.yaml", "dry", factors={"model.pool": ["max", "avg"]})
    assert run_study_command(str(spec), db=url, max_runs=1, progress=False) == 0
    capsys.readouterr()
    assert main(["run", str(spec), "--db", url, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "in the database: 1 complete, 3 pending" in out and "to run: 3 of 4" in out
    assert run_study_command(str(spec), db=url, progress=False) == 0
    capsys.readouterr()
    assert main(["run", str(spec), "--db", url, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "to run: 0 of 4" in out and "time: nothing to do" in out and "about" not in out

    raw = yaml.safe_load(spec.read_text())
    raw["train"]["epochs"] = 3
    spec.write_text(yaml.safe_dump(raw))
    assert main(["run", str(spec), "--db", url, "--dry-run"]) == 2
    assert "was created from a different spec (changed: train.epochs)" in _one_error_line(capsys)

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(update(SchemaInfo).values(version=999))
    engine.dispose()
    assert main(["run", str(spec), "--db", url, "--dry-run"]) == 2
    assert "schema version 999, newer than this" in _one_error_line(capsys)


def _literal_strings(path: Path) -> list[str]:
    """Every string constant of a module, f-strings joined with their holes left out."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.JoinedStr):
            out.append("".join(v.value for v in node.values if isinstance(v, ast.Constant)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append(node.value)
    return out


def test_every_hint_names_an_option_of_the_command_it_names() -> None:
    """'bsnn-bench CMD ... --opt' anywhere in harness/: CMD exists and has --opt."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    options = {name: {o for a in p._actions for o in a.option_strings}
               for name, p in sub.choices.items()}
    root = Path(__file__).resolve().parents[1] / "harness"
    seen = 0
    for path in root.rglob("*.py"):
        for text in _literal_strings(path):
            for m in re.finditer(r"bsnn-bench (\w+)((?: [^;:)]*)?)", text):
                cmd, rest = m.group(1), m.group(2)
                if cmd not in COMMANDS:
                    continue
                for opt in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest):
                    seen += 1
                    assert opt in options[cmd], f"{path.name}: {m.group(0)!r}: {cmd} has no {opt}"
    assert seen >= 3  # the check looked at real hints


@pytest.fixture
def two_studies(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    make_study(url, FULL_SPEC)
    make_study(url, dict(FULL_SPEC, study="other", factors={
        "binarization": ["fp32", "ste-clip"], "optimizer": ["adam", "sgd"]}), create=False)
    return url


def test_show_prints_levels_metrics_curves_and_config(
        two_studies: str, capsys: pytest.CaptureFixture[str]) -> None:
    key = "binarization=ste-clip|optimizer=sgd|seed=1"
    assert main(["show", "--db", two_studies, "--study", "full", "--run", key]) == 0
    out = capsys.readouterr().out
    assert out.startswith("run ") and key in out.splitlines()[0]
    assert re.search(r"^  binarization +ste-clip$", out, re.M)
    assert re.search(r"^  test_acc +0\.\d+$", out, re.M)
    assert "val_acc          ▁▃▆█" in out  # a rising curve as a sparkline
    assert re.search(r"^ +4 +0\.\d+$", out, re.M)  # the per-epoch table
    assert main(["show", "--db", two_studies, "--study", "full", "--run",
                 "binarization=ste-clip|optimizer=sgdd|seed=1"]) == 2
    assert "did you mean 'binarization=ste-clip|optimizer=sgd|seed=1'" in _one_error_line(capsys)


def test_compare_puts_two_studies_contrasts_side_by_side(
        two_studies: str, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.report import main_effects
    from harness.results import runs_frame

    assert main(["compare", "full", "other", "--db", two_studies]) == 0
    out = capsys.readouterr().out.splitlines()
    a = main_effects(runs_frame(two_studies, "full")).set_index("level")
    b = main_effects(runs_frame(two_studies, "other")).set_index("level")
    ste = next(line for line in out if line.startswith("binarization  ste-clip"))
    assert f"{100 * a.loc['ste-clip', 'diff']:+.1f}" in ste
    assert f"{100 * b.loc['ste-clip', 'diff']:+.1f}" in ste
    hybrid = next(line for line in out if "hybrid(switch_at=0.5)" in line)
    assert len(re.findall(r"[-+]\d+\.\d", hybrid)) == 3  # only A has it: Δ and its CI
    assert main(["compare", "full", "nope", "--db", two_studies]) == 2
    assert "no study named 'nope'" in _one_error_line(capsys)
