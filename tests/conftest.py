"""Shared test setup: caches and data go to temporary folders, never to the user's ~/.cache."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One cache per test session (generated datasets are built once and shared by the tests;
    worker subprocesses inherit it). ``BSNN_TEST_CACHE_DIR`` keeps it across sessions."""
    saved = {k: os.environ.get(k) for k in ("BSNN_CACHE_DIR", "BSNN_DATA_DIR")}
    os.environ["BSNN_CACHE_DIR"] = os.environ.get("BSNN_TEST_CACHE_DIR") or str(
        tmp_path_factory.mktemp("bsnn-cache"))
    os.environ["BSNN_DATA_DIR"] = str(tmp_path_factory.mktemp("bsnn-data"))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


#: Where ``make test`` looks for PostgreSQL when BSNN_TEST_POSTGRES_URL is not set: a local
#: server with trust authentication and a database named ``test`` (``createdb test``).
LOCAL_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _local_postgres() -> bool:
    """Whether something answers on 127.0.0.1:5432 (a TCP connect, 1 s)."""
    import socket

    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", 5432)) == 0


@pytest.fixture
def postgres_url() -> str:
    """The URL of the PostgreSQL server the PostgreSQL tests use: ``BSNN_TEST_POSTGRES_URL``
    (``.ci/run`` sets it; set it empty to skip them), else the local server of
    :data:`LOCAL_POSTGRES_URL` when one answers on 127.0.0.1:5432. The test is skipped, with
    the reason, where there is none or it does not accept the connection in 3 s."""
    from sqlalchemy import create_engine, text

    url = os.environ.get("BSNN_TEST_POSTGRES_URL")
    if url is None and _local_postgres():
        url = LOCAL_POSTGRES_URL
    if not url:
        pytest.skip("no PostgreSQL: BSNN_TEST_POSTGRES_URL is not set and nothing answers on "
                    "127.0.0.1:5432 (CI sets the URL; export it to run the PostgreSQL tests)")
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure to connect means: skip
        pytest.skip(f"no PostgreSQL server accepts {url}: {type(exc).__name__} (a local "
                    f"server needs the database: createdb -U postgres test)")
    return url


@pytest.fixture
def postgres_study(postgres_url: str) -> Iterator[str]:
    """A unique study name on the PostgreSQL test server, dropped (ours and Optuna's) after."""
    import uuid

    from _pg import drop_study

    name = f"t-{uuid.uuid4().hex[:10]}"
    yield name
    drop_study(postgres_url, name)
