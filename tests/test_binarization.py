"""Binarization levels: forward weights, STE gradients, clipping, first/last layers, repr and
checkpoints."""

from __future__ import annotations

import pytest
import torch

import tricks
from harness.run.build import binary_parameters, build_model
from models.layers import SynapticConv, SynapticLinear
from models.quantizers import XNOR, SignSTE, SignSTEClip
from tests._models_common import cfg


def _train_steps(model, level, steps: int = 5, lr: float = 0.05):
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x = (torch.rand(4, 8, 2, 8, 8) < 0.3).float()
    y = torch.randint(0, 3, (8,))
    for _ in range(steps):
        out = model(x)
        loss = torch.nn.functional.cross_entropy(out.sum(0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        level.after_step(model)
        yield model


def _forward_weights(model):
    return [(layer, layer.effective_weight().detach())
            for _, layer in model.synaptic_layers()]


@pytest.mark.parametrize("name", ["ste", "ste-clip"])
def test_forward_weights_are_pm1_during_and_after_training(name: str) -> None:
    c = cfg({"binarization": name})
    model = build_model(c, input_shape=(2, 8, 8), num_classes=3)
    level = c.level("binarization")
    for m in _train_steps(model, level):
        for layer, w in _forward_weights(m):
            assert layer.binary
            assert set(w.unique().tolist()) <= {-1.0, 1.0}
    assert len(list(binary_parameters(model))) == 4


def test_xnor_forward_is_alpha_times_sign() -> None:
    c = cfg({"binarization": "xnor"})
    model = build_model(c, input_shape=(2, 8, 8), num_classes=3)
    for m in _train_steps(model, c.level("binarization")):
        for layer, w in _forward_weights(m):
            latent = layer.weight.detach()
            alpha = latent.abs().flatten(1).mean(1)
            for o in range(w.shape[0]):
                torch.testing.assert_close(w[o].abs(), alpha[o].expand_as(w[o]))
                assert torch.equal(torch.sign(w[o]), torch.where(latent[o] >= 0, 1.0, -1.0))


def test_ste_clip_keeps_latent_weights_in_unit_interval() -> None:
    c = cfg({"binarization": "ste-clip"})
    model = build_model(c, input_shape=(2, 8, 8), num_classes=3)
    with torch.no_grad():
        for p in binary_parameters(model):
            p.mul_(50)  # start far outside [-1, 1]
    seen_outside = False
    for m in _train_steps(model, c.level("binarization"), lr=0.5):
        for p in binary_parameters(m):
            assert p.abs().max() <= 1.0
            seen_outside = seen_outside or bool((p.abs() == 1.0).any())
    assert seen_outside  # the clip acted


def test_ste_gradients_equal_formula_including_exact_zeros() -> None:
    w = torch.tensor([-2.0, -1.0, -0.3, 0.0, 0.0, 0.4, 1.0, 1.5])
    g = torch.arange(1.0, 9.0)
    for quant, mask in [(SignSTE(), torch.ones(8)),
                        (SignSTEClip(), torch.tensor([0, 1, 1, 1, 1, 1, 1, 0.0]))]:
        x = w.clone().requires_grad_()
        out = quant(x)
        assert torch.equal(out, torch.tensor([-1.0, -1, -1, 1, 1, 1, 1, 1]))  # sign(0) = +1
        (grad,) = torch.autograd.grad((out * g).sum(), x)
        assert torch.equal(grad, g * mask)
    # XNOR: d/dw_i of alpha * sign(w) . g with alpha = mean|w| (one channel):
    # sign(w_i) * (g . sign(w)) / n  +  alpha * g_i * 1{|w_i| <= 1}
    x = w.clone().view(1, 8).requires_grad_()
    (grad,) = torch.autograd.grad((XNOR()(x) * g).sum(), x)
    s = torch.where(w >= 0, 1.0, -1.0)
    alpha = w.abs().mean()
    want = torch.sign(w) * (g * s).sum() / 8 + alpha * g * (w.abs() <= 1).float()
    torch.testing.assert_close(grad.view(8), want)


def test_keep_first_last_fp_roles() -> None:
    c = cfg({"binarization": {"name": "ste-clip", "keep_first_last_fp": True}})
    model = build_model(c, input_shape=(2, 8, 8), num_classes=3)
    roles = {layer.role: layer.binary for _, layer in model.synaptic_layers()}
    assert roles == {"first": False, "hidden": True, "last": False}
    layers = [layer for _, layer in model.synaptic_layers()]
    assert isinstance(layers[0], SynapticConv) and isinstance(layers[-1], SynapticLinear)
    assert layers[0].weight_quantizer is None and layers[-1].weight_quantizer is None
    fp = cfg({"binarization": "fp32"})
    assert not any(layer.binary for _, layer in
                   build_model(fp, input_shape=(2, 8, 8), num_classes=3).synaptic_layers())


def test_quantization_visible_in_repr_and_checkpoint_loads() -> None:
    c = cfg({"binarization": "ste"})
    model = build_model(c, input_shape=(2, 8, 8), num_classes=3)
    assert "SignSTE()" in repr(model)
    fresh = build_model(c, input_shape=(2, 8, 8), num_classes=3)
    fresh.load_state_dict(model.state_dict())
    x = (torch.rand(4, 2, 2, 8, 8) < 0.3).float()
    model.eval()
    fresh.eval()
    assert torch.equal(model(x), fresh(x))


def test_fp32_has_no_quantizer() -> None:
    level = tricks.make("binarization", "fp32")
    assert level.quantizer("hidden") is None and not level.binary
    with pytest.raises(ValueError, match="role"):
        tricks.make("binarization", "ste").quantizer("middle")
