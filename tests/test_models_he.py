"""The model options He et al.'s code needs: valid padding, an output block with its own norm,
norm + LIF on both sides of pooling, the layers kept in full precision."""

from __future__ import annotations

import pytest
import torch

from harness.errors import ConfigError
from harness.run.build import build_model
from models.layers import SynapticConv, SynapticLinear, TimePool
from models.neurons import LIF
from models.norm import TemporalBatchNorm
from tests._models_common import cfg
from tricks._registry import TrickError


def _kinds(model) -> list[str]:
    names = {SynapticConv: "conv", SynapticLinear: "fc", TemporalBatchNorm: "norm", LIF: "lif",
             TimePool: "pool"}
    return [names.get(type(m), type(m).__name__) for m in model.layers]


def _same(a, b, x) -> None:
    assert [k for k, _ in a.state_dict().items()] == [k for k, _ in b.state_dict().items()]
    for (_, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(p, q)
    torch.testing.assert_close(a(x), b(x))


X = (torch.rand(4, 3, 2, 17, 17, generator=torch.Generator().manual_seed(0)) < 0.3).float()


def test_options_off_are_the_old_network() -> None:
    torch.manual_seed(1)
    old = build_model(cfg(), input_shape=(2, 17, 17), num_classes=5)
    torch.manual_seed(1)
    new = build_model(cfg(model={"padding": "same", "output_norm": False},
                          factors={"binarization": {"name": "fp32", "full_precision": "none"}}),
                      input_shape=(2, 17, 17), num_classes=5)
    _same(old, new, X)


@pytest.mark.parametrize(("size", "flat"), [
    # He et al.'s sizes: 48 -> 46 -> 23 -> 21 -> 10 (10*10*128, their CIFAR10-DVS FC) and
    # 34 -> 32 -> 16 -> 14 -> 7 (6272 = 7*7*128, their N-MNIST linearing_size).
    (48, 10 * 10), (34, 7 * 7), (17, 2 * 2)])
def test_valid_padding_shrinks_each_conv_by_kernel_minus_one(size: int, flat: int) -> None:
    model = build_model(cfg(model={"padding": "valid"}), input_shape=(2, size, size),
                        num_classes=3)
    convs = [m for m in model.layers if isinstance(m, SynapticConv)]
    assert [c.padding for c in convs] == [0, 0]
    fc = next(m for m in model.layers if isinstance(m, SynapticLinear))
    assert fc.in_features == 8 * flat
    x = torch.zeros(2, 1, 2, size, size)
    assert model(x).shape == (2, 1, 3)
    # Same padding keeps the old sizes: 17 -> 8 -> 4.
    same = build_model(cfg(), input_shape=(2, 17, 17), num_classes=3)
    assert next(m for m in same.layers if isinstance(m, SynapticLinear)).in_features == 8 * 16


def test_valid_padding_too_small_input_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="too small.*valid"):
        build_model(cfg(model={"padding": "valid"}), input_shape=(2, 8, 8), num_classes=3)


def test_output_norm_puts_a_norm_before_the_last_lif() -> None:
    model = build_model(cfg(model={"output_norm": True}, factors={"normalization": "tdbn"}),
                        input_shape=(2, 17, 17), num_classes=5)
    assert _kinds(model)[-4:] == ["lif", "fc", "norm", "lif"]
    assert model.layers[-2].num_features == 5
    assert model(X).shape == (4, 3, 5)
    # With normalization none there is nothing to add.
    plain = build_model(cfg(model={"output_norm": True}, factors={"normalization": "none"}),
                        input_shape=(2, 17, 17), num_classes=5)
    assert _kinds(plain)[-2:] == ["fc", "lif"]
    mlp = build_model(cfg(model={"arch": "mlp", "output_norm": True}), input_shape=(2, 4, 4),
                      num_classes=3)
    assert _kinds(mlp)[-3:] == ["fc", "norm", "lif"]


def test_norm_and_neuron_on_both_sides_of_pooling() -> None:
    model = build_model(cfg(model={"block_order": "conv-norm-neuron-pool-norm-neuron"}),
                        input_shape=(2, 17, 17), num_classes=3)
    kinds = _kinds(model)
    assert kinds[:12] == ["conv", "norm", "lif", "pool", "norm", "lif"] * 2
    norms = [m for m in model.layers[:12] if isinstance(m, TemporalBatchNorm)]
    assert [n.num_features for n in norms] == [4, 4, 8, 8]
    assert len({id(n) for n in norms}) == 4  # each place its own layer
    assert model(X).shape == (4, 3, 3)


@pytest.mark.parametrize(("spec", "binary"), [
    ("none", {"first": True, "hidden": True, "last": True}),
    ("first", {"first": False, "hidden": True, "last": True}),
    ("last", {"first": True, "hidden": True, "last": False}),
    ("first-last", {"first": False, "hidden": True, "last": False}),
])
def test_full_precision_per_role(spec: str, binary: dict[str, bool]) -> None:
    model = build_model(cfg({"binarization": {"name": "ste", "full_precision": spec}}),
                        input_shape=(2, 8, 8), num_classes=3)
    roles = {layer.role: layer.binary for _, layer in model.synaptic_layers()}
    assert roles == binary


def test_full_precision_contradicting_keep_first_last_is_refused() -> None:
    with pytest.raises((ConfigError, TrickError), match="contradicts"):
        cfg({"binarization": {"name": "ste", "keep_first_last_fp": True,
                              "full_precision": "first"}})
