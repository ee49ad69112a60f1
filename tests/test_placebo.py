"""The placebo factor: levels, the data-order stream it moves, and nothing else it touches."""

from __future__ import annotations

import numpy as np
import torch

import tricks
from harness.config import RunConfig
from harness.data.loaders import FrameLoader
from harness.data.pipeline import build_data
from harness.study.spec import parse_spec


def _orders(loader: FrameLoader, epoch: int) -> torch.Tensor:
    loader.set_epoch(epoch)
    return torch.cat([y for _, y in loader])


def test_levels_labels_and_default() -> None:
    assert tricks.default_level("placebo").label() == "a"
    assert [tricks.make("placebo", n).stream for n in "abc"] == [0, 1, 2]
    assert tricks.make("placebo", {"name": "b"}).label() == "b"
    assert list(tricks.registry()["placebo"]) == list("abcdefgh")


def test_stream_zero_is_the_seed_stream_and_others_only_reorder() -> None:
    frames = torch.arange(40, dtype=torch.uint8).reshape(40, 1, 1)
    labels = torch.arange(40)
    a = FrameLoader(frames, labels, batch_size=8, shuffle=True, seed=3)
    b = FrameLoader(frames, labels, batch_size=8, shuffle=True, seed=3, stream=1)
    # Stream 0 draws exactly what the loader drew before the placebo factor existed.
    seq = np.random.SeedSequence([3, 0]).generate_state(2, dtype=np.uint64)
    gen = torch.Generator().manual_seed(int(seq[0]) & ((1 << 63) - 1))
    assert torch.equal(_orders(a, 0), torch.randperm(40, generator=gen))
    oa, ob = _orders(a, 0), _orders(b, 0)
    assert not torch.equal(oa, ob) and sorted(oa.tolist()) == sorted(ob.tolist())


def test_placebo_changes_only_the_training_order() -> None:
    base = {"dataset": {"name": "digits-dvs", "limit": 48}, "train": {"batch_size": 16}}
    da = build_data(RunConfig.from_dict(base))
    db = build_data(RunConfig.from_dict({**base, "factors": {"placebo": "b"}}))
    assert torch.equal(da.train.frames, db.train.frames)
    for split in ("val", "test"):
        xa = torch.cat([y for _, y in getattr(da, split)])
        xb = torch.cat([y for _, y in getattr(db, split)])
        assert torch.equal(xa, xb)
    ya, yb = _orders(da.train, 0), _orders(db.train, 0)
    assert not torch.equal(ya, yb)


def test_placebo_label_never_enters_other_factors() -> None:
    spec = {"study": "s", "train": {"seeds": [0, 1]},
            "factors": {"binarization": ["fp32", "ste-clip"], "optimizer": ["adam", "sgd"]}}
    plain = parse_spec(spec)
    with_placebo = parse_spec({**spec, "factors": {"placebo": ["a", "b"], **spec["factors"]}})
    assert [f.labels for f in with_placebo.factors[1:]] == [f.labels for f in plain.factors]
    keys = {r.key for r in with_placebo.plan()}
    for r in plain.plan():
        # Keys sort factors by name: the placebo part goes in before the seed.
        assert r.key.replace("|seed=", "|placebo=a|seed=", 1) in keys
    # The placebo level is the only difference between paired configurations.
    runs = with_placebo.plan()
    a = next(r for r in runs if r.labels["placebo"] == "a")
    b = next(r for r in runs if r.labels["placebo"] == "b" and r.seed == a.seed
             and {k: v for k, v in r.labels.items() if k != "placebo"}
             == {k: v for k, v in a.labels.items() if k != "placebo"})
    da, db = a.config.to_dict(), b.config.to_dict()
    assert da["factors"].pop("placebo") != db["factors"].pop("placebo")
    assert da == db


def test_report_shows_the_placebo_first_and_recommends_nothing_for_it() -> None:
    import pandas as pd

    from harness.report import best_practice, main_effects, verdicts

    rng = np.random.default_rng(5)
    rows = [{"status": "complete", "seed": s, "binarization": b, "placebo": p,
             "test_acc": 0.9 - 0.05 * (b == "ste-clip") + rng.normal(0, 0.003)}
            for s in range(6) for b in ("fp32", "ste-clip") for p in ("a", "b")]
    runs = pd.DataFrame(rows)
    levels = {"binarization": ["fp32", "ste-clip"], "placebo": ["a", "b"]}
    me = main_effects(runs, levels=levels, extra=())
    assert me["factor"].tolist()[:2] == ["placebo", "placebo"]
    placebo = me[(me["factor"] == "placebo") & ~me["reference"]].iloc[0]
    assert not placebo["significant"]
    lines = verdicts(me)
    assert lines[0].startswith("Placebo check passed: placebo (test_acc): b vs a")
    assert "a significant placebo would mean" in lines[0]
    assert lines[1].startswith("binarization (test_acc): ste-clip lowers it by ")
    assert lines[1].endswith(": established.")
    bp = best_practice(runs, levels=levels)
    assert bp["factor"].tolist() == ["binarization"]
