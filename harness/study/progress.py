"""Live progress of a study, read from the database (so runs of every worker and machine count).

Each finished run prints one line; on a terminal a status line (done / total, failures, the
runs in flight, ETA) is redrawn in place below them.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from harness.store.claims import reader, utcnow
from harness.store.schema import FINAL_STATUSES, Run, RunMetric

__all__ = ["Progress"]

_SHOWN_METRICS = ("test_acc", "val_acc_best")


def _fmt_s(seconds: float) -> str:
    seconds = int(round(max(0.0, seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    def __init__(self, engine: Any, study_id: int, *, total: int, workers: int, enabled: bool,
                 name: str, stream: TextIO | None = None, every_s: float = 1.0) -> None:
        self.engine, self.study_id, self.total, self.workers = engine, study_id, total, workers
        self.enabled, self.name = enabled, name
        self.stream = stream or sys.stdout
        self.tty = self.enabled and self.stream.isatty()
        self.every_s = every_s
        self.since = utcnow() - dt.timedelta(seconds=1)
        self.t0 = time.perf_counter()
        self.seen: set[int] = set()
        self.walls: list[float] = []
        self.last_poll = 0.0
        self.status_shown = False

    def _write(self, text: str) -> None:
        if self.status_shown:
            self.stream.write("\r\033[K")
            self.status_shown = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def start_message(self, new_runs: int) -> None:
        if not self.enabled:
            return
        counts = self._counts()
        done = counts.get("complete", 0)
        self._write(f"study {self.name}: {self.total} runs, {done} already complete, "
                    f"{new_runs} newly enqueued, {self.workers} worker(s)")

    def _counts(self) -> dict[str, int]:
        from harness.store.claims import count_by_status

        return count_by_status(self.engine, self.study_id)

    def poll(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self.last_poll < self.every_s:
            return
        self.last_poll = now
        with Session(reader(self.engine)) as s:
            rows = s.execute(select(Run.id, Run.run_key, Run.status, Run.wall_time_s, Run.error)
                             .where(Run.study_id == self.study_id,
                                    Run.finished_at >= self.since,
                                    Run.status != "running")
                             .order_by(Run.finished_at)).all()
            fresh = [r for r in rows if r[0] not in self.seen]
            metrics: dict[int, dict[str, float | None]] = {}
            if fresh:
                for run_id, name, value in s.execute(
                        select(RunMetric.run_id, RunMetric.name, RunMetric.value).where(
                            RunMetric.run_id.in_([r[0] for r in fresh]),
                            RunMetric.name.in_(_SHOWN_METRICS))):
                    metrics.setdefault(run_id, {})[name] = value
            running = list(s.scalars(select(Run.run_key).where(
                Run.study_id == self.study_id, Run.status == "running")))
        counts = self._counts()
        done = sum(counts.get(k, 0) for k in FINAL_STATUSES)
        for i, (run_id, key, status, wall, error) in enumerate(fresh):
            self.seen.add(run_id)
            index = done - (len(fresh) - 1 - i)
            if wall is not None and status in FINAL_STATUSES:
                self.walls.append(wall)
            if status == "failed":
                tail = (error or "").strip().splitlines()[0][:120] if error else ""
            else:
                tail = "  ".join(f"{k}={v:.4f}" for k, v in metrics.get(run_id, {}).items()
                                 if v is not None)
            wall_s = f"{wall:6.1f}s" if wall is not None else "      -"
            eta = self.eta_s(self.total - index)
            eta_s = f"  [ETA {_fmt_s(eta)}]" if eta is not None and index < self.total else ""
            self._write(f"[{index:>{len(str(self.total))}}/{self.total}] {status:<11} "
                        f"{wall_s}  {key}  {tail}{eta_s}")
        if self.tty:
            line = self._status_line(counts, done, running)
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
            self.status_shown = True

    def eta_s(self, remaining: int) -> float | None:
        if not self.walls:
            return None
        return sum(self.walls) / len(self.walls) * remaining / self.workers

    def _status_line(self, counts: dict[str, int], done: int, running: list[str]) -> str:
        failed = counts.get("failed", 0)
        remaining = self.total - done
        eta = self.eta_s(remaining)
        eta_s = _fmt_s(eta) if eta is not None else "?"
        current = running[0] if running else "-"
        more = f" (+{len(running) - 1})" if len(running) > 1 else ""
        return (f"{done}/{self.total} done, {failed} failed, elapsed "
                f"{_fmt_s(time.perf_counter() - self.t0)}, ETA {eta_s} | now: {current}{more}")[
            :200]

    def summary(self, counts: dict[str, int], failed: list[str], wall_s: float, *,
                interrupted: bool, crashed: list[int]) -> None:
        parts = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        lines = [f"study {self.name}: {parts or 'no runs'}; wall time {wall_s:.1f} s"]
        if interrupted:
            lines.append("interrupted: runs in flight are marked 'interrupted'; run the same "
                         "command again to resume")
        left = counts.get("pending", 0) + counts.get("interrupted", 0)
        if left and not interrupted:
            lines.append(f"{left} runs left (stopped by --max-runs or elsewhere); run the same "
                         f"command again to continue")
        if crashed:
            lines.append(f"worker processes exited with codes {crashed}")
        if failed:
            lines.append(f"{len(failed)} failed runs (re-run them with --retry-failed):")
            lines.extend(f"  {k}" for k in failed[:50])
            if len(failed) > 50:
                lines.append(f"  ... and {len(failed) - 50} more")
        # The summary is the answer of the command: it is shown even with --quiet.
        if self.status_shown:
            self.stream.write("\r\033[K")
            self.status_shown = False
        out = sys.stderr if (failed or interrupted or crashed) else self.stream
        out.write("\n".join(lines) + "\n")
        out.flush()
