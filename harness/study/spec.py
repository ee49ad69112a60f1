"""Study specs: a YAML file naming a base run configuration, factors with levels, seeds, a design.

A spec is validated completely before anything runs or touches a database: every error is a
:class:`~harness.errors.SpecError` whose message names the file, the key and what was expected.

A *factor* is either a registered trick factor (``optimizer``) whose levels are trick levels
(``adam`` or ``{name: hybrid, switch_at: 0.5}``), or a dotted path into the run configuration
(``dataset.time_steps``, ``model.pool``, ``train.weight_decay``) whose levels are plain values.
The first level of every factor is the reference (the baseline of ``one-at-a-time``; coded -1
in a ``fractional-factorial``'s defining relation, see :mod:`harness.fraction`).

A run is one level per factor plus a seed; its *run key* (``optimizer=adam|shift_bn=on|seed=0``)
is built from canonical labels, sorted by factor name, so it is stable across YAML reorderings
and readable in the database.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from harness.config import RunConfig, set_path
from harness.errors import ConfigError, SpecError
from harness.fraction import FRACTIONAL, fraction_problem, in_fraction, two_level
from harness.study.factors import Factor, level_order_change, parse_factor, value_label
from harness.study.limits import check_size, check_stored_lengths, check_text
from harness.study.precision import parse_seed_rule
from harness.yamlio import load_yaml
from tricks._registry import TrickError

__all__ = ["DESIGNS", "DEFAULT_GRID_CAP", "Factor", "PlannedRun", "StudySpec", "load_spec",
           "parse_spec", "run_key", "value_label"]

DESIGNS = ("full-factorial", FRACTIONAL, "one-at-a-time", "search")
DEFAULT_GRID_CAP = 10_000
_TOP_KEYS = ("study", "design", "description", "dataset", "model", "train", "factors",
             "grid_cap", "n_trials", "pruning", "objective", "direction")
_SEARCH_KEYS = ("n_trials", "pruning", "objective", "direction")
_PRUNING = ("none", "median")


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    key: str
    seed: int
    #: Canonical label per varied factor (what ``bench_run_factors`` stores).
    labels: dict[str, str]
    config: RunConfig
    #: Order in the study (runs are claimed in this order).
    position: int


def run_key(labels: Mapping[str, str], seed: int) -> str:
    """The unique, readable key of a run: ``factor=label`` sorted by factor, then the seed."""
    parts = [f"{f}={labels[f]}" for f in sorted(labels)]
    return "|".join([*parts, f"seed={seed}"])


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


@dataclasses.dataclass(frozen=True)
class StudySpec:
    path: str
    name: str
    design: str
    description: str
    #: The spec as loaded (plain YAML types), stored in ``bench_studies.spec``.
    raw: dict[str, Any]
    #: dataset / model / train sections without ``train.seeds`` (validated).
    base: dict[str, Any]
    seeds: tuple[int, ...]
    factors: tuple[Factor, ...]
    grid_cap: int = DEFAULT_GRID_CAP
    n_trials: int | None = None
    pruning: str = "none"
    objective: str = "val_acc_best"
    direction: str = "maximize"
    #: ``train.seeds`` given as a precision rule (harness.study.precision); ``seeds`` is then
    #: its first batch.
    seed_rule: Any = None

    # -- identity ------------------------------------------------------------------------
    def config_hash(self) -> str:
        """Hash of everything that defines what a run computes, except the levels and seeds.

        Two specs with the same hash differ at most in their level lists and seeds, which is the
        only change a resumed study accepts (it then runs just the new combinations).
        """
        ident = {
            "design": self.design,
            "base": self.base,
            "factors": [f.name for f in sorted(self.factors, key=lambda f: f.name)],
            "search": [self.n_trials, self.pruning, self.objective, self.direction]
            if self.design == "search" else None,
        }
        return hashlib.sha256(_canonical_json(ident).encode()).hexdigest()

    def level_order_change(self, old_raw: Mapping[str, Any]) -> str | None:
        """Why this spec's level order differs from that of the spec ``old_raw`` the study was
        created from, or None (see :func:`harness.study.factors.level_order_change`)."""
        return level_order_change(self.path, self.factors, self.base, old_raw)

    # -- size ----------------------------------------------------------------------------
    def combination_count(self) -> int:
        sizes = [len(f.labels) for f in self.factors]
        if self.design in ("full-factorial", FRACTIONAL):  # a half fraction: half of them
            return math.prod(sizes) // (2 if self.design == FRACTIONAL else 1)
        if self.design == "one-at-a-time":
            return 1 + sum(n - 1 for n in sizes)
        return int(self.n_trials or 0)

    def run_count(self) -> int:
        return self.combination_count() * len(self.seeds)

    def max_run_count(self) -> int:
        """Runs of the largest study a seed rule can grow to (``run_count`` without one)."""
        top = self.seed_rule.max if self.seed_rule is not None else len(self.seeds)
        return self.combination_count() * top

    # -- runs ----------------------------------------------------------------------------
    def combinations(self) -> Iterator[dict[str, int]]:
        """Level indices per factor, in study order (the reference combination first; a
        fractional-factorial keeps the full-factorial order's combinations in its fraction)."""
        names = [f.name for f in self.factors]
        if self.design in ("full-factorial", FRACTIONAL):
            two = two_level({f.name: f.labels for f in self.factors})
            for idx in itertools.product(*(range(len(f.labels)) for f in self.factors)):
                if self.design != FRACTIONAL or in_fraction(dict(zip(names, idx)), two):
                    yield dict(zip(names, idx))
        elif self.design == "one-at-a-time":
            yield dict.fromkeys(names, 0)
            for f in self.factors:
                for i in range(1, len(f.labels)):
                    combo = dict.fromkeys(names, 0)
                    combo[f.name] = i
                    yield combo
        else:
            raise SpecError(f"{self.path}: design 'search' has no fixed grid; Optuna samples it")

    def config_for(self, choice: Mapping[str, int], seed: int) -> RunConfig:
        """The run configuration of one combination (level index per factor) and seed."""
        data = json.loads(json.dumps(self.base))
        data.setdefault("train", {})["seed"] = seed
        trick_levels = {}
        for f in self.factors:
            value = f.values[choice[f.name]]
            if f.kind == "trick":
                trick_levels[f.name] = value
            else:
                data = set_path(data, f.name, value)
        if trick_levels:  # Level objects: from_dict takes them as they are
            data["factors"] = {**(data.get("factors") or {}), **trick_levels}
        return RunConfig.from_dict(data)

    def labels_for(self, choice: Mapping[str, int]) -> dict[str, str]:
        return {f.name: f.labels[choice[f.name]] for f in self.factors}

    def plan(self) -> list[PlannedRun]:
        """Every run of a grid design, in order: combinations outer, seeds inner."""
        runs = []
        for combo in self.combinations():
            labels = self.labels_for(combo)
            for seed in self.seeds:
                runs.append(PlannedRun(run_key(labels, seed), seed, labels,
                                       self.config_for(combo, seed), len(runs)))
        return runs


# -- parsing ---------------------------------------------------------------------------------

def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study spec file; every problem raises :class:`SpecError`."""
    data = load_yaml(path)
    return parse_spec(data, str(path))


def parse_spec(data: Any, path: str = "<spec>") -> StudySpec:
    def fail(key: str, message: str) -> SpecError:
        return SpecError(f"{path}: '{key}': {message}")

    if not isinstance(data, Mapping):
        raise SpecError(f"{path}: a study spec must be a mapping with keys {', '.join(_TOP_KEYS)}")
    check_size(data, path)
    check_text(data, path)
    for key in data:
        if key not in _TOP_KEYS:
            raise fail(str(key), f"unknown key (expected one of: {', '.join(_TOP_KEYS)})")
    for key in ("study", "factors"):
        if key not in data:
            raise fail(key, "missing (required)")

    name = data["study"]
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise fail("study", f"expected a non-empty name of at most 255 characters, got {name!r}")
    design = data.get("design", "full-factorial")
    if design not in DESIGNS:
        raise fail("design", f"expected one of {', '.join(DESIGNS)}, got {design!r}")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise fail("description", f"expected text, got {description!r}")

    if design != "search":
        for key in _SEARCH_KEYS:
            if key in data:
                raise fail(key, "only allowed with design: search")

    # The base configuration: every section validated by RunConfig itself.
    base: dict[str, Any] = {}
    for section in ("dataset", "model", "train"):
        value = data.get(section)
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise fail(section, f"expected a mapping, got {value!r}")
        base[section] = dict(value)
    train = base.get("train", {})
    seeds_raw = train.pop("seeds", None)
    if seeds_raw is not None and "seed" in train:
        raise fail("train.seed", "give either train.seed or train.seeds, not both")
    if seeds_raw is None:
        seeds_raw = [train.pop("seed", 0)]
    seed_rule = None
    if isinstance(seeds_raw, Mapping):
        if design == "search":
            raise fail("train.seeds", "a seed rule needs a grid design (full-factorial, "
                                      f"{FRACTIONAL} or one-at-a-time); give a list with "
                                      "design: search")
        seed_rule = parse_seed_rule(seeds_raw, path)
        seeds_raw = list(seed_rule.seeds(seed_rule.start))
    if not isinstance(seeds_raw, list) or not seeds_raw:
        raise fail("train.seeds", f"expected a non-empty list of integers or a rule "
                                  f"{{start, step, max, half_width}}, got {seeds_raw!r}")
    for s in seeds_raw:
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            raise fail("train.seeds", f"expected non-negative integers, got {s!r}")
    if len(set(seeds_raw)) != len(seeds_raw):
        raise fail("train.seeds", f"duplicate seed in {seeds_raw}")
    try:
        RunConfig.from_dict(base)
    except (ConfigError, TrickError) as exc:
        raise SpecError(f"{path}: {exc}") from None

    raw_factors = data["factors"]
    if not isinstance(raw_factors, Mapping) or not raw_factors:
        raise fail("factors", "expected a non-empty mapping of factor to a list of levels")
    factors = tuple(parse_factor(path, str(fname), levels, base)
                    for fname, levels in raw_factors.items())
    problem = fraction_problem({f.name: f.labels for f in factors}) if design == FRACTIONAL \
        else None
    if problem:
        raise fail("factors", problem)

    check_stored_lengths(path, design, factors, seeds_raw)

    grid_cap = data.get("grid_cap", DEFAULT_GRID_CAP)
    if not isinstance(grid_cap, int) or isinstance(grid_cap, bool) or grid_cap < 1:
        raise fail("grid_cap", f"expected a positive integer, got {grid_cap!r}")

    kwargs: dict[str, Any] = {}
    if design == "search":
        n_trials = data.get("n_trials")
        if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
            raise fail("n_trials", f"design: search needs a positive integer, got {n_trials!r}")
        pruning = data.get("pruning", "none")
        if pruning is False or pruning is None:
            pruning = "none"
        if pruning not in _PRUNING:
            raise fail("pruning", f"expected one of {', '.join(_PRUNING)}, got {pruning!r}")
        objective = data.get("objective", "val_acc_best")
        if not isinstance(objective, str) or not objective:
            raise fail("objective", f"expected a metric name, got {objective!r}")
        direction = data.get("direction", "maximize")
        if direction not in ("maximize", "minimize"):
            raise fail("direction", f"expected maximize or minimize, got {direction!r}")
        kwargs = dict(n_trials=n_trials, pruning=pruning, objective=objective,
                      direction=direction)

    spec = StudySpec(path=path, name=name, design=design, description=description,
                     raw=json.loads(_canonical_json(dict(data))), base=base,
                     seeds=tuple(seeds_raw), factors=factors, grid_cap=grid_cap,
                     seed_rule=seed_rule, **kwargs)
    count = spec.max_run_count()
    if count > grid_cap:
        sizes = ("half of " if design == FRACTIONAL else "") + " x ".join(
            str(len(f.labels)) for f in factors)
        n_seeds = seed_rule.max if seed_rule is not None else len(spec.seeds)
        raise fail("factors", f"{count} runs ({design}: {sizes} levels x {n_seeds} "
                              f"seeds) is over the cap of {grid_cap}; raise 'grid_cap' if meant")
    return spec
