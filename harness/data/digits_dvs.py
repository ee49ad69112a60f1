"""``digits-dvs``: scikit-learn's handwritten digits recorded by the simulated DVS, N-MNIST style.

Orchard et al. (2015) recorded N-MNIST by moving an ATIS sensor in three saccades in front of a
monitor showing each MNIST digit. Here each of the 1,797 8x8 ``load_digits`` images is shown as a
bright digit on a dark screen, each digit pixel ``scale`` sensor pixels wide, blurred by the
optics (Gaussian point-spread function), and moved along N-MNIST's saccade triangle
(0,0) -> (3.5,7) -> (7,0) -> (0,0) pixels, 105 ms per leg, in front of :class:`DVSSensor`.

The rendering is exact, not interpolated: a digit pixel is a box of width ``scale`` convolved with
the PSF, whose integral is a difference of normal CDFs, so a sub-pixel shift produces no
interpolation ripple (which a real sensor would report as spurious events).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from harness.data import memo
from harness.data.dvs_sim import DVSSensor

__all__ = ["DigitsDVSParams", "SACCADES", "generate", "labels"]

#: N-MNIST's saccade corners (x, y) in sensor pixels, visited in order (Orchard et al. 2015).
SACCADES = ((0.0, 0.0), (3.5, 7.0), (7.0, 0.0), (0.0, 0.0))


@dataclasses.dataclass(frozen=True)
class DigitsDVSParams:
    """Generator parameters; every one of them is part of the on-disk cache key.

    Attributes:
        sensor: the simulated pixel array (34x34 like N-MNIST).
        scale: sensor pixels per digit pixel (8x8 digits -> 24x24).
        psf_sigma: optics blur, sensor pixels.
        saccade_ms: duration of one saccade leg.
        step_ms: simulation time step (the scene moves < 0.2 pixel per step).
        background: screen intensity behind the digit (range of a sample, drawn uniformly).
        contrast: intensity of full ink above the background (range, drawn uniformly).
        position_jitter: random offset of the digit, +- pixels (uniform, per sample).
        seed: seed of the per-recording randomness (placement, contrast, sensor noise).
    """

    sensor: DVSSensor = dataclasses.field(default_factory=DVSSensor)
    scale: int = 3
    psf_sigma: float = 0.7
    saccade_ms: float = 105.0
    step_ms: float = 2.5
    background: tuple[float, float] = (0.15, 0.3)
    contrast: tuple[float, float] = (0.4, 0.7)
    position_jitter: float = 1.0
    seed: int = 0


def _box_psf(centers: np.ndarray, origin: np.ndarray, n: int, scale: int,
             sigma: float) -> np.ndarray:
    """Weights [..., P, n]: how much of digit column j (box of width `scale`) reaches pixel p.

    ``centers`` are unit-spaced and ``scale`` an integer, so every edge distance is one of a few
    values per origin: the normal CDF is evaluated on those and gathered (ndtr dominates else).
    """
    from scipy.special import ndtr  # only generation needs it (0.15 s to import)

    u = centers[:, None] - np.arange(n + 1)[None, :] * scale  # [P, n+1] edge offsets
    values, inverse = np.unique(u, return_inverse=True)
    cdf = ndtr((values - origin[..., None]) / sigma)  # [..., V]
    edge = cdf[..., inverse.reshape(u.shape)]  # [..., P, n+1]: CDF at the left edge of box j
    return edge[..., :-1] - edge[..., 1:]


def _path(params: DigitsDVSParams) -> tuple[np.ndarray, np.ndarray]:
    """Sample times (us) and the saccade offset (x, y) at each."""
    legs = len(SACCADES) - 1
    total_ms = legs * params.saccade_ms
    k = int(round(total_ms / params.step_ms)) + 1
    t_ms = np.linspace(0.0, total_ms, k)
    corners = np.asarray(SACCADES)
    leg_t = np.arange(legs + 1) * params.saccade_ms
    offset = np.stack([np.interp(t_ms, leg_t, corners[:, 0]),
                       np.interp(t_ms, leg_t, corners[:, 1])], axis=1)
    return t_ms * 1000.0, offset


def labels() -> np.ndarray:
    """The class of each sample, in :func:`generate`'s order, without generating anything.

    Kept in the data cache: reading them from scikit-learn imports it (about 1 s, in every study
    worker's first run).
    """

    def read() -> dict[str, np.ndarray]:
        from sklearn.datasets import load_digits

        return {"labels": load_digits().target.astype(np.int64)}

    return memo.load_or_build("labels", "digits-dvs",
                              {"dataset": "digits-dvs", "source": "sklearn.load_digits"},
                              read)["labels"]


def generate(params: DigitsDVSParams, indices: Sequence[int] | None = None, *,
             chunk: int = 128) -> list[np.ndarray]:
    """Record digits ``indices`` (default all 1,797, in load_digits order); events per sample.

    Sample i draws only from a generator seeded by ``(params.seed, i)``, so it is the same
    recording whichever other samples are generated with it (a subset can be made alone).
    """
    from sklearn.datasets import load_digits

    images_all = load_digits().images.astype(np.float64) / 16.0  # [N, 8, 8], ink in [0, 1]
    idx = np.arange(len(images_all)) if indices is None else np.asarray(indices, dtype=np.int64)
    images = images_all[idx]
    rngs = [np.random.default_rng([params.seed, int(i)]) for i in idx]
    n = len(idx)
    sensor = params.sensor
    size = images.shape[1] * params.scale
    span = np.max(np.asarray(SACCADES), axis=0)
    # Centre the digit's whole sweep on the sensor.
    base = (np.array([sensor.width, sensor.height]) - size - span) / 2.0
    draws = np.array([[g.uniform(-params.position_jitter, params.position_jitter),
                       g.uniform(-params.position_jitter, params.position_jitter),
                       g.uniform(*params.background), g.uniform(*params.contrast)]
                      for g in rngs]).reshape(n, 4)
    jitter, bg, contrast = draws[:, :2], draws[:, 2], draws[:, 3]
    times_us, offset = _path(params)
    xs = np.arange(sensor.width) + 0.5
    ys = np.arange(sensor.height) + 0.5
    events: list[np.ndarray] = []
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        origin = base[None, None, :] + jitter[None, sl, :] + offset[:, None, :]  # [K, B, 2]
        wx = _box_psf(xs, origin[..., 0], 8, params.scale, params.psf_sigma)  # [K, B, W, 8]
        wy = _box_psf(ys, origin[..., 1], 8, params.scale, params.psf_sigma)  # [K, B, H, 8]
        ink = np.matmul(np.matmul(wy, images[None, sl]), np.swapaxes(wx, -1, -2))  # [K, B, H, W]
        scene = (bg[None, sl, None, None] + contrast[None, sl, None, None] * ink)
        events.extend(sensor.record(scene.astype(np.float32), times_us, rngs[sl]))
    return events
