"""The header of a study's report: run counts, machines, versions, the spec as YAML."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import yaml

__all__ = ["PENDING", "failed_runs", "header"]

PENDING = ("pending", "running", "interrupted")
_PENDING = PENDING


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d} ({seconds:.1f} s)"


def _status_line(counts: Mapping[str, int]) -> str:
    total = sum(counts.values())
    pending = sum(counts.get(s, 0) for s in _PENDING)
    parts = [f"{counts.get('complete', 0)} complete", f"{counts.get('failed', 0)} failed",
             f"{pending} pending"]
    detail = [f"{counts[s]} {s}" for s in ("running", "interrupted") if counts.get(s)]
    others = [f"{n} {s}" for s, n in sorted(counts.items())
              if s not in ("complete", "failed", *_PENDING)]
    text = f"{total} runs: " + ", ".join(parts)
    if detail:
        text += f" (of which {', '.join(detail)})"
    if others:
        text += ", " + ", ".join(others)
    return text


def _machines(runs: pd.DataFrame) -> list[str]:
    have = runs[runs["host"].notna() | runs["device"].notna()]
    pairs = Counter(zip(have["host"].fillna("?"), have["device"].fillna("?")))
    return [f"{h} ({d}): {n} runs" for (h, d), n in sorted(pairs.items())]


def _versions(runs: pd.DataFrame) -> list[str]:
    seen: dict[str, Counter[str]] = {}
    for v in runs["versions"]:
        if isinstance(v, Mapping):
            for k, val in v.items():
                seen.setdefault(str(k), Counter())[json.dumps(val) if not isinstance(val, str)
                                                   else val] += 1
    return [f"{k} {', '.join(sorted(c))}" for k, c in seen.items()]


def header(report: Any) -> dict[str, Any]:
    runs, info = report.runs, report.info
    spec = info["spec"] if isinstance(info["spec"], Mapping) else {}
    counts = report.counts
    total = sum(counts.values())
    complete = counts.get("complete", 0)
    wall = runs["wall_time_s"].astype(float)
    partial = None
    pending = sum(counts.get(s, 0) for s in _PENDING)
    failed = counts.get("failed", 0)
    if pending or not total:
        partial = (f"Partial study: {complete} of {total} runs complete, {failed} failed, "
                   f"{pending} pending. Tables use the complete runs only.")
    elif complete < total:
        partial = (f"Finished with {total - complete} of {total} runs not complete ({failed} "
                   f"failed, listed at the end). Tables use the complete runs only.")
    finished = runs["finished_at"].dropna()
    return {
        "partial": partial,
        "items": [
            ("Study", info["name"]),
            ("Design", str(info["design"])),
            ("Dataset", _compact(spec.get("dataset"))),
            ("Model", _compact(spec.get("model"))),
            ("Runs", _status_line(counts)),
            ("Total compute time", _duration(float(wall[np.isfinite(wall)].sum()))),
            ("Compared metric", report.metric),
            ("Created", str(info["created_at"])),
            ("Last run finished", str(max(finished)) if len(finished) else "none yet"),
        ],
        "machines": _machines(runs),
        "versions": _versions(runs),
        "spec": yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100),
    }


def _compact(obj: Any) -> str:
    if obj is None:
        return "default"
    return json.dumps(obj, ensure_ascii=False, sort_keys=False, default=str)


def failed_runs(runs: pd.DataFrame) -> pd.DataFrame:
    failed = runs[runs["status"] == "failed"]
    return failed[["run_id", "run_key", "error"]].fillna({"error": ""})
