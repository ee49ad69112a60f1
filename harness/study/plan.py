"""The plan of a study before it runs: dataset checks, the dry-run text and its time estimate."""

from __future__ import annotations

import itertools
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from harness.store import engine as store_engine
from harness.store.schema import Run
from harness.study.spec import StudySpec


def _check_datasets(spec: StudySpec) -> None:
    """A missing dataset fails here, once, before any run starts (DatasetMissingError)."""
    from harness.data.pipeline import check_dataset

    # Only dataset.* factors change the dataset: check each combination of theirs, the other
    # factors at their reference level (any design, search included, and fast on big grids).
    data_factors = [f for f in spec.factors if f.name.startswith("dataset.")]
    seen: set[str] = set()
    for idx in itertools.product(*(range(len(f.labels)) for f in data_factors)):
        combo = {f.name: 0 for f in spec.factors}
        combo.update({f.name: i for f, i in zip(data_factors, idx)})
        cfg = spec.config_for(combo, spec.seeds[0])
        key = repr(cfg.dataset)
        if key not in seen:
            seen.add(key)
            check_dataset(cfg)


def describe_plan(spec: StudySpec, url: str, workers: int) -> str:
    lines = [f"study {spec.name} ({spec.design}) from {spec.path}"]
    for f in spec.factors:
        lines.append(f"  {f.name} ({len(f.labels)}): {', '.join(f.labels)}")
    lines.append(f"  seeds ({len(spec.seeds)}): {', '.join(map(str, spec.seeds))}")
    if spec.seed_rule is not None:
        lines.append(spec.seed_rule.describe() + f" (at most {spec.max_run_count()} runs)")
    combos = spec.combination_count()
    what = "trials" if spec.design == "search" else "combinations"
    lines.append(f"{spec.run_count()} runs = {combos} {what} x {len(spec.seeds)} seeds")
    est = _estimate_run_s(spec, url)
    if est is None:
        lines.append("time: no estimate (no finished run of this dataset/model in the "
                     "database yet; try --max-runs 1 first)")
    else:
        total = est * spec.run_count() / workers
        lines.append(f"time: about {_fmt_s(total)} with {workers} worker(s) "
                     f"({est:.1f} s per run from earlier runs in {url})")
    return "\n".join(lines)


def _estimate_run_s(spec: StudySpec, url: str) -> float | None:
    """Seconds per run from finished runs with the same dataset and model, read-only.

    Their time per epoch is scaled to this spec's epochs; None when there is nothing to go by.
    """
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        return None
    try:
        engine = store_engine.make_engine(url)
        with Session(engine) as s:
            rows = s.execute(select(Run.config, Run.wall_time_s).where(
                Run.status == "complete", Run.wall_time_s.is_not(None))).all()
        engine.dispose()
    except Exception:  # noqa: BLE001 - an estimate never stops a dry run
        return None
    ref = spec.config_for({f.name: 0 for f in spec.factors}, spec.seeds[0]).to_dict()
    per_epoch = [wall / max(1, int(cfg["train"]["epochs"])) for cfg, wall in rows
                 if cfg.get("dataset") == ref["dataset"] and cfg.get("model") == ref["model"]]
    if not per_epoch:
        return None
    return sum(per_epoch) / len(per_epoch) * ref["train"]["epochs"]


def _fmt_s(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"
