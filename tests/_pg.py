"""Clean-up of studies the PostgreSQL tests create on the shared test server."""

from __future__ import annotations


def drop_study(url: str, name: str) -> None:
    """Delete study ``name`` from ``url``: our rows (runs cascade) and Optuna's study."""
    import optuna
    from sqlalchemy import create_engine, delete
    from sqlalchemy.orm import Session

    from harness.store.schema import Study

    engine = create_engine(url)
    try:
        with Session(engine) as s, s.begin():
            s.execute(delete(Study).where(Study.name == name))
    finally:
        engine.dispose()
    try:
        optuna.delete_study(study_name=name, storage=url)
    except KeyError:
        pass
