"""Cost metrics: memory hand counts, NeuroBench synops against a brute-force count, energy,
sign flips."""

from __future__ import annotations

import math

import pytest
import torch

from harness.run import costs
from harness.run.build import build_model
from models.layers import SynapticConv, SynapticLinear
from models.network import Network
from models.neurons import LIF
from models.norm import TemporalBatchNorm
from models.quantizers import XNOR, SignSTE
from tests._models_common import cfg


def _small(quant=None, shift: str = "off") -> Network:
    # conv 2->4 (3x3) + BN(4) + LIF + flatten + linear 4*4*4 -> 3 + LIF
    from models.layers import Flatten

    return Network([
        SynapticConv(2, 4, 3, quantizer=quant() if quant else None, role="first"),
        TemporalBatchNorm(4, shift=shift),
        LIF(),
        Flatten(),
        SynapticLinear(64, 3, quantizer=quant() if quant else None, role="last"),
        LIF(),
    ])


def test_weight_memory_bits_hand_count() -> None:
    conv, lin, bn = 4 * 2 * 9, 3 * 64, 4
    fp = _small()
    assert costs.weight_memory_bits(fp) == 32 * (conv + lin) + 2 * 32 * bn
    assert costs.weight_memory_ratio(fp) == 1.0
    binary = _small(SignSTE)
    want = conv + lin + 2 * 32 * bn
    assert costs.weight_memory_bits(binary) == want
    assert costs.weight_memory_ratio(binary) == pytest.approx(want / (32 * (conv + lin) + 256))
    xnor = _small(XNOR)
    assert costs.weight_memory_bits(xnor) == conv + lin + 32 * (4 + 3) + 2 * 32 * bn


def test_shift_bn_scale_counts_its_exponent_width() -> None:
    model = _small(SignSTE, shift="on")
    bn = next(m for m in model.modules() if isinstance(m, TemporalBatchNorm))
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 4.0, 0.25, -8.0]))  # exponents 0, 2, -2, 3
    # running_var = 1 -> 1/sqrt(1 + eps) rounds to 1: exponents {0, 2, -2, 3} need 3 bits
    # in two's complement ([-4, 3]), plus a sign bit
    assert costs.exponent_bits(bn.deployed()[0]) == 4
    assert costs.weight_memory_bits(model) == 4 * 2 * 9 + 3 * 64 + 4 * 4 + 32 * 4
    assert costs.exponent_bits(torch.tensor([1.0, 1.0])) == 2
    assert costs.exponent_bits(torch.tensor([2.0 ** -9, 2.0 ** 6])) == 6  # [-16, 15] + sign


def _brute_force_synops(model: Network, x: torch.Tensor) -> tuple[float, float]:
    macs = acs = 0.0
    h = x
    for layer in model.layers:
        if isinstance(layer, SynapticConv | SynapticLinear):
            w = layer.effective_weight().detach()
            binary = bool(((h == 0) | (h == 1)).all())
            ops = 0
            if isinstance(layer, SynapticConv):
                t_, b_, c_, hh, ww = h.shape
                p = layer.padding
                k = layer.kernel_size
                for t in range(t_):
                    for b in range(b_):
                        for o in range(w.shape[0]):
                            for i in range(hh):
                                for j in range(ww):
                                    for c in range(c_):
                                        for di in range(k):
                                            for dj in range(k):
                                                ii, jj = i + di - p, j + dj - p
                                                if 0 <= ii < hh and 0 <= jj < ww and \
                                                        h[t, b, c, ii, jj] != 0 and \
                                                        w[o, c, di, dj] != 0:
                                                    ops += 1
            else:
                ops = int(((h != 0).float() @ (w != 0).float().T).sum())
            if binary:
                acs += ops
            else:
                macs += ops
        h = layer(h)
    n = x.shape[1]
    return macs / n, acs / n


def test_synops_equal_brute_force_count() -> None:
    torch.manual_seed(0)
    model = _small()  # full precision, so zeroed weights really are zero
    with torch.no_grad():
        model.layers[0].weight[1, 1] = 0.0
        model.layers[4].weight[:, :5] = 0.0
    model.eval()
    x = torch.randint(0, 3, (2, 3, 2, 4, 4)).float()  # counts (not binary) -> first layer MACs
    with costs.SynOpsCounter(model) as counter, torch.no_grad():
        model(x)
    got = counter.per_sample()
    with torch.no_grad():
        macs, acs = _brute_force_synops(model, x)
    assert got["macs_per_sample"] == macs
    assert got["acs_per_sample"] == acs
    assert got["synops_per_sample"] == macs + acs
    assert macs > 0 and acs > 0
    # hooks are gone after the block
    with torch.no_grad():
        model(x)
    assert counter.samples == 3


def test_energy_formula_and_cost_metrics() -> None:
    # The constants of Horowitz (ISSCC 2014, 45 nm): fp32 mult 3.7 + add 0.9, int32 add 0.1,
    # 10 pJ per 64-bit access of an 8 KB SRAM.
    assert costs.energy_compute_uj(1e6, 2e6, 3e6) == pytest.approx(
        (4.6e6 + 1.8e6 + 0.3e6) * 1e-6)
    assert costs.energy_memory_uj(640.0, 10.0) == pytest.approx((640 + 10 * 64) * 10 / 64 * 1e-6)
    c = cfg({"binarization": "ste-clip"})
    model = build_model(c, input_shape=(2, 8, 8), num_classes=3)
    x = (torch.rand(4, 5, 2, 8, 8) < 0.2).float()
    m = costs.cost_metrics(model, batch=x)
    assert model.training  # restored
    assert set(m) == {"weight_memory_bits", "weight_memory_ratio", "synops_per_sample",
                      "macs_per_sample", "acs_per_sample", "energy_uj_per_sample",
                      "energy_compute_uj_per_sample", "energy_memory_uj_per_sample",
                      "membrane_updates_per_sample"}
    assert m["macs_per_sample"] == 0  # binary input and spikes everywhere: all accumulates
    # every layer is ±1: each synop is one integer add and one weight bit read
    assert m["energy_compute_uj_per_sample"] == pytest.approx(m["synops_per_sample"] * 0.1e-6)
    # neurons x steps: conv blocks 4*8*8 and 8*4*4, FC 16 and 3, over T = 4 steps
    assert m["membrane_updates_per_sample"] == 4 * (4 * 64 + 8 * 16 + 16 + 3)
    assert m["energy_memory_uj_per_sample"] == pytest.approx(
        (m["synops_per_sample"] + 64 * m["membrane_updates_per_sample"]) * 10 / 64 * 1e-6)
    assert m["energy_uj_per_sample"] == pytest.approx(
        m["energy_compute_uj_per_sample"] + m["energy_memory_uj_per_sample"])
    assert 0 < m["weight_memory_ratio"] < 0.2
    assert "synops_per_sample" not in costs.cost_metrics(model)
    assert m["weight_memory_bits"] == costs.weight_memory_bits(model)
    assert m["weight_memory_ratio"] == costs.weight_memory_ratio(model)


def test_binary_run_saves_energy_and_most_memory_energy_against_its_fp32_twin() -> None:
    """Same architecture and input, ±1 against fp32 weights: the paper's memory claim."""
    x = (torch.rand(4, 8, 2, 8, 8) < 0.3).float()
    out = {}
    for level in ("fp32", "ste-clip"):
        torch.manual_seed(0)
        model = build_model(cfg({"binarization": level}), input_shape=(2, 8, 8), num_classes=3)
        out[level] = costs.cost_metrics(model, batch=x)
    b, f = out["ste-clip"], out["fp32"]
    assert b["synops_per_sample"] > 0 and f["synops_per_sample"] > 0
    assert b["energy_uj_per_sample"] < f["energy_uj_per_sample"]
    assert b["energy_memory_uj_per_sample"] < 0.5 * f["energy_memory_uj_per_sample"]
    assert b["energy_compute_uj_per_sample"] < f["energy_compute_uj_per_sample"]


def test_sign_flip_rate() -> None:
    """The training's per-epoch sign-flip rate over the model's binary weights."""
    from harness.run.train import _SignFlips, binary_parameter_names

    def flips_of(model: Network) -> _SignFlips:
        names = binary_parameter_names(model)
        return _SignFlips([p for n, p in model.named_parameters() if n in names])

    model = _small(SignSTE)
    flips = flips_of(model)
    flips.snapshot()
    assert flips.rate() == 0.0
    with torch.no_grad():
        w = model.layers[0].weight
        w.view(-1)[:9] = -w.view(-1)[:9] - 1e-3 * torch.sign(w.view(-1)[:9])
    assert flips.rate() == pytest.approx(9 / (72 + 192))
    flips.snapshot()
    assert flips.rate() == 0.0
    fp = flips_of(_small())
    fp.snapshot()
    assert math.isnan(fp.rate())
