"""Shared helpers of the model-side tests (tiny configs; no data files)."""

from __future__ import annotations

import dataclasses
from typing import Any

import tricks
from tricks._registry import Level


def ensure_augmentation_default() -> None:
    """RunConfig fills every factor with its default; stand in for ``augmentation: none`` only
    while that factor's levels have not landed (a real level always wins)."""
    from tricks import augmentation

    if augmentation.DEFAULT in tricks.registry()["augmentation"]:
        return
    stand_in = dataclasses.dataclass(frozen=True)(type(
        "StandInAugmentation", (augmentation.Augmentation,),
        {"name": augmentation.DEFAULT, "__annotations__": {}, "__module__": __name__}))
    assert issubclass(stand_in, Level)
    augmentation.LEVELS.setdefault(augmentation.DEFAULT, stand_in)
    tricks.registry.cache_clear()


def cfg(factors: dict[str, Any] | None = None, **sections: Any) -> Any:
    from harness.config import RunConfig

    ensure_augmentation_default()
    data = {"dataset": {"time_steps": 4}, "model": {"channels": [4, 8], "hidden": 16},
            "factors": factors or {}}
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return RunConfig.from_dict(data)
