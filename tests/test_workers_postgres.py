"""The exactly-once study of ``test_workers`` on PostgreSQL, the database of multi-machine runs.

Needs the server named by ``BSNN_TEST_POSTGRES_URL`` (``.ci/run`` sets it); skipped with the
reason where it is not set or no server answers. The study name is unique and removed after.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_workers import run_fake_study


@pytest.mark.postgres
def test_three_workers_on_postgresql(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     postgres_url: str, postgres_study: str) -> None:
    run_fake_study(monkeypatch, tmp_path, postgres_url, postgres_study)
