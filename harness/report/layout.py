"""What the report's documents and LaTeX files show of each table: at most eight columns, with
readable headers and one number format (the CSV files keep every column)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.formats import Column

__all__ = ["SHOWN", "columns_for", "verdict_labels"]

C = Column
_CI = C(("diff_ci_low", "diff_ci_high"), "95% CI")

#: Display columns per table name; grids (level x level means) are handled by columns_for.
SHOWN: dict[str, list[Column]] = {
    "main_effects": [C("factor"), C("level"), C("seeds"), C("mean"),
                     C("diff", "Δ vs ref.", on_reference="reference"), _CI, C("p_holm"),
                     C("verdict", on_reference="")],
    "ablation": [C("change", width="0.3\\linewidth"), C("seeds"), C("mean"),
                 C("diff", "Δ", on_reference="baseline"), _CI, C("p_holm"),
                 C("significant", on_reference=""), C("resolved", on_reference="")],
    "simple_effects": [C("within"), C("level"), C("seeds"), C("mean"),
                       C("diff", "Δ", on_reference="reference"), _CI, C("p_holm"),
                       C("significant", on_reference="")],
    "interaction_contrasts": [C("factor_a"), C("level_a"), C("factor_b"), C("level_b"),
                              C("diff", "Δ of effect"), _CI, C("p_holm"), C("resolved")],
    "bn_vs_shift_bn": [C("group"), C("level"), C("n_seeds", "Seeds"), C("test_acc", "BN"),
                       C("test_acc_shift_bn", "Shift-BN"), C("diff", "Loss"), _CI,
                       C("p_holm")],
    "optimizer_switch": [C("optimizer"), C("binarization"), C("runs"), C("switched"),
                         C("switch_epoch"), C("best_epoch"), C("share_best_before_switch")],
    "cost": [C("binarization"), C("arch"), C("runs"), C("weight_memory_bits"),
             C("weight_memory_ratio"), C("energy_uj_per_sample"), C("synops_per_sample")],
    "best_practice": [C("factor"), C("recommended", width="0.18\\linewidth"),
                      C("decision", width="0.34\\linewidth"), C("reference"), C("best")],
    "best_practice_vs_best": [C("factor"), C("level"), C("best"), C("seeds"),
                              C("diff", "Δ vs best", on_reference="best"), _CI, C("p_holm"),
                              C("resolved", on_reference="")],
    "recommended_vs_baseline": [C("configuration"), C("levels", width="0.34\\linewidth"),
                                C("seeds"), C("mean"),
                                C("diff", "Δ", on_reference="baseline"), _CI,
                                C("p_holm")],
    "recommended_vs_top": [C("configuration"), C("levels", width="0.34\\linewidth"),
                           C("seeds"), C("mean"), C("diff", "Δ", on_reference="baseline"),
                           _CI, C("p_holm")],
    "mixed_model_check": [C("factor"), C("level"), C("seed_diff"), C("seed_se"),
                          C("mixed_diff"), C("mixed_se"), C("mixed_p"), C("verdict")],
}


def columns_for(name: str, frame: pd.DataFrame, factors: list[str], *,
                accuracy: bool = True) -> list[Column] | None:
    """The display columns of table ``name`` (None: every column)."""
    if name in SHOWN:
        return SHOWN[name]
    if name == "top_configurations":
        return [C("rank"), *(C(f, kind="text") for f in factors if f in frame), C("runs"),
                C("mean"), C("std"), C("exported and verified", "Exported", kind="text")]
    if name.startswith("interaction_") and len(frame.columns) and " \\ " in str(
            frame.columns[0]):
        corner, *levels = [str(c) for c in frame.columns]
        return [C(corner, kind="text"), *(C(c, kind="acc" if accuracy else "num")
                                          for c in levels)]
    return None


def verdict_labels(effects: pd.DataFrame) -> pd.Series:
    """Per main-effects row: 'established' (significant after Holm), 'ruled out' (not
    significant, CI resolved: effects beyond its bounds are excluded), 'unresolved' (else);
    '' for reference rows."""
    sig = effects["significant"].fillna(False).astype(bool).to_numpy()
    res = effects["resolved"].fillna(False).astype(bool).to_numpy()
    ref = effects["reference"].fillna(False).astype(bool).to_numpy()
    out = np.where(sig, "established", np.where(res, "ruled out", "unresolved"))
    return pd.Series(np.where(ref, "", out), index=effects.index)
