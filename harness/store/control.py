"""Study-wide coordination state in the database: level lists, run budgets, search keep-alive.

Everything workers share lives in the database, never in process-local objects, so that a worker
started by hand, by Slurm or on another machine behaves exactly like one the coordinator forked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session

from harness.store.engine import reader
from harness.store.schema import Study, StudyBudget, StudyFactor, utcnow

__all__ = [
    "create_budget",
    "keep_alive",
    "refund_budget",
    "set_keep_alive",
    "take_budget",
    "write_levels",
]


def write_levels(session: Session, study_id: int, varied: Mapping[str, Sequence[str]],
                 constant: Mapping[str, str]) -> None:
    """Replace a study's factor rows: ``varied`` in spec order with their labels in spec order,
    then the trick factors the study holds ``constant`` (one label each)."""
    session.execute(delete(StudyFactor).where(StudyFactor.study_id == study_id))
    rows = [(f, list(labels), True) for f, labels in varied.items()]
    rows += [(f, [label], False) for f, label in constant.items() if f not in varied]
    for i, (factor, labels, is_varied) in enumerate(rows):
        session.add(StudyFactor(study_id=study_id, factor=factor, position=i, varied=is_varied,
                                labels=labels))


# -- budgets ---------------------------------------------------------------------------------

def create_budget(engine: Engine, study_id: int, runs: int) -> int:
    """A new budget of ``runs`` claims; returns its id (what workers are told)."""
    with Session(engine) as s, s.begin():
        row = StudyBudget(study_id=study_id, remaining=int(runs))
        s.add(row)
        s.flush()
        return int(row.id)


def take_budget(engine: Engine, budget_id: int) -> bool:
    """Take one run from the budget; False when it is spent (or gone)."""
    with Session(engine) as s, s.begin():
        res = s.execute(update(StudyBudget)
                        .where(StudyBudget.id == budget_id, StudyBudget.remaining > 0)
                        .values(remaining=StudyBudget.remaining - 1)
                        .execution_options(synchronize_session=False))
        return res.rowcount == 1


def refund_budget(engine: Engine, budget_id: int) -> None:
    """Give back a run taken by a claim that found nothing to run."""
    with Session(engine) as s, s.begin():
        s.execute(update(StudyBudget).where(StudyBudget.id == budget_id)
                  .values(remaining=StudyBudget.remaining + 1)
                  .execution_options(synchronize_session=False))


def budget_left(engine: Engine, budget_id: int) -> int:
    with Session(reader(engine)) as s:
        return int(s.scalar(select(StudyBudget.remaining).where(StudyBudget.id == budget_id))
                   or 0)


# -- keep-alive ------------------------------------------------------------------------------

def set_keep_alive(engine: Engine, study_id: int, seconds: float | None) -> None:
    """While a search still asks for trials: workers wait ``seconds`` more for new runs before
    they call the study done. ``None`` ends the wait at once."""
    until = None if seconds is None else utcnow() + dt.timedelta(seconds=seconds)
    with Session(engine) as s, s.begin():
        s.execute(update(Study).where(Study.id == study_id).values(keep_alive_until=until)
                  .execution_options(synchronize_session=False))


def keep_alive(engine: Engine, study_id: int) -> bool:
    """Whether a coordinator still promises new runs for this study."""
    with Session(reader(engine)) as s:
        until = s.scalar(select(Study.keep_alive_until).where(Study.id == study_id))
    return until is not None and until > utcnow()
