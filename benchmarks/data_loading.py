"""Frame loading speed: first pass (events -> preprocessing -> tonic ToFrame) vs the frame cache.

Prints samples/s for both on digits-dvs (events already generated, so the first pass measures the
conversion alone, as for a real dataset already on disk) and the ratio (target: cached >= 10x),
then the per-epoch cost of an event-level augmentation, which re-bins the training events.

    .venv/bin/python benchmarks/data_loading.py [--limit N] [--repeat R]

Uses a temporary cache folder unless BSNN_CACHE_DIR is set.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="samples per split (all: none)")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions (best kept)")
    args = parser.parse_args()
    own = "BSNN_CACHE_DIR" not in os.environ
    if own:
        os.environ["BSNN_CACHE_DIR"] = tempfile.mkdtemp(prefix="bsnn-bench-cache-")
    try:
        run(args)
    finally:
        if own:
            shutil.rmtree(os.environ["BSNN_CACHE_DIR"], ignore_errors=True)


def run(args: argparse.Namespace) -> None:

    from harness.config import RunConfig
    from harness.data import cache
    from harness.data.frames import Preprocess, to_frames
    from harness.data.pipeline import DATASETS, _Source, build_data

    cfg = RunConfig.from_dict({"dataset": {"name": "digits-dvs", "limit": args.limit}})
    t0, c0 = time.perf_counter(), time.process_time()
    build_data(cfg)  # generates events (once per generator parameters) and fills the cache
    print(f"cache dir: {os.environ['BSNN_CACHE_DIR']}")
    print(f"generation + first build (nothing cached before: both; else the cache read): "
          f"{time.perf_counter() - t0:.1f} s wall, {time.process_time() - c0:.1f} s CPU")

    source = _Source(cfg, DATASETS["digits-dvs"])
    pool_name, indices = source.plan()["train"]
    if args.limit:
        indices = indices[:args.limit]
    events = source.pool(pool_name).read_many(indices)
    prep = Preprocess(sensor_size=(34, 34, 2), target_size=(17, 17))
    n = len(events)

    def convert() -> None:
        frames = np.stack([to_frames(prep(e), prep.out_sensor_size, 8) for e in events])
        np.clip(frames, 0, 255).astype(np.uint8)

    def cached() -> None:
        path = next((cache.cache_dir() / "frames").glob("digits-dvs-train-*.npz"))
        with np.load(path) as data:
            data["frames"]
        # What a run does: full build_data through the cache (all three splits, checksums).
        build_data(cfg)

    def best(fn) -> float:
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    t_convert = best(convert)
    t_cached = best(cached)
    total = sum(getattr(build_data(cfg), s).num_samples for s in ("train", "val", "test"))
    convert_rate = n / t_convert
    cached_rate = total / t_cached
    print(f"first pass (preprocess + tonic ToFrame, train split, {n} samples): "
          f"{convert_rate:,.0f} samples/s")
    print(f"cached (build_data, all splits, {total} samples, checksums verified): "
          f"{cached_rate:,.0f} samples/s")
    print(f"ratio cached / first pass: {cached_rate / convert_rate:.1f}x (target >= 10x)")

    for level in ("drop-event", "time-jitter", "event-drop"):
        data = build_data(cfg.with_path("factors.augmentation", level))
        loader = data.train
        start = time.perf_counter()
        loader.epoch_frames(0, np.random.default_rng(0))
        t_epoch = time.perf_counter() - start
        print(f"event-level augmentation {level}: re-framing {loader.num_samples} training "
              f"samples costs {t_epoch:.2f} s per epoch")


if __name__ == "__main__":
    main()
