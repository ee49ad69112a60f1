"""A simulated DVS (dynamic vision sensor) pixel array, in numpy.

Each pixel memorizes its log intensity at its last event and emits an event whenever the current
log intensity has moved by more than its contrast threshold from that memory: ON (p=1) for an
increase, OFF (p=0) for a decrease, one event per threshold crossed (the model of Lichtsteiner et
al. 2008, as simulated by ESIM and v2e). Non-idealities that make real recordings hard are kept:

* threshold mismatch: every pixel has its own ON and OFF threshold, drawn once per sensor (a
  physical array keeps its mismatch from recording to recording);
* refractory period: after an event a pixel is blind for a while; crossings in that time are lost
  (the memorized level still advances, as v2e approximates it);
* timestamp jitter: the latency from crossing to timestamp varies;
* background activity: shot-noise events of random polarity and leak ON events, Poisson in time,
  with a per-pixel rate spread.

Events come out as tonic's structured dtype (``x, y, t, p``; ``t`` in microseconds), sorted by
time. Everything random is drawn from the generator passed in, never from ``np.random``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

__all__ = ["EVENT_DTYPE", "DVSSensor"]

#: tonic's dtype for 2-D polarity events (x, y, t, p), as its NMNIST class uses.
EVENT_DTYPE = np.dtype([("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])


@dataclasses.dataclass(frozen=True)
class DVSSensor:
    """Parameters of the simulated pixel array (all have realistic defaults).

    Attributes:
        width: pixels along x (34 as N-MNIST's ATIS crop).
        height: pixels along y.
        threshold_on: mean ON contrast threshold in log-intensity units (DVS128 / DAVIS: 0.15-0.3).
        threshold_off: mean OFF contrast threshold (log units).
        threshold_sigma: standard deviation of the per-pixel threshold mismatch (log units;
            v2e's default is 0.03); thresholds are clipped to at least ``threshold_min``.
        threshold_min: lower clip of a pixel's threshold, so no pixel fires on every flicker.
        refractory_us: refractory period after an event, microseconds.
        jitter_us: standard deviation of the timestamp jitter (latency noise), microseconds.
        shot_noise_hz: mean rate of shot-noise background events per pixel (random polarity).
        leak_hz: mean rate of leak events per pixel (ON polarity, as junction leakage drives).
        noise_rate_sigma: relative per-pixel spread of both noise rates (log-normal sigma).
        log_eps: offset added to the linear intensity before the log, like a photoreceptor's dark
            current: it limits how many events dark regions produce.
        mismatch_seed: seed of this array's fixed threshold and noise-rate mismatch maps.
    """

    width: int = 34
    height: int = 34
    threshold_on: float = 0.2
    threshold_off: float = 0.2
    threshold_sigma: float = 0.03
    threshold_min: float = 0.05
    refractory_us: float = 1000.0
    jitter_us: float = 200.0
    shot_noise_hz: float = 1.0
    leak_hz: float = 0.2
    noise_rate_sigma: float = 0.5
    log_eps: float = 0.05
    mismatch_seed: int = 1234

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            if getattr(self, name) < 1:
                raise ValueError(f"DVSSensor.{name} must be >= 1")
        for name in ("threshold_on", "threshold_off", "threshold_min", "log_eps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"DVSSensor.{name} must be > 0")
        for name in ("threshold_sigma", "refractory_us", "jitter_us", "shot_noise_hz",
                     "leak_hz", "noise_rate_sigma"):
            if getattr(self, name) < 0:
                raise ValueError(f"DVSSensor.{name} must be >= 0")

    @property
    def sensor_size(self) -> tuple[int, int, int]:
        """tonic's (W, H, P)."""
        return (self.width, self.height, 2)

    def mismatch(self) -> dict[str, np.ndarray]:
        """The array's fixed per-pixel maps [H, W]: ON/OFF thresholds and noise-rate factors."""
        rng = np.random.default_rng(self.mismatch_seed)
        shape = (self.height, self.width)
        on = np.maximum(rng.normal(self.threshold_on, self.threshold_sigma, shape),
                        self.threshold_min)
        off = np.maximum(rng.normal(self.threshold_off, self.threshold_sigma, shape),
                         self.threshold_min)
        # Log-normal with mean 1: the noise rate of a pixel varies but the array average does not.
        s = self.noise_rate_sigma
        rate = rng.lognormal(-0.5 * s * s, s, shape) if s > 0 else np.ones(shape)
        return {"on": on, "off": off, "rate": rate}

    def record(self, intensity: np.ndarray, times_us: np.ndarray,
               rng: np.random.Generator | Sequence[np.random.Generator]) -> list[np.ndarray]:
        """Simulate recordings of a batch of scenes.

        Args:
            intensity: linear intensity in [0, 1]-ish, shape [K, B, H, W]: K time samples of B
                independent scenes (B recordings share this sensor's mismatch, not its noise).
            times_us: the K sample times in microseconds, increasing; the recording spans
                ``times_us[0]`` to ``times_us[-1]``. Intensity is linear in log space between
                samples, so crossings get interpolated timestamps.
            rng: the source of all randomness (jitter, noise): one generator, or one per scene
                (then a recording does not depend on which other scenes share the batch).

        Returns:
            B structured event arrays (:data:`EVENT_DTYPE`), each sorted by ``t``.
        """
        # float32 for the bulk (the log of every pixel at every step dominates the cost); the
        # few crossing pixels are handled in float64.
        intensity = np.asarray(intensity, dtype=np.float32)
        times = np.asarray(times_us, dtype=np.float64)
        if intensity.ndim != 4 or intensity.shape[2:] != (self.height, self.width):
            raise ValueError(f"intensity must be [K, B, {self.height}, {self.width}], got "
                             f"{intensity.shape}")
        if times.shape != (intensity.shape[0],) or np.any(np.diff(times) <= 0):
            raise ValueError("times_us must hold K strictly increasing sample times")
        k_steps, batch = intensity.shape[:2]
        rngs = [rng] * batch if isinstance(rng, np.random.Generator) else list(rng)
        if len(rngs) != batch:
            raise ValueError(f"got {len(rngs)} generators for {batch} scenes")
        maps = self.mismatch()
        th_on = np.tile(maps["on"].reshape(-1), batch).astype(np.float32)
        th_off = np.tile(maps["off"].reshape(-1), batch).astype(np.float32)
        n_pix = batch * self.height * self.width

        log_i = np.log(np.maximum(intensity, np.float32(0.0)) + np.float32(self.log_eps))
        log_i = log_i.reshape(k_steps, n_pix)
        ref = log_i[0].copy()
        # A pixel that has not fired yet is not refractory.
        t_last = np.full(n_pix, -np.inf)
        refr = float(self.refractory_us)
        chunks_pix: list[np.ndarray] = []
        chunks_t: list[np.ndarray] = []
        chunks_p: list[np.ndarray] = []
        for k in range(1, k_steps):
            prev, new = log_i[k - 1], log_i[k]
            diff = new - ref
            # Most pixels cross nothing in a step: find the few that do, then work on those only.
            for idx, th, sign in ((np.flatnonzero(diff >= th_on), th_on, 1.0),
                                  (np.flatnonzero(diff <= -th_off), th_off, -1.0)):
                if idx.size == 0:
                    continue
                theta = th[idx].astype(np.float64)
                r0, p0, p1 = (a[idx].astype(np.float64) for a in (ref, prev, new))
                n = np.floor(sign * (p1 - r0) / theta).astype(np.int64)
                slope = np.maximum((p1 - p0) * sign, 1e-12)
                dt = times[k] - times[k - 1]
                # Crossing i (1-based) happens where the linear ramp reaches ref + sign*i*theta.
                first = (sign * (r0 - p0) + theta) / slope
                t1 = times[k - 1] + np.clip(first, 0.0, 1.0) * dt
                spacing = theta / slope * dt
                i = np.arange(int(n.max()))
                tt = np.minimum(t1[:, None] + i[None, :] * spacing[:, None], times[k])
                valid = i[None, :] < n[:, None]
                # Refractory: keep the first crossing at least `refr` after the last event, then
                # every crossing at least `refr` after the previous kept one.
                keep = np.zeros_like(valid)
                last = t_last[idx]
                for j in range(tt.shape[1]):
                    ok = valid[:, j] & (tt[:, j] - last >= refr)
                    keep[:, j] = ok
                    last = np.where(ok, tt[:, j], last)
                t_last[idx] = last
                ref[idx] = r0 + sign * n * theta
                rows, cols = np.nonzero(keep)
                chunks_pix.append(idx[rows])
                chunks_t.append(tt[rows, cols])
                chunks_p.append(np.full(rows.size, 1 if sign > 0 else 0, dtype=np.int64))

        pix = np.concatenate(chunks_pix) if chunks_pix else np.zeros(0, np.int64)
        t = np.concatenate(chunks_t) if chunks_t else np.zeros(0)
        p = np.concatenate(chunks_p) if chunks_p else np.zeros(0, np.int64)
        per_pixel = self.height * self.width
        sample = pix // per_pixel
        order = np.argsort(sample, kind="stable")
        pix, t, p, sample = pix[order], t[order], p[order], sample[order]
        bounds = np.searchsorted(sample, np.arange(batch + 1))
        duration_s = (times[-1] - times[0]) * 1e-6
        rate = maps["rate"].reshape(-1)
        out = []
        for b in range(batch):
            g = rngs[b]
            sl = slice(bounds[b], bounds[b + 1])
            rem, tb, pb = pix[sl] - b * per_pixel, t[sl], p[sl]
            if self.jitter_us > 0 and tb.size:
                tb = tb + g.normal(0.0, self.jitter_us, tb.size)
            # Background activity: Poisson counts per pixel over the recording, uniform times.
            n_shot = g.poisson(self.shot_noise_hz * duration_s * rate)
            n_leak = g.poisson(self.leak_hz * duration_s * rate)
            noise_pix = np.concatenate([np.repeat(np.arange(per_pixel), n_shot),
                                        np.repeat(np.arange(per_pixel), n_leak)])
            noise_p = np.concatenate([g.integers(0, 2, int(n_shot.sum())),
                                      np.ones(int(n_leak.sum()), dtype=np.int64)])
            noise_t = g.uniform(times[0], times[-1], noise_pix.size)
            rem = np.concatenate([rem, noise_pix])
            tb = np.clip(np.concatenate([tb, noise_t]), times[0], times[-1])
            pb = np.concatenate([pb, noise_p])
            y, x = np.divmod(rem, self.width)
            t_int = np.round(tb - times[0]).astype(np.int64)
            order = np.lexsort((x, y, t_int))
            ev = np.empty(len(order), dtype=EVENT_DTYPE)
            ev["x"], ev["y"], ev["t"], ev["p"] = x[order], y[order], t_int[order], pb[order]
            out.append(ev)
        return out
