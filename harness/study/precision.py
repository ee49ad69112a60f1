"""Seeds planned by precision: run seeds in batches until every main contrast is resolved.

A study may give ``train.seeds`` as a rule instead of a list::

    train:
      seeds: {start: 6, step: 2, max: 10, half_width: 0.02}   # optional: first: 0, metric: test_acc

The command runs the first ``start`` seeds (``first``, ``first + 1``, ...), then computes, from
the complete runs in the database, the seed-level 95% CI half-width of every main contrast (each
level of each factor against its reference: per seed the mean paired difference over that
seed's cells, then a t interval over seeds, exactly as the report computes it, through
:mod:`harness.report.stats`). While some half-width is above ``half_width`` and fewer than
``max`` seeds ran, it enqueues the next ``step`` seeds and runs them. New seeds are new runs, so
resume, exactly-once claims, many workers and many machines work as for a list of seeds; a
re-run of the command picks up the seeds already in the database and goes on from there.

**Why precision, never significance.** Stopping when ``p < 0.05`` is optional stopping: every
look is another chance for noise to cross the line, and the false-positive rate grows with the
number of looks (with five looks at a true null, about 14% instead of 5%). Stopping when the CI
is narrow enough looks only at the *spread* of the seed values, not at their mean: the decision
is (to first order) independent of the estimate, so the estimate stays essentially unbiased and
the interval keeps close to its nominal coverage (a slight under-coverage arises only because a
batch whose spread happens to be small stops early). What a stopped study then says — resolved
or not at the target — is a statement of precision, which is what the rule asked for.

``--max-runs`` bounds one command: with it, the command runs one batch at most and adds no seeds.
``--dry-run`` prints the rule with the first batch and the largest possible study.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from harness.errors import SpecError
from harness.store.schema import Run, RunFactor, RunMetric, Study

# harness.report.stats is imported where it is used: importing the report package at module
# level would import harness.results, which imports the spec parser, which imports this module.

__all__ = ["RULE_KEYS", "SeedRule", "main_half_widths", "parse_seed_rule", "run_by_precision"]

RULE_KEYS = ("start", "step", "max", "half_width", "first", "metric")


@dataclasses.dataclass(frozen=True)
class SeedRule:
    start: int
    step: int
    max: int
    half_width: float
    first: int = 0
    metric: str = "test_acc"

    def seeds(self, count: int) -> tuple[int, ...]:
        return tuple(range(self.first, self.first + min(count, self.max)))

    def describe(self) -> str:
        return (f"  seeds planned by precision: start with {self.start}, add {self.step} at a "
                f"time up to {self.max} until every main contrast's 95% CI half-width on "
                f"{self.metric} is <= {self.half_width:g}")


def parse_seed_rule(raw: Mapping[str, Any], path: str) -> SeedRule:
    """Validate a ``train.seeds`` mapping; every problem names the key."""
    def fail(key: str, message: str) -> SpecError:
        return SpecError(f"{path}: 'train.seeds.{key}': {message}")

    unknown = sorted(set(raw) - set(RULE_KEYS))
    if unknown:
        raise fail(str(unknown[0]), f"unknown key (expected: {', '.join(RULE_KEYS)})")
    for key in ("start", "step", "max", "half_width"):
        if key not in raw:
            raise fail(key, "missing (a seed rule needs start, step, max and half_width)")

    def integer(key: str, low: int) -> int:
        v = raw.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise fail(key, f"expected an integer >= {low}, got {v!r}")
        return v

    from harness.report.stats import MIN_SEEDS

    start, step, first = integer("start", MIN_SEEDS), integer("step", 1), integer("first", 0) \
        if "first" in raw else 0
    top = integer("max", start)
    hw = raw["half_width"]
    if isinstance(hw, bool) or not isinstance(hw, int | float) or not (
            math.isfinite(hw) and hw > 0):
        raise fail("half_width", f"expected a positive number, got {hw!r}")
    metric = raw.get("metric", "test_acc")
    if not isinstance(metric, str) or not metric:
        raise fail("metric", f"expected a metric name, got {metric!r}")
    return SeedRule(start, step, top, float(hw), first, metric)


def _complete_runs(engine: Any, study_id: int, metric: str
                   ) -> tuple[list[int], dict[int, dict[str, str]], dict[int, float]]:
    with Session(engine) as s:
        rows = s.execute(select(Run.id, Run.seed).where(
            Run.study_id == study_id, Run.status == "complete")).all()
        ids = {i for i, _ in rows}
        labels: dict[int, dict[str, str]] = {i: {} for i in ids}
        for rid, f, lv in s.execute(select(RunFactor.run_id, RunFactor.factor, RunFactor.level)
                                    .join(Run, Run.id == RunFactor.run_id)
                                    .where(Run.study_id == study_id)):
            if rid in ids:
                labels[rid][f] = lv
        values = {rid: v for rid, v in s.execute(
            select(RunMetric.run_id, RunMetric.value).join(Run, Run.id == RunMetric.run_id)
            .where(Run.study_id == study_id, RunMetric.name == metric)) if rid in ids
            and v is not None}
    seeds = {i: seed for i, seed in rows}
    return [seeds[i] for i in sorted(ids)], {i: labels[i] for i in sorted(ids)}, \
        {i: float(values.get(i, math.nan)) for i in sorted(ids)}


def main_half_widths(engine: Any, study_id: int, levels: Mapping[str, tuple[str, ...]],
                     metric: str) -> dict[str, float]:
    """``{"factor=level": half-width}`` of every main contrast over the complete runs (inf with
    fewer than 3 seeds, as the report calls such a contrast unresolved)."""
    from harness.report.stats import seed_contrast, seed_differences

    seeds, labels, values = _complete_runs(engine, study_id, metric)
    ids = list(labels)
    out: dict[str, float] = {}
    for factor, labs in levels.items():
        others = [f for f in levels if f != factor]
        cells = [tuple(labels[i].get(f, "") for f in others) for i in ids]
        groups = [labels[i].get(factor, "") for i in ids]
        y = [values[i] for i in ids]
        for lab in labs[1:]:
            d = seed_differences(seeds, cells, groups, y, labs[0], lab)
            c = seed_contrast(list(d.values()))
            out[f"{factor}={lab}"] = c.half_width if c.testable and math.isfinite(
                c.half_width) else math.inf
    return out


def _existing_seeds(engine: Any, name: str) -> set[int]:
    with Session(engine) as s:
        study = s.scalars(select(Study.id).where(Study.name == name)).first()
        if study is None:
            return set()
        return set(s.scalars(select(Run.seed).where(Run.study_id == study).distinct()))


def _study_id(engine: Any, name: str) -> int:
    with Session(engine) as s:
        return int(s.scalars(select(Study.id).where(Study.name == name)).one())


def run_by_precision(spec: Any, url: str, run_once: Callable[[Any], Any], *,
                     one_pass: bool = False, progress: bool = True) -> Any:
    """Run ``spec`` (whose ``seed_rule`` is set) batch by batch through ``run_once(spec)``
    (:func:`harness.study.coordinator.run_study`); returns the last batch's outcome with the
    new runs of every batch."""
    from harness.store import engine as store_engine

    rule: SeedRule = spec.seed_rule
    engine = store_engine.open_database(url)
    try:
        have = {s for s in _existing_seeds(engine, spec.name)
                if rule.first <= s < rule.first + rule.max}
        count = max(rule.start, len(have))
        new_runs = 0
        levels = {f.name: f.labels for f in spec.factors}
        while True:
            batch = dataclasses.replace(spec, seeds=rule.seeds(count))
            outcome = run_once(batch)
            new_runs += outcome.new_runs
            unfinished = sum(outcome.counts.get(k, 0) for k in ("pending", "running",
                                                                 "interrupted"))
            if outcome.interrupted or unfinished or one_pass:
                break
            widths = main_half_widths(engine, _study_id(engine, spec.name), levels,
                                      rule.metric)
            wide = {k: w for k, w in widths.items() if not w <= rule.half_width}
            seeds_now = len(batch.seeds)
            if not wide:
                _say(progress, f"precision: every main contrast resolved to ±"
                               f"{rule.half_width:g} with {seeds_now} seeds")
                break
            worst = max(wide, key=lambda k: wide[k])
            if seeds_now >= rule.max:
                _say(progress, f"precision: {len(wide)} main contrast(s) still wider than ±"
                               f"{rule.half_width:g} at the maximum of {rule.max} seeds "
                               f"(widest: {worst}, ±{wide[worst]:.3g}); the report names them")
                break
            count = min(seeds_now + rule.step, rule.max)
            _say(progress, f"precision: {seeds_now} seeds, widest main contrast {worst} ±"
                           f"{wide[worst]:.3g} > ±{rule.half_width:g}: adding seeds "
                           f"{', '.join(map(str, rule.seeds(count)[seeds_now:]))}")
        outcome.new_runs = new_runs
        return outcome
    finally:
        engine.dispose()


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr)
