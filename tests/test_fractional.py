"""design: fractional-factorial: the half fraction's plan, its alias structure, the spec's refusal
of too few two-level factors, and a stand-in study run and reported end to end.

The outcome of a stand-in run (``frac_run``, through ``BSNN_BENCH_RUN_FN``) is known in closed
form: main effects per level, a per-seed offset and a small per-run noise, so the report's main
effects must recover the effects.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from test_study_fakes import FakeResult

from harness.cli import main
from harness.errors import SpecError
from harness.fraction import alias_structure, in_fraction, roman
from harness.store.schema import Run, Study
from harness.study.spec import parse_spec

RUN_FN = "test_fractional:frac_run"

#: Five two-level factors and one three-level factor: 2^(5-1) x 3 = 48 combinations.
FIVE = {"optimizer": ["adam", "sgd"], "lr_schedule": ["constant", "cosine"],
        "model.pool": ["max", "avg"], "shift_bn": ["off", "on"],
        "train.weight_decay": [0.0, 0.001], "surrogate": ["atan", "fast-sigmoid", "triangle"]}
TWO = ["optimizer", "lr_schedule", "model.pool", "shift_bn", "train.weight_decay"]

#: The stand-in's known effects (accuracy) per factor and level label.
EFFECTS = {"optimizer": {"adam": 0.0, "sgd": 0.03}, "lr_schedule": {"constant": 0.0,
                                                                    "cosine": -0.02},
           "model.pool": {"max": 0.0, "avg": 0.01}, "shift_bn": {"off": 0.0, "on": -0.015},
           "surrogate": {"atan": 0.0, "fast-sigmoid": 0.005,
                         "triangle": -0.025}}


def frac_run(cfg: Any, *, progress: bool = False, callbacks: Any = ()) -> FakeResult:
    labels = {**cfg.labels(), "model.pool": cfg.model.pool}
    seed = cfg.train.seed
    acc = 0.8 + sum(EFFECTS[f][labels[f]] for f in EFFECTS)
    acc += 0.01 * float(np.random.default_rng(100 + seed).normal())  # the seed's offset
    key = "|".join(f"{f}={labels[f]}" for f in sorted(EFFECTS)) + f"|{seed}"
    acc += 0.002 * (int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF - 0.5)
    return FakeResult("complete", {"test_acc": acc, "val_acc_best": acc}, {}, None, 0.0)


def spec_of(factors: dict[str, list[Any]], design: str = "fractional-factorial",
            **over: Any) -> dict[str, Any]:
    return {"study": "frac", "design": design, "dataset": {"name": "digits-dvs", "limit": 16},
            "train": {"epochs": 1, "seeds": [0, 1]}, "factors": factors, **over}


# -- plan -----------------------------------------------------------------------------------

def test_plan_is_the_resolution_v_half_fraction_crossed_with_the_three_level_factor() -> None:
    spec = parse_spec(spec_of(FIVE))
    combos = list(spec.combinations())
    assert spec.combination_count() == len(combos) == 48 and spec.run_count() == 96
    assert len({tuple(c.values()) for c in combos}) == 48
    for c in combos:
        assert in_fraction(c, TWO)
        assert np.prod([1 if c[f] else -1 for f in TWO]) == 1  # I = +ABCDE
    # Every three-level level with every combination of the fraction, 16 each.
    assert {i: sum(c["surrogate"] == i for c in combos) for i in range(3)} == {0: 16, 1: 16,
                                                                              2: 16}
    # The +-1 coded design matrix: main effects and every 2FI balanced and mutually
    # orthogonal (resolution V: none of them is aliased with another).
    x = np.array([[1 if c[f] else -1 for f in TWO] for c in combos], dtype=float)
    cols = [x[:, i] for i in range(5)] + [x[:, i] * x[:, j]
                                          for i, j in itertools.combinations(range(5), 2)]
    m = np.column_stack(cols)
    assert m.shape == (48, 15)
    assert np.all(m.sum(axis=0) == 0)
    assert np.array_equal(m.T @ m, 48 * np.eye(15))
    # ... while the 3FIs are aliased with 2FIs (the half fraction's price): ABC = DE.
    assert np.array_equal(x[:, 0] * x[:, 1] * x[:, 2], x[:, 3] * x[:, 4])
    # The surrogate's dummies are orthogonal to every two-level column (crossed in full).
    for level in (1, 2):
        d = np.array([c["surrogate"] == level for c in combos], dtype=float)
        assert np.all(d @ m == 0)


def test_plan_order_is_deterministic_and_keys_are_the_full_factorials() -> None:
    frac = parse_spec(spec_of(FIVE)).plan()
    again = parse_spec(spec_of(dict(reversed(list(FIVE.items())))))
    assert [p.key for p in frac] == [p.key for p in parse_spec(spec_of(FIVE)).plan()]
    # A YAML reordering changes the order, not the set of runs nor their keys.
    assert {p.key for p in again.plan()} == {p.key for p in frac}
    full = {p.key: p for p in parse_spec(spec_of(FIVE, "full-factorial")).plan()}
    assert len(full) == 2 * len(frac)
    for p in frac:
        assert p.key in full and full[p.key].labels == p.labels
        assert full[p.key].config == p.config
    # The fraction keeps full-factorial order: the positions increase along it.
    order = list(full)
    assert [order.index(p.key) for p in frac] == sorted(order.index(p.key) for p in frac)
    assert [p.position for p in frac] == list(range(len(frac)))


# -- alias structure -------------------------------------------------------------------------

def test_alias_structure_of_five_two_level_factors() -> None:
    s = alias_structure({f: FIVE[f] for f in FIVE})
    text = "\n".join(s.lines())
    assert s.resolution == 5 and s.combinations == 48
    assert "Resolution V:" in text
    assert ("Defining relation: I = +optimizer × lr_schedule × model.pool × shift_bn × "
            "train.weight_decay") in text
    assert "  optimizer = lr_schedule × model.pool × shift_bn × train.weight_decay" in text
    assert "Main effects, each aliased with a 4-factor interaction:" in text
    assert "Two-factor interactions, each aliased with a 3-factor interaction:" in text
    assert "  optimizer × lr_schedule = model.pool × shift_bn × train.weight_decay" in text
    assert "crossed in full with surrogate (3 levels)" in text
    assert "surrogate × optimizer = surrogate × lr_schedule × model.pool" in text


def test_alias_structure_of_three_two_level_factors_is_resolution_iii() -> None:
    s = alias_structure({"a": 2, "b": 2, "c": 2, "k": 1})
    text = "\n".join(s.lines())
    assert "Resolution III: main effects are aliased with two-factor interactions" in text
    assert "Main effects, each aliased with a two-factor interaction:" in text
    assert "  a = b × c" in text and "  a × b = c" in text
    assert "Two-factor interactions, each aliased with a main effect:" in text
    assert "Constant (one level): k." in text
    assert s.aliased_with_main_effect(["a", "b"]) and not s.aliased_with_main_effect(["a"])
    assert [roman(n) for n in (3, 4, 5, 9, 14)] == ["III", "IV", "V", "IX", "XIV"]


# -- spec errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("factors", [
    {"optimizer": ["adam", "sgd"], "lr_schedule": ["constant", "cosine"],
     "surrogate": ["atan", "triangle", "erf"], "model.pool": ["max"]},
    {"surrogate": ["atan", "triangle", "erf"]},
])
def test_fewer_than_three_two_level_factors_is_a_spec_error(
        factors: dict[str, list[Any]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SpecError, match=r"'factors': design: fractional-factorial needs at "
                                        r"least 3 two-level factors"):
        parse_spec(spec_of(factors), "s.yaml")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec_of(factors), sort_keys=False))
    db = tmp_path / "r.sqlite"
    capsys.readouterr()
    assert main(["run", str(path), "--db", f"sqlite:///{db}", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bsnn-bench: error: ") and len(err.strip().splitlines()) == 1, err
    assert "needs at least 3 two-level factors (factors with exactly 2 levels)" in err
    assert not db.exists()


def test_grid_cap_counts_the_half_fraction() -> None:
    # 48 combinations x 2 seeds = 96 runs: within a cap of 96, over a cap of 95, and the
    # message says where the count comes from.
    assert parse_spec(spec_of(FIVE, grid_cap=96), "s.yaml").max_run_count() == 96
    with pytest.raises(SpecError, match=r"96 runs \(fractional-factorial: half of "
                                        r"2 x 2 x 2 x 2 x 2 x 3 levels x 2 seeds\)"):
        parse_spec(spec_of(FIVE, grid_cap=95), "s.yaml")


def test_dry_run_prints_the_alias_structure(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec_of(FIVE), sort_keys=False))
    capsys.readouterr()
    assert main(["run", str(path), "--db", f"sqlite:///{tmp_path / 'r.sqlite'}",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "study frac (fractional-factorial)" in out
    assert "96 runs = 48 combinations x 2 seeds" in out
    assert "Resolution V:" in out and "Defining relation: I = +optimizer × " in out
    assert not (tmp_path / "r.sqlite").exists()


# -- end to end ------------------------------------------------------------------------------

def test_run_and_report_recover_the_main_effects(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BSNN_BENCH_RUN_FN", RUN_FN)
    factors = {"optimizer": ["adam", "sgd"], "lr_schedule": ["constant", "cosine"],
               "model.pool": ["max", "avg"], "shift_bn": ["off", "on"],
               "surrogate": ["atan", "fast-sigmoid", "triangle"]}
    # A precision target no seed count reaches: the rule adds seeds up to its maximum.
    spec = spec_of(factors, train={"epochs": 1, "seeds": {"start": 3, "step": 1, "max": 4,
                                                          "half_width": 1e-6}})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    assert main(["run", str(path), "--db", url]) == 0
    err = capsys.readouterr().err
    assert "adding seeds 3" in err and "at the maximum of 4 seeds" in err
    engine = create_engine(url)
    with Session(engine) as s:
        assert s.scalars(select(Study.design)).one() == "fractional-factorial"
        runs = list(s.scalars(select(Run)))
    engine.dispose()
    planned = parse_spec(spec).combinations()
    assert len(runs) == 24 * 4 == 8 * 3 * 4 and {r.status for r in runs} == {"complete"}
    assert sorted({r.seed for r in runs}) == [0, 1, 2, 3]
    assert len(list(planned)) == 24

    out = tmp_path / "reports"
    assert main(["report", "--db", url, "--out", str(out), "--format", "md,csv,tex,html"]) == 0
    folder = out / "frac"
    effects = pd.read_csv(folder / "main_effects.csv")
    for col in ("factor", "level", "diff", "diff_ci_low", "diff_ci_high", "p_holm",
                "significant", "n_seeds"):
        assert col in effects.columns, col
    for r in effects[~effects["reference"]].itertuples():
        assert r.n_seeds == 4
        assert r.diff == pytest.approx(EFFECTS[r.factor][r.level], abs=0.003), r
    md = (folder / "report.md").read_text()
    assert "## Design" in md and "Resolution IV:" in md
    assert "Defining relation: I = +optimizer × lr\\_schedule" in md or \
        "Defining relation: I = +optimizer × lr_schedule" in md
    assert "not a paired difference" in md
    assert "mean paired difference over that seed's cells;" not in md  # no pairing claimed
    aliases = pd.read_csv(folder / "alias_structure.csv")
    assert "optimizer × lr_schedule" in set(aliases["effect"])
    assert "not a paired difference" in (folder / "main_effects.tex").read_text()
    assert "<h2>Design</h2>" in (folder / "index.html").read_text()
    inter = pd.read_csv(folder / "interaction_contrasts.csv")
    row = inter[(inter["factor_a"] == "optimizer") & (inter["factor_b"] == "lr_schedule")]
    assert row["aliased_with"].iloc[0] == "model.pool × shift_bn"
    assert abs(float(row["diff"].iloc[0])) < 0.003  # no interaction in the stand-in
