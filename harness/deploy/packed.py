"""The bit-packed integer model: one ``.npz`` file, read back by :func:`load_packed`.

Members (``i`` is the position of the operation in the chain):

* ``header`` — a JSON string: ``format`` (``bsnn-packed``), ``schema_version``, ``frac_bits``,
  ``input_shape``, ``time_steps``, ``num_classes``, the run's ``config`` and ``source``, the
  ``folding`` rule in words, and ``ops``: one entry per operation (``synapse``: kind, padding,
  weight shape; ``pool``: sum/or and size; ``neuron``: beta, leak rule, reset; ``flatten``).
* ``i.weight_bits`` — ``numpy.packbits`` of the ±1 weights (bit 1 = +1), C order, ``uint8``;
* ``i.bias`` — ``int64`` fixed-point biases (``round(b/m * 2^frac_bits)``);
* ``i.fold_sign`` (``int8``) and ``i.fold_scale`` (``float64``) — the folding ``a = s * m`` of
  each output channel, kept for inspection (the interpreter does not use them);
* ``i.threshold`` — ``int64`` fixed-point thresholds (``floor(theta/m * 2^frac_bits)``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from harness.deploy.fold import DeployError, Flatten, Neuron, Op, Pool, Synapse
from harness.deploy.interpret import forward_int, leak_rule

__all__ = ["FORMAT", "PACKED_SCHEMA_VERSION", "FRAC_BITS", "load_packed", "packed_weight_bits",
           "run_packed", "write_packed"]

FORMAT = "bsnn-packed"
PACKED_SCHEMA_VERSION = 1
#: Fractional bits of membranes, biases and thresholds, per folded unit.
FRAC_BITS = 16

FOLDING = ("per output channel the current is a*(W x) + b (a: fan-in scale x input pooling "
           "1/k^2 x pooling before the neuron 1/k^2 x BN scale; b: BN offset); s = sign(a), "
           "m = |a|; stored weights s*W (bits, 1 = +1), bias b/m (/k^2 before a sum pooling), "
           "threshold theta/m, all fixed point with frac_bits fractional bits")


def write_packed(path: str | Path, ops: list[Op], *, header: dict[str, Any]) -> None:
    """Write the folded ``ops`` (every synapse binary) and ``header`` fields to ``path``."""
    arrays: dict[str, np.ndarray] = {}
    entries: list[dict[str, Any]] = []
    scale = 2.0 ** FRAC_BITS
    for i, op in enumerate(ops):
        if isinstance(op, Synapse):
            if not op.binary:
                raise DeployError("the packed format holds binary (±1) weights only and this run "
                                  "has full-precision layers: set factors.binarization: ste-clip "
                                  "(keep_first_last_fp: false), or export --format nir")
            arrays[f"{i}.weight_bits"] = np.packbits((op.weight > 0).reshape(-1))
            arrays[f"{i}.bias"] = np.round(op.bias * scale).astype(np.int64)
            arrays[f"{i}.fold_sign"] = op.fold_sign.astype(np.int8)
            arrays[f"{i}.fold_scale"] = op.fold_scale.astype(np.float64)
            entries.append({"op": "synapse", "kind": op.kind, "padding": op.padding,
                            "weight_shape": list(op.weight.shape)})
        elif isinstance(op, Pool):
            entries.append({"op": "pool", "kind": op.kind, "size": op.size})
        elif isinstance(op, Neuron):
            arrays[f"{i}.threshold"] = np.floor(op.threshold * scale).astype(np.int64)
            entries.append({"op": "neuron", "beta": op.beta, "leak": list(leak_rule(op.beta)),
                            "reset": op.reset})
        elif isinstance(op, Flatten):
            entries.append({"op": "flatten"})
    head = {"format": FORMAT, "schema_version": PACKED_SCHEMA_VERSION, "frac_bits": FRAC_BITS,
            "folding": FOLDING, **header, "ops": entries}
    arrays["header"] = np.array(json.dumps(head))
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(path)


def load_packed(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(header, layers)`` of a packed file, weights unpacked to 0/1 bit arrays."""
    with np.load(path, allow_pickle=False) as z:
        header = json.loads(str(z["header"]))
        if header.get("format") != FORMAT:
            raise DeployError(f"{path} is not a {FORMAT} file")
        if header.get("schema_version") != PACKED_SCHEMA_VERSION:
            raise DeployError(f"{path} has packed schema version {header.get('schema_version')}, "
                              f"this bsnn-bench reads version {PACKED_SCHEMA_VERSION}")
        layers = []
        for i, entry in enumerate(header["ops"]):
            layer = dict(entry)
            if entry["op"] == "synapse":
                shape = entry["weight_shape"]
                bits = np.unpackbits(z[f"{i}.weight_bits"], count=math.prod(shape))
                layer["w_bit"] = bits.reshape(shape)
                layer["bias"] = z[f"{i}.bias"]
            elif entry["op"] == "neuron":
                layer["threshold"] = z[f"{i}.threshold"]
            layers.append(layer)
    return header, layers


def run_packed(path: str | Path, frames: np.ndarray) -> np.ndarray:
    """Output spikes ``[T, N, K]`` of the packed model at ``path`` on integer ``frames``."""
    header, layers = load_packed(path)
    return forward_int(layers, frames, frac_bits=int(header["frac_bits"]))


def packed_weight_bits(path: str | Path) -> int:
    """Bits the packed weight arrays occupy (the ``uint8`` bytes times 8)."""
    with np.load(path, allow_pickle=False) as z:
        return sum(z[k].size * 8 for k in z.files if k.endswith(".weight_bits"))
