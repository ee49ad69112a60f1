"""Export a study run to NIR or to the packed integer model, and verify it on the test set.

Python API::

    from harness.deploy.export import export_run
    report = export_run("sqlite:///results.sqlite", "my_study", "best", fmt="packed",
                        out="model.npz")
    report.class_agreement   # fraction of test samples with the same predicted class

The run's configuration comes from the database and its weights from the file recorded there
(:mod:`harness.deploy.weights`); the test set is rebuilt from the configuration. The reference
is the trained model in evaluation mode, for ``packed`` after the shift-BN conversion (power-of-
two BN scales, :func:`harness.run.build.to_shift_bn`; a run trained with ``shift_bn: on`` is
unchanged by it). ``nir`` is checked by simulating the folded graph in float64, ``packed`` by
running the written file through the integer interpreter. A sample is *exact* when no membrane
of the reference comes within ``EXACT_MARGIN`` of its threshold: there float32 rounding of the
reference and the fixed-point rounding of the export cannot change a spike, so every exact
sample must agree. The outcome is stored as run metrics ``export_<format>_spike_agreement``,
``export_<format>_class_agreement`` and ``export_<format>_verified`` (1 or 0).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sqlalchemy import delete, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from harness.deploy.fold import fold_network
from harness.deploy.weights import load_weights
from harness.errors import UserError
from harness.store import engine as store_engine
from harness.store.schema import Run, RunMetric, Study

__all__ = ["EXACT_MARGIN", "ExportReport", "export_run", "reference_outputs"]

#: Membrane distance from the threshold (in the trained model's units) below which a spike may
#: legitimately depend on rounding.
EXACT_MARGIN = 1e-4
FORMATS = ("nir", "packed")


@dataclasses.dataclass
class ExportReport:
    fmt: str
    out: str
    run_key: str
    samples: int
    spike_agreement: float
    class_agreement: float
    exact_samples: int
    exact_mismatches: int
    samples_file: str | None = None

    @property
    def verified(self) -> bool:
        return self.exact_mismatches == 0

    def summary(self) -> str:
        return (f"exported {self.run_key} as {self.fmt} to {self.out}\n"
                f"test set ({self.samples} samples): output spikes equal "
                f"{100 * self.spike_agreement:.3f} %, predicted class equal "
                f"{100 * self.class_agreement:.3f} %; exact samples {self.exact_samples}, "
                f"of which differing {self.exact_mismatches}"
                + (f"\nsamples: {self.samples_file}" if self.samples_file else ""))


def _find_run(engine: Any, study: str, run: str) -> Run:
    with Session(engine) as s:
        st = s.scalars(select(Study).where(Study.name == study)).first()
        if st is None:
            raise UserError(f"no study '{study}' in the database")
        if run != "best":
            row = s.scalars(select(Run).where(Run.study_id == st.id, Run.run_key == run)).first()
            if row is None:
                raise UserError(f"study '{study}' has no run '{run}'")
            if row.status != "complete":
                raise UserError(f"run '{run}' is {row.status}, not complete")
            s.expunge(row)
            return row
        objective = (st.spec or {}).get("objective", "val_acc_best")
        value = RunMetric.value
        order = value.asc() if (st.spec or {}).get("direction") == "minimize" else value.desc()
        rows = s.execute(select(Run, RunMetric.value).join(
            RunMetric, (RunMetric.run_id == Run.id) & (RunMetric.name == objective))
            .where(Run.study_id == st.id, Run.status == "complete",
                   Run.weights_path.is_not(None), RunMetric.value.is_not(None))
            .order_by(order, Run.position)).first()
        if rows is None:
            raise UserError(f"study '{study}' has no complete run with kept weights")
        s.expunge(rows[0])
        return rows[0]


def _model_and_data(run: Run, weights_dir: str | None) -> tuple[Any, Any, Any]:
    from harness.config import RunConfig
    from harness.data.pipeline import build_data
    from harness.run.build import build_model

    cfg = RunConfig.from_dict(run.config)
    state = load_weights(run.weights_path, run.weights_sha256, root=weights_dir,
                         what=f"run '{run.run_key}'")
    data = build_data(cfg)
    model = build_model(cfg, input_shape=tuple(data.input_shape), num_classes=data.num_classes,
                        readout=cfg.level("loss").readout,  # type: ignore[attr-defined]
                        time_steps=getattr(data, "time_steps", None))
    model.load_state_dict(state)
    return cfg, model.eval(), data


@torch.no_grad()
def reference_outputs(model: Any, loader: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                        np.ndarray]:
    """``(frames [T, N, ...], labels, spikes [T, N, K], margin [N])`` of ``model`` on a loader;
    ``margin`` is each sample's smallest ``|membrane - threshold|`` over neurons and steps."""
    from models.neurons import LIF

    lifs = [m for m in model.modules() if isinstance(m, LIF) and m.fire]
    for lif in lifs:
        lif.record_membrane = True
    xs, ys, outs, margins = [], [], [], []
    try:
        for x, y in loader:
            out = model(x)
            margin = torch.full((x.shape[1],), float("inf"), dtype=torch.float64)
            for lif in lifs:
                d = (lif.last_membrane - lif.threshold).abs().transpose(0, 1).flatten(1)
                margin = torch.minimum(margin, d.amin(1).double())
            xs.append(x.numpy())
            ys.append(y.numpy())
            outs.append(out.numpy().astype(np.int8))
            margins.append(margin.numpy())
    finally:
        for lif in lifs:
            lif.record_membrane, lif.last_membrane = False, None
    return (np.concatenate(xs, 1), np.concatenate(ys), np.concatenate(outs, 1),
            np.concatenate(margins))


def _record(engine: Any, run_id: int, fmt: str, rep: ExportReport) -> None:
    values = {f"export_{fmt}_spike_agreement": rep.spike_agreement,
              f"export_{fmt}_class_agreement": rep.class_agreement,
              f"export_{fmt}_verified": float(rep.verified)}
    with Session(engine) as s, s.begin():
        s.execute(delete(RunMetric).where(RunMetric.run_id == run_id,
                                          RunMetric.name.in_(list(values))))
        for name, v in values.items():
            s.add(RunMetric(run_id=run_id, name=name, value=float(v), special=None))


def export_run(url: str | None, study: str, run: str = "best", *, fmt: str, out: str | Path,
               samples: int | None = None, convention: str = "standard",
               weights_dir: str | None = None, dt: float = 1.0) -> ExportReport:
    """Export one run (its key, or ``best`` by the study's objective) and verify it.

    Raises:
        UserError: unknown study or run, no weights, or a setting the format cannot represent.
    """
    from harness.deploy.interpret import forward_float
    from harness.deploy.nir_export import to_nir, write_nir
    from harness.deploy.packed import run_packed, write_packed
    from harness.run.build import has_batch_norm, to_shift_bn

    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {FORMATS}, got {fmt!r}")
    if samples is not None and samples < 1:
        raise UserError(f"--samples must be at least 1, got {samples}")
    if fmt == "packed" and samples is not None:
        raise UserError("--samples is written for --format nir only")
    url = url or store_engine.DEFAULT_DB
    engine = store_engine.open_database(url, create=False)
    try:
        row = _find_run(engine, study, run)
        cfg, model, data = _model_and_data(row, weights_dir)
        if fmt == "packed" and has_batch_norm(model):
            model = to_shift_bn(model).eval()
        ops = fold_network(model)
        if fmt == "nir":
            to_nir(ops, tuple(data.input_shape), dt=dt, convention=convention)  # refuse early
        frames, labels, ref, margin = reference_outputs(model, data.test)
        header = {"input_shape": list(data.input_shape), "time_steps": int(frames.shape[0]),
                  "num_classes": int(data.num_classes), "config": cfg.to_dict(),
                  "source": {"database": make_url(url).render_as_string(hide_password=True),
                             "study": study, "run_key": row.run_key}}
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        samples_file = None
        if fmt == "packed":
            write_packed(out, ops, header=header)
            got = run_packed(out, frames)
        else:
            graph = to_nir(ops, tuple(data.input_shape), dt=dt, convention=convention,
                           metadata={"time_steps": int(frames.shape[0]), "study": study,
                                     "run_key": row.run_key})
            write_nir(out, graph)
            got = forward_float(ops, frames)
            if samples is not None:
                samples_file = str(out) + ".samples.npz"
                n = min(samples, frames.shape[1])
                np.savez_compressed(samples_file, inputs=frames[:, :n], spikes=ref[:, :n],
                                    labels=labels[:n])
        same = (got == ref).reshape(ref.shape[0], ref.shape[1], -1).all(axis=(0, 2))
        pred_ref, pred_got = ref.sum(0).argmax(-1), got.sum(0).argmax(-1)
        exact = margin > EXACT_MARGIN
        rep = ExportReport(fmt=fmt, out=str(out), run_key=row.run_key, samples=int(len(labels)),
                           spike_agreement=float((got == ref).mean()),
                           class_agreement=float((pred_ref == pred_got).mean()),
                           exact_samples=int(exact.sum()),
                           exact_mismatches=int((exact & ~same).sum()),
                           samples_file=samples_file)
        _record(engine, row.id, fmt, rep)
        return rep
    finally:
        engine.dispose()
