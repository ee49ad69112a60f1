"""Input the harness must refuse, fast, in one line, before anything is written: oversized study
files, very long lists, text PostgreSQL cannot store (on SQLite too), and a reordering of a
factor's levels under the same study name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, inspect, select
from sqlalchemy.orm import Session

from harness.cli import main
from harness.errors import SpecError, StorageError
from harness.store import claims
from harness.store import engine as store_engine
from harness.store.schema import Study
from harness.study.register import register as _register
from harness.study.spec import parse_spec


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("bsnn-bench: error: "), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_a_50_mb_study_file_is_refused_before_parsing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.yaml"
    with big.open("w") as fh:
        fh.write("study: big\nfactors: {model.pool: [max]}\ndescription: ")
        fh.write("x" * 50_000_000)
    db = tmp_path / "r.sqlite"
    capsys.readouterr()
    assert main(["run", str(big), "--db", f"sqlite:///{db}", "--dry-run"]) == 2
    err = one_line_error(capsys)
    assert f"{big}: 50.0 MB is over the 4 MiB limit of a study or configuration file" in err
    assert not db.exists()
    # The same limit guards run configuration files.
    assert main(["train", "--config", str(big)]) == 2
    assert "over the 4 MiB limit" in one_line_error(capsys)


def test_a_huge_seed_list_is_refused_while_parsing_with_an_honest_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seeds = tmp_path / "seeds.yaml"
    seeds.write_text("study: s\ntrain: {seeds: [" + ", ".join(map(str, range(300_000)))
                     + "]}\nfactors: {model.pool: [max]}\n")
    assert seeds.stat().st_size < 4 * 1024 * 1024  # under the file limit: the list is refused
    capsys.readouterr()
    assert main(["run", str(seeds), "--dry-run"]) == 2
    err = one_line_error(capsys)
    assert "more than 20,000 values" in err and "line 2" in err
    assert "alias" not in err


def test_deeply_nested_yaml_is_refused_not_a_recursion_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("study: d\nfactors: {model.pool: [max]}\ndescription: "
                    + "[" * 5000 + "]" * 5000 + "\n")
    capsys.readouterr()
    assert main(["run", str(deep), "--dry-run"]) == 2
    assert "nested more than 64 deep" in one_line_error(capsys)


# -- text the database cannot store -------------------------------------------------------------

def _spec(name: str, levels: list[str]) -> dict:
    return {"study": name, "dataset": {"name": "digits-dvs", "limit": 8},
            "train": {"epochs": 1, "seeds": [0]}, "factors": {"train.accelerator": levels}}


REJECTS = {
    "nul-in-study-name": (_spec("bad\x00name", ["cpu"]),
                          "'study': contains a NUL character"),
    "nul-in-label": (_spec("nul-label", ["cpu", "gp\x00u"]),
                     "'factors.train.accelerator[1]': contains a NUL character"),
    "label-over-1024": (_spec("long-label", ["cpu", "x" * 1500]),
                        "'factors.train.accelerator[1]': its level label ('xxx"),
    "run-key-over-1024": ({**_spec("long-key", ["cpu", "y" * 600]),
                           "factors": {"train.accelerator": ["cpu", "y" * 600],
                                       "dataset.root": ["a", "z" * 600]}},
                          "'factors': the longest run key of this study"),
    "unpaired-surrogate": (_spec("sur\ud800rogate", ["cpu"]),
                           "'study': contains \\ud800, an unpaired surrogate"),
}


def _write(path: Path, data: dict) -> Path:
    # allow_unicode=False: YAML escapes (\0, \ud800) carry the characters through the file.
    path.write_text(yaml.safe_dump(data, allow_unicode=False), encoding="utf-8")
    return path


def _check_refused(url: str, tmp_path: Path, case: str,
                   capsys: pytest.CaptureFixture[str]) -> None:
    data, message = REJECTS[case]
    spec = _write(tmp_path / f"{case}.yaml", data)
    capsys.readouterr()
    assert main(["run", str(spec), "--db", url, "--quiet"]) == 2
    err = one_line_error(capsys)
    assert f"{spec}: {message}" in err
    if "results database stores at most 1,024" not in err and "surrogate" not in err:
        assert "PostgreSQL refuses it" in err


@pytest.mark.parametrize("case", sorted(REJECTS))
def test_input_postgresql_rejects_is_refused_on_sqlite_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    db = tmp_path / "r.sqlite"
    _check_refused(f"sqlite:///{db}", tmp_path, case, capsys)
    assert not db.exists()


@pytest.mark.postgres
@pytest.mark.parametrize("case", sorted(REJECTS))
def test_input_postgresql_rejects_is_refused_on_postgresql_before_anything_is_written(
        postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        case: str) -> None:
    engine = create_engine(postgres_url)
    try:
        before = _study_names(engine)
        _check_refused(postgres_url, tmp_path, case, capsys)
        assert _study_names(engine) == before  # no (empty) study registered
    finally:
        engine.dispose()


def _study_names(engine: object) -> list[str]:
    if "bench_studies" not in inspect(engine).get_table_names():
        return []
    with Session(engine) as s:
        return list(s.scalars(select(Study.name)))


# -- level order ---------------------------------------------------------------------------------

BASE = {"study": "order", "train": {"epochs": 1, "seeds": [0]},
        "factors": {"optimizer": ["adam", "sgd", "swats"], "model.pool": ["max", "avg"]}}


def _register_spec(url: str, factors: dict) -> int:
    engine = store_engine.open_database(url)
    spec = parse_spec({**BASE, "factors": factors}, "order.yaml")
    planned = spec.plan()
    study_id = _register(engine, spec, url, planned)
    claims.insert_runs(engine, study_id, planned)
    engine.dispose()
    return study_id


def test_reordered_levels_under_the_same_study_name_are_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    first = _register_spec(url, BASE["factors"])
    with pytest.raises(StorageError, match=r"factor 'optimizer': its first level, the reference "
                                           r"every contrast is measured against, would change "
                                           r"from 'adam' to 'sgd'"):
        _register_spec(url, {**BASE["factors"], "optimizer": ["sgd", "adam", "swats"]})
    with pytest.raises(StorageError, match=r"factor 'optimizer': its levels were reordered "
                                           r"\(adam, sgd, swats -> adam, swats, sgd\)"):
        _register_spec(url, {**BASE["factors"], "optimizer": ["adam", "swats", "sgd"]})
    with pytest.raises(StorageError, match=r"'model.pool'.*from 'max' to 'avg'.*use a new "
                                           r"study name"):
        _register_spec(url, {**BASE["factors"], "model.pool": ["avg", "max"]})
    # Adding levels (after the first) and keeping the order is still a resume.
    assert _register_spec(url, {**BASE["factors"],
                                "optimizer": ["adam", "bop", "sgd", "swats"]}) == first


def test_reordered_levels_exit_2_through_the_cli(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    _register_spec(url, BASE["factors"])
    spec = _write(tmp_path / "s.yaml", {**BASE, "factors": {**BASE["factors"],
                                                            "model.pool": ["avg", "max"]}})
    capsys.readouterr()
    # --dry-run makes run's checks: the same refusal, and no database change.
    assert main(["run", str(spec), "--db", url, "--dry-run"]) == 2
    assert "its first level, the reference" in one_line_error(capsys)
    assert main(["run", str(spec), "--db", url, "--quiet"]) == 2
    assert "its first level, the reference" in one_line_error(capsys)


def test_a_2e9_run_grid_is_refused_by_the_cap_without_enumerating_it() -> None:
    """36 levels of six settings: 2.18e9 runs, counted (not listed) and refused by grid_cap."""
    levels = list(range(1, 37))
    spec = {"study": "huge", "train": {"seeds": [0]},
            "factors": {"train.epochs": levels, "train.batch_size": levels,
                        "train.lr": [x / 1000 for x in levels],
                        "train.weight_decay": [x / 1000 for x in levels],
                        "model.hidden": levels, "model.kernel_size": levels}}
    with pytest.raises(SpecError, match=r"'factors': 2176782336 runs \(full-factorial: "
                                        r"36 x 36 x 36 x 36 x 36 x 36 levels x 1 seeds\) is "
                                        r"over the cap of 10000"):
        parse_spec(spec, "huge.yaml")
