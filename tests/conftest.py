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
