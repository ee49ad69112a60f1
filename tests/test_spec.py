"""Study specs: designs, run keys, and every validation error naming file, key and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.errors import SpecError
from harness.study.spec import load_spec, parse_spec, run_key


def _spec(**over: object) -> dict:
    spec = {
        "study": "s",
        "design": "full-factorial",
        "train": {"epochs": 1, "seeds": [0, 1]},
        "factors": {
            "optimizer": ["adam", "sgd", {"name": "hybrid", "switch_at": 0.5}],
            "lr_schedule": ["constant", "cosine"],
            "model.pool": ["max", "avg"],
        },
    }
    spec.update(over)
    return spec


def test_full_factorial_is_every_combination_times_every_seed() -> None:
    spec = parse_spec(_spec(), "x.yaml")
    runs = spec.plan()
    assert spec.run_count() == len(runs) == 3 * 2 * 2 * 2
    assert len({r.key for r in runs}) == len(runs)
    first = runs[0]
    assert first.key == "lr_schedule=constant|model.pool=max|optimizer=adam|seed=0"
    assert first.config.model.pool == "max" and first.config.train.seed == 0
    hybrid = [r for r in runs if r.labels["optimizer"] == "hybrid(switch_at=0.5)"]
    assert len(hybrid) == 8
    assert all(r.config.level("optimizer").label() == "hybrid(switch_at=0.5)" for r in hybrid)
    avg = [r for r in runs if r.labels["model.pool"] == "avg"]
    assert {r.config.model.pool for r in avg} == {"avg"}
    # The base settings reach every run.
    assert {r.config.train.epochs for r in runs} == {1}


def test_one_at_a_time_is_baseline_plus_each_other_level_alone() -> None:
    spec = parse_spec(_spec(design="one-at-a-time"), "x.yaml")
    keys = [r.key for r in spec.plan()]
    # 1 baseline + (3-1) + (2-1) + (2-1) = 5 combinations, x 2 seeds.
    assert spec.run_count() == len(keys) == 10
    combos = sorted({k.rsplit("|", 1)[0] for k in keys})
    assert combos == sorted([
        "lr_schedule=constant|model.pool=max|optimizer=adam",
        "lr_schedule=constant|model.pool=max|optimizer=sgd",
        "lr_schedule=constant|model.pool=max|optimizer=hybrid(switch_at=0.5)",
        "lr_schedule=cosine|model.pool=max|optimizer=adam",
        "lr_schedule=constant|model.pool=avg|optimizer=adam",
    ])


def test_run_key_is_sorted_and_readable() -> None:
    assert run_key({"b": "x", "a": "y(p=1)"}, 3) == "a=y(p=1)|b=x|seed=3"


def test_key_does_not_depend_on_yaml_order() -> None:
    a = parse_spec(_spec(), "x.yaml")
    b = parse_spec(_spec(factors={"model.pool": ["max", "avg"],
                                  "lr_schedule": ["constant", "cosine"],
                                  "optimizer": ["adam", "sgd",
                                                {"name": "hybrid", "switch_at": 0.5}]}), "x.yaml")
    assert {r.key for r in a.plan()} == {r.key for r in b.plan()}
    assert a.config_hash() == b.config_hash()


def test_config_hash_ignores_levels_and_seeds_but_not_settings() -> None:
    base = parse_spec(_spec(), "x.yaml")
    more = parse_spec(_spec(train={"epochs": 1, "seeds": [0, 1, 2]}), "x.yaml")
    other = parse_spec(_spec(train={"epochs": 2, "seeds": [0, 1]}), "x.yaml")
    assert base.config_hash() == more.config_hash()
    assert base.config_hash() != other.config_hash()


def test_config_path_factors_cover_dataset_model_train() -> None:
    spec = parse_spec(_spec(factors={"dataset.time_steps": [4, 8],
                                     "train.weight_decay": [0, 1.0e-4],
                                     "model.neuron.beta": [0.5, 0.9]}), "x.yaml")
    runs = spec.plan()
    assert len(runs) == 16
    r = [r for r in runs if r.labels == {"dataset.time_steps": "8",
                                         "train.weight_decay": "0.0001",
                                         "model.neuron.beta": "0.5"}][0]
    assert r.config.dataset.time_steps == 8
    assert r.config.train.weight_decay == pytest.approx(1e-4)
    assert r.config.model.neuron.beta == 0.5


def test_single_seed_and_default_seed() -> None:
    assert parse_spec(_spec(train={"seed": 7}), "x.yaml").seeds == (7,)
    assert parse_spec(_spec(train={"epochs": 1}), "x.yaml").seeds == (0,)


def test_search_design_needs_n_trials() -> None:
    spec = parse_spec(_spec(design="search", n_trials=5, pruning="median"), "x.yaml")
    assert spec.run_count() == 10 and spec.pruning == "median"
    with pytest.raises(SpecError, match=r"x\.yaml: 'n_trials': design: search needs"):
        parse_spec(_spec(design="search"), "x.yaml")


@pytest.mark.parametrize("over, pattern", [
    ({"studdy": "x"}, r"x\.yaml: 'studdy': unknown key \(expected one of: study,"),
    ({"design": "latin"}, r"'design': expected one of full-factorial, fractional-factorial, "
                          r"one-at-a-time, search"),
    ({"factors": {"optimiser": ["adam"]}}, r"'factors\.optimiser': unknown factor \(expected "
                                           r"a trick factor: .*optimizer"),
    ({"factors": {"optimizer": ["adamw"]}}, r"'factors\.optimizer\[0\]': unknown optimizer "
                                            r"level 'adamw' \(known: adam"),
    ({"factors": {"optimizer": [{"name": "hybrid", "switch_at": "half"}]}},
     r"'factors\.optimizer\[0\]': optimizer level 'hybrid', parameter 'switch_at': expected"),
    ({"factors": {"optimizer": [{"name": "hybrid", "swich_at": 0.5}]}},
     r"parameter 'swich_at': unknown parameter"),
    ({"factors": {"optimizer": ["adam", {"name": "adam"}]}},
     r"'factors\.optimizer\[1\]': duplicate level 'adam' \(same as level 0\)"),
    ({"factors": {"model.pool": ["max", "max"]}}, r"duplicate level 'max'"),
    ({"factors": {"train.weight_decay": [0, 0.0]}}, r"'factors\.train\.weight_decay\[1\]': "
                                                   r"duplicate level '0'"),
    ({"factors": {"optimizer": []}}, r"'factors\.optimizer': empty factor"),
    ({"factors": {"optimizer": "adam"}}, r"'factors\.optimizer': expected a list of levels"),
    ({"factors": {}}, r"'factors': expected a non-empty mapping"),
    ({"factors": {"model.pooling": ["max"]}}, r"'factors\.model\.pooling': unknown "
                                              r"configuration path"),
    ({"factors": {"model.pool": ["max", "median"]}}, r"'factors\.model\.pool\[1\]': "
                                                     r"'model\.pool' expected"),
    ({"factors": {"dataset.time_steps": [4, "ten"]}}, r"'factors\.dataset\.time_steps\[1\]'"),
    ({"train": {"seeds": []}}, r"'train\.seeds': expected a non-empty list"),
    ({"factors": {"train.seed": [0, 1]}}, r"'factors\.train\.seed': seeds are not a factor"),
    ({"train": {"seeds": [0, 0]}}, r"'train\.seeds': duplicate seed"),
    ({"train": {"seeds": ["a"]}}, r"'train\.seeds': expected non-negative integers"),
    ({"train": {"epochz": 1}}, r"x\.yaml: unknown key 'train\.epochz'"),
    ({"n_trials": 3}, r"'n_trials': only allowed with design: search"),
    ({"grid_cap": 10}, r"'factors': 24 runs \(full-factorial: 3 x 2 x 2 levels x 2 seeds\) is "
                       r"over the cap of 10"),
])
def test_bad_specs_name_file_key_and_expectation(over: dict, pattern: str) -> None:
    with pytest.raises(SpecError, match=pattern):
        parse_spec(_spec(**over), "x.yaml")


def test_default_cap_is_ten_thousand() -> None:
    levels = [{"name": "hybrid", "switch_at": round(0.01 * i, 2)} for i in range(1, 100)]
    big = {"optimizer": levels, "train.weight_decay": [0.001 * i for i in range(102)]}
    with pytest.raises(SpecError, match="over the cap of 10000"):
        parse_spec(_spec(factors=big, train={"seeds": [0]}), "x.yaml")


def test_missing_required_keys(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"'study': missing"):
        parse_spec({"factors": {"optimizer": ["adam"]}}, "x.yaml")
    with pytest.raises(SpecError, match=r"'factors': missing"):
        parse_spec({"study": "x"}, "x.yaml")


def test_yaml_tags_and_alias_bombs_are_refused(tmp_path: Path) -> None:
    tagged = tmp_path / "tag.yaml"
    tagged.write_text("study: !!python/object/apply:os.system ['echo hi']\nfactors: {}\n")
    with pytest.raises(SpecError, match=r"tag\.yaml: YAML tag not allowed"):
        load_spec(tagged)
    def bomb(depth: int, tail: str) -> str:
        lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
        for i in range(1, depth):
            prev, cur = f"l{i - 1}" if i > 1 else "a", f"l{i}"
            lines.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
        return "\n".join(lines) + "\n" + tail

    many = tmp_path / "many.yaml"
    many.write_text(bomb(13, ""))
    with pytest.raises(SpecError, match=r"many\.yaml: invalid YAML: more than 100 YAML "
                                        r"aliases \(alias bomb\?\)"):
        load_spec(many)
    # Under the alias limit, yet 9**9 values once expanded: refused by size, before any use.
    deep = tmp_path / "deep.yaml"
    deep.write_text(bomb(9, "dataset: {options: {b: *l8}}\n"))
    with pytest.raises(SpecError, match=r"deep\.yaml: the document expands to more than "
                                        r"100000 values"):
        load_spec(deep)


def test_load_spec_round_trips_a_file(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(_spec()))
    spec = load_spec(path)
    assert spec.name == "s" and spec.path == str(path)
    assert spec.raw["factors"]["model.pool"] == ["max", "avg"]


@pytest.mark.parametrize("name", ["full_factorial.yaml", "quickstart.yaml",
                                  "placebo_demo.yaml"])
def test_shipped_studies_are_valid(name: str) -> None:
    spec = load_spec(Path(__file__).resolve().parent.parent / "studies" / name)
    assert spec.run_count() >= 2


def test_main_job_fits_its_budget_and_keeps_the_design_card() -> None:
    spec = load_spec(Path(__file__).resolve().parent.parent / "studies" / "full_factorial.yaml")
    names = {f.name for f in spec.factors}
    assert names == {"binarization", "optimizer", "shift_bn", "surrogate", "lr_schedule",
                     "augmentation"}
    opt = next(f for f in spec.factors if f.name == "optimizer")
    assert sum(label.startswith("hybrid") for label in opt.labels) == 2
    # About 2 s of wall time per run with 2 workers: the largest study must fit 25 minutes.
    assert spec.seed_rule is not None and spec.seed_rule.half_width == 0.02
    assert spec.seed_rule.start >= 8 and spec.max_run_count() * 2.0 < 25 * 60
    # A resolution V half fraction of the five two-level factors, crossed with the optimizer.
    assert spec.design == "fractional-factorial" and len(spec.plan()) == 48 * 8
