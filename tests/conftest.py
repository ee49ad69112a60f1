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


@pytest.fixture
def postgres_url() -> str:
    """The URL of the PostgreSQL server of ``BSNN_TEST_POSTGRES_URL`` (``.ci/run`` sets it);
    the test is skipped, with the reason, where it is not set or no server answers in 3 s."""
    from sqlalchemy import create_engine, text

    url = os.environ.get("BSNN_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("BSNN_TEST_POSTGRES_URL is not set (CI sets it; export it to run the "
                    "PostgreSQL tests)")
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure to connect means: skip
        pytest.skip(f"no PostgreSQL server answers at {url}: {type(exc).__name__}")
    return url
