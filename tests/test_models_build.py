"""build_model: architectures, block orders, readouts, input kinds, errors, determinism."""

from __future__ import annotations

import copy

import pytest
import torch

from harness.errors import ConfigError
from harness.run.build import build_model
from models.layers import SynapticConv, SynapticLinear, TimePool, hwc_columns
from models.neurons import LIF
from models.norm import TemporalBatchNorm
from tests._models_common import cfg


def _kinds(model) -> list[str]:
    names = {SynapticConv: "conv", SynapticLinear: "fc", TemporalBatchNorm: "norm", LIF: "lif",
             TimePool: "pool"}
    return [names.get(type(m), type(m).__name__) for m in model.layers]


def test_default_conv_layout_and_output() -> None:
    model = build_model(cfg(), input_shape=(2, 17, 17), num_classes=10)
    assert _kinds(model) == ["conv", "norm", "lif", "pool", "conv", "norm", "lif", "pool",
                             "Flatten", "fc", "norm", "lif", "fc", "lif"]
    assert model.layers[9].in_features == 8 * 4 * 4
    for _, layer in model.synaptic_layers():  # bias-free
        assert [n for n, _ in layer.named_parameters()] == ["weight"]
    x = (torch.rand(4, 3, 2, 17, 17) < 0.2).float()
    out = model(x)
    assert out.shape == (4, 3, 10)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    rates = model.spike_rates()
    assert set(rates) == {"layers.2", "layers.6", "layers.11", "layers.13", "overall"}
    total = sum(float(m.spike_count) for m in model.layers if isinstance(m, LIF))
    steps = sum(m.neuron_steps for m in model.layers if isinstance(m, LIF))
    assert rates["overall"] == pytest.approx(total / steps)


@pytest.mark.parametrize(("order", "kinds"), [
    ("conv-norm-pool-neuron", ["conv", "norm", "pool", "lif"]),
    ("conv-pool-norm-neuron", ["conv", "pool", "norm", "lif"]),
])
def test_block_order_and_pool(order: str, kinds: list[str]) -> None:
    model = build_model(cfg(model={"block_order": order, "pool": "avg"}), input_shape=(2, 8, 8),
                        num_classes=3)
    assert _kinds(model)[:4] == kinds
    assert model.layers[_kinds(model).index("pool")].kind == "avg"
    assert model((torch.rand(4, 2, 2, 8, 8) < 0.3).float()).shape == (4, 2, 3)


def test_membrane_readout() -> None:
    model = build_model(cfg(), input_shape=(2, 8, 8), num_classes=3, readout="membrane")
    last = model.layers[-1]
    assert isinstance(last, LIF) and not last.fire
    out = model((torch.rand(4, 2, 2, 8, 8) < 0.3).float())
    assert out.shape == (4, 2, 3)
    assert len(out.unique()) > 2  # real-valued membrane
    with pytest.raises(ConfigError, match="readout"):
        build_model(cfg(), input_shape=(2, 8, 8), num_classes=3, readout="rate")


def test_feature_vectors_need_mlp() -> None:
    with pytest.raises(ConfigError, match="model.arch: mlp"):
        build_model(cfg(), input_shape=(70,), num_classes=5)
    model = build_model(cfg(model={"arch": "mlp"}), input_shape=(70,), num_classes=5)
    assert _kinds(model) == ["fc", "norm", "lif", "fc", "norm", "lif", "fc", "lif"]
    assert model(torch.rand(4, 2, 70)).shape == (4, 2, 5)
    frames = build_model(cfg(model={"arch": "mlp"}), input_shape=(2, 8, 8), num_classes=5)
    assert frames(torch.rand(4, 2, 2, 8, 8)).shape == (4, 2, 5)


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="too small"):
        build_model(cfg(model={"channels": [4, 4, 4, 4]}), input_shape=(2, 8, 8), num_classes=3)
    with pytest.raises(ConfigError, match="kernel_size"):
        build_model(cfg(model={"kernel_size": 2}), input_shape=(2, 8, 8), num_classes=3)
    with pytest.raises(ConfigError, match="time_steps"):
        build_model(cfg({"normalization": "bntt"}, dataset={"time_steps": None}),
                    input_shape=(2, 8, 8), num_classes=3)


def test_paper_sized_shapes() -> None:
    model = build_model(cfg(model={"channels": [64, 128], "hidden": 256}),
                        input_shape=(2, 34, 34), num_classes=10)
    convs = [m for m in model.layers if isinstance(m, SynapticConv)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(2, 64), (64, 128)]
    fcs = [m for m in model.layers if isinstance(m, SynapticLinear)]
    assert [(f.in_features, f.out_features) for f in fcs] == [(128 * 8 * 8, 256), (256, 10)]


def test_same_seed_same_model_and_output() -> None:
    x = (torch.rand(4, 3, 2, 8, 8) < 0.3).float()
    outs = []
    for _ in range(2):
        torch.manual_seed(5)
        model = build_model(cfg({"binarization": "ste"}), input_shape=(2, 8, 8), num_classes=3)
        out = model(x)
        out.sum().backward()
        outs.append((out, [p.grad.clone() for p in model.parameters()]))
    assert torch.equal(outs[0][0], outs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(outs[0][1], outs[1][1]))


def test_per_step_norms_take_time_steps_from_the_data() -> None:
    c = cfg({"normalization": "bntt"}, dataset={"time_steps": None})
    model = build_model(c, input_shape=(2, 8, 8), num_classes=3, time_steps=6)
    norms = [m for m in model.layers if isinstance(m, TemporalBatchNorm)]
    assert norms and all(m.weight.shape[0] == 6 for m in norms)
    assert model((torch.rand(6, 2, 2, 8, 8) < 0.3).float()).shape == (6, 2, 3)


@pytest.mark.parametrize(("normalization", "block_order", "extra"), [
    ("bn", "conv-norm-neuron-pool", {}), ("tebn", "conv-pool-norm-neuron", {}),
    ("bntt", "conv-norm-pool-neuron", {}), ("none", "conv-norm-neuron-pool", {}),
    ("bn", "conv-norm-neuron-pool", {"shift_bn": "on", "binarization": "ste-clip"}),
    ("tdbn", "conv-norm-neuron-pool", {"binarization": "xnor", "pool": "avg"})])
def test_channels_last_convs_compute_what_contiguous_ones_do(normalization: str,
                                                              block_order: str,
                                                              extra: dict) -> None:
    """The CPU default (folded, channels-last, layout kept through BN / LIF / pool) against the
    contiguous per-step and folded paths, in float64: same spikes, same gradients."""
    torch.manual_seed(0)
    extra = dict(extra)
    pool = extra.pop("pool", "max")
    base = build_model(cfg({"normalization": normalization, **extra},
                           model={"block_order": block_order, "pool": pool,
                                  "neuron": {"threshold": 0.3}}),
                       input_shape=(2, 9, 9), num_classes=4).double()
    x = (torch.rand(4, 5, 2, 9, 9) < 0.4).double()
    results = []
    for mode in ("channels_last", "per_step", "folded"):
        model = copy.deepcopy(base)
        for m in model.modules():
            if isinstance(m, SynapticConv):
                m.channels_last, m.per_step = mode == "channels_last", mode == "per_step"
        seen: list[torch.Tensor] = []
        model.layers[0].register_forward_hook(lambda _m, _i, out, seen=seen: seen.append(out))
        out = model(x)
        (out.sum() + 0.1 * (out * torch.arange(4.0, dtype=out.dtype)).sum()).backward()
        fmt = torch.channels_last if mode == "channels_last" else torch.contiguous_format
        assert seen[0].flatten(0, 1).is_contiguous(memory_format=fmt)
        results.append((out.detach(), [p.grad for p in model.parameters()]))
        rates = list(model.spike_rates().values())
        assert 0.02 < rates[0] < 0.98 and 0.0 < rates[-2] < 1.0  # first LIF, and the last one
    for out, grads in results[1:]:
        assert torch.equal(out, results[0][0])
        for g, g0 in zip(grads, results[0][1]):
            torch.testing.assert_close(g, g0, atol=1e-10, rtol=1e-8)


def test_lif_keeps_a_channels_last_layout() -> None:
    x = torch.randn(3, 2, 4, 5, 5).flatten(0, 1).contiguous(memory_format=torch.channels_last)
    x = x.unflatten(0, (3, 2)).requires_grad_()
    spk = LIF()(x * 2)
    assert spk.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
    spk.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


def test_hwc_flatten_equals_the_logical_flatten_with_permuted_weights() -> None:
    """The conv net flattens in (H, W, C) order (a view of channels-last maps); with the first
    FC layer's columns permuted back, the logical (C, H, W) flatten computes the same net."""
    from models.layers import Flatten

    torch.manual_seed(0)
    model = build_model(cfg({"normalization": "bn"}, model={"neuron": {"threshold": 0.3}}),
                        input_shape=(2, 9, 9), num_classes=4).double()
    flat = next(m for m in model.modules() if isinstance(m, Flatten))
    assert flat.order == "hwc"
    ref = copy.deepcopy(model)
    ref_flat = next(m for m in ref.modules() if isinstance(m, Flatten))
    ref_flat.order = "chw"
    fc, ref_fc = (next(m for m in net.modules() if isinstance(m, SynapticLinear))
                  for net in (model, ref))
    c = [m for m in model.modules() if isinstance(m, SynapticConv)][-1].out_channels
    h = w = 2  # 9 -> 4 -> 2
    with torch.no_grad():  # (H, W, C) columns back to (C, H, W)
        ref_fc.weight.copy_(fc.weight.reshape(-1, h, w, c).permute(0, 3, 1, 2).flatten(1))
    assert not torch.equal(ref_fc.weight, fc.weight)
    x = (torch.rand(4, 5, 2, 9, 9) < 0.4).double()
    outs = []
    for net in (model, ref):
        out = net(x)
        (out.sum() + 0.1 * (out * torch.arange(4.0, dtype=out.dtype)).sum()).backward()
        outs.append(out.detach())
    assert torch.equal(outs[0], outs[1]) and 0 < float(outs[0].mean()) < 1
    for (name, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        g = q.grad
        if p is fc.weight:
            g = hwc_columns(g, c, h, w)
        torch.testing.assert_close(p.grad, g, atol=1e-10, rtol=1e-8, msg=name)
    # Without the permutation the logical flatten computes another function.
    with torch.no_grad():
        ref_fc.weight.copy_(fc.weight)
    assert not torch.allclose(ref(x), outs[0])
