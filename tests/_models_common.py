"""Shared helpers of the model-side tests (tiny configs; no data files)."""

from __future__ import annotations

from typing import Any


def cfg(factors: dict[str, Any] | None = None, **sections: Any) -> Any:
    from harness.config import RunConfig

    data = {"dataset": {"time_steps": 4}, "model": {"channels": [4, 8], "hidden": 16},
            "factors": factors or {}}
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return RunConfig.from_dict(data)
