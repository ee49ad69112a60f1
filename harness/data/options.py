"""``dataset.options`` of the real datasets: parsed and checked against the dataset's record.

* ``denoise_us`` (datasets with a default Denoise filter, N-MNIST): tonic ``Denoise`` filter
  time in us; null: off.
* ``resize``: how frames reach the target size. ``sum`` (default): tonic ``Downsample`` on the
  events (coordinates scaled and floored: sum pooling of counts, frames stay integer counts).
  ``bilinear``: frames binned at the full sensor size, then resized by bilinear interpolation
  with ``align_corners=True`` (``torch.nn.functional.interpolate``), as He et al.'s code does
  for CIFAR10-DVS and DVS Gesture; the frames become real-valued (stored as float32).
* ``normalize``: ``[[mean per polarity], [std per polarity]]`` applied after the resize,
  ``(x - mean) / std`` per polarity channel (He et al.'s CIFAR10-DVS uses
  ``[[0.2728, 0.1295], [0.2225, 0.1290]]``); null: off. Needs ``resize: bilinear``.
* ``split`` (datasets whose test split is a share of each class, CIFAR10-DVS): ``seeded``
  (default: each class shuffled with the fixed split seed, then 10 % held out) or
  ``file-order`` (the last 10 % of each class in file order are the test set, the first 90 %
  train: He et al.'s code).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from harness.data.catalogue import DatasetRecord
from harness.errors import ConfigError
from tricks._registry import _coerce

__all__ = ["RealOptions", "parse_real_options"]


@dataclasses.dataclass(frozen=True)
class RealOptions:
    denoise_us: float | None = None
    resize: str = "sum"
    normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    split: str = "seeded"


def _allowed(rec: DatasetRecord) -> set[str]:
    keys = {"resize", "normalize"}
    if rec.denoise_us is not None:
        keys.add("denoise_us")
    if rec.test_fraction is not None:
        keys.add("split")
    if rec.sensor_size[1] == 1:  # 1-D sensors (audio): nothing to resize
        keys -= {"resize", "normalize"}
    return keys


def parse_real_options(rec: DatasetRecord, options: dict[str, Any]) -> RealOptions:
    unknown = sorted(set(options) - _allowed(rec))
    if unknown:
        raise ConfigError(f"unknown key 'dataset.options.{unknown[0]}' for dataset '{rec.name}' "
                          f"(allowed: {', '.join(sorted(_allowed(rec))) or 'none'})")
    denoise = options.get("denoise_us", rec.denoise_us)
    if denoise is not None:
        ok, denoise = _coerce(float, denoise)
        if not ok or denoise <= 0:
            raise ConfigError("'dataset.options.denoise_us' must be a number > 0 or null")
    resize = options.get("resize", "sum")
    if resize not in ("sum", "bilinear"):
        raise ConfigError(f"'dataset.options.resize' must be 'sum' or 'bilinear', got "
                          f"{resize!r}")
    split = options.get("split", "seeded")
    if split not in ("seeded", "file-order"):
        raise ConfigError(f"'dataset.options.split' must be 'seeded' or 'file-order', got "
                          f"{split!r}")
    normalize = options.get("normalize")
    if normalize is not None:
        p = rec.sensor_size[2]
        try:
            mean, std = (tuple(float(v) for v in row) for row in normalize)
        except (TypeError, ValueError):
            raise ConfigError(f"'dataset.options.normalize' must be [[mean x {p}], [std x {p}]] "
                              f"(one per polarity), got {normalize!r}") from None
        if len(mean) != p or len(std) != p or min(std) <= 0:
            raise ConfigError(f"'dataset.options.normalize' must be [[mean x {p}], [std x {p}]] "
                              f"(one per polarity) with std > 0, got {normalize!r}")
        if resize != "bilinear":
            raise ConfigError("'dataset.options.normalize' needs 'dataset.options.resize: "
                              "bilinear' (count frames are stored as integers)")
        normalize = (mean, std)
    return RealOptions(denoise_us=denoise, resize=resize, normalize=normalize, split=split)
