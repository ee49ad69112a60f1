"""A cross-check of the seed-level main effects with a linear mixed model (statsmodels MixedLM).

Per factor, one model over every complete run (see :func:`_fit`): the metric on fixed effects
of the factor's levels (treatment-coded) and of every cell of the other factors, with the seed
as a random block carrying an intercept, a slope per non-reference level of the factor (the
seed x factor interaction that makes runs of one seed non-independent) and a variance
component per cell of the other factors. REML, L-BFGS. The table
beside the seed-level contrast gives the model's coefficient, its standard error and Wald
interval, and a verdict: ``agrees``, or ``disagrees`` when the two differ in significance at
0.05 or their standard errors differ by more than a factor of 2 (a sign that one of them is
misled: few seeds for the mixed model's variance components, or a design far from balance for
the per-seed averages). The seed-level t stays the primary test: its small-sample calibration
is exact for balanced designs, while MixedLM's Wald intervals assume many groups.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from scipy import stats

from harness.report.stats import ALPHA, MIN_SEEDS
from harness.report.tables import _check_factors, _complete, study_factors

__all__ = ["AVAILABLE", "disagreements", "mixed_model_check"]

try:  # an optional cross-check: the report works without statsmodels
    from statsmodels.regression.mixed_linear_model import MixedLM

    AVAILABLE = True
except ImportError:  # pragma: no cover - statsmodels is a declared dependency
    AVAILABLE = False

COLUMNS = ["factor", "level", "n_seeds", "seed_diff", "seed_se", "seed_p", "mixed_diff",
           "mixed_se", "mixed_ci_low", "mixed_ci_high", "mixed_p", "se_ratio", "converged",
           "verdict"]


def _fit(df: pd.DataFrame, lv: Mapping[str, Sequence[str]], factor: str, metric: str
         ) -> tuple[Any, list[str]]:
    """Fixed: the factor's levels and every cell of the other factors (their interactions
    included), so the factor's coefficient is its within-cell contrast as in the seed-level
    averages. Random, per seed: an intercept and the factor's slopes, and a variance component
    per cell of the other factors (the seed x other-factor interactions, which the seed-level
    averages cancel and which would otherwise inflate the residual)."""
    others = [f for f in lv if f != factor]
    data = pd.DataFrame({"y": df[metric].to_numpy(float), "seed": df["seed"].to_numpy(),
                         "cell": (df[others].astype(str).agg("|".join, axis=1).to_numpy()
                                  if others else "")})
    keys = []
    for i, lab in enumerate(lv[factor][1:]):
        data[f"d{i}"] = (df[factor] == lab).astype(float).to_numpy()
        keys.append(f"d{i}")
    ncell = data["cell"].nunique()
    fixed = "y ~ " + " + ".join([*keys, *(["C(cell)"] if ncell > 1 else [])])
    vc = {"cell": "0 + C(cell)"} if ncell > 1 else None
    model = MixedLM.from_formula(fixed, data, groups="seed", re_formula="1 + " + " + ".join(keys),
                                 vc_formula=vc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = model.fit(reml=True, method=["lbfgs"])
    names = {k: f"{factor}={lab}" for k, lab in zip(keys, lv[factor][1:])}
    result_params = result.fe_params.rename(index=names)
    result_bse = result.bse_fe.rename(index=names)
    return (result_params, result_bse, bool(result.converged)), list(names.values())


def mixed_model_check(runs: pd.DataFrame, effects: pd.DataFrame, *, metric: str = "test_acc",
                      levels: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """Per non-reference level, the seed-level contrast of ``effects`` (a
    :func:`harness.report.effects.main_effects` table) beside the mixed model's estimate."""
    lv = study_factors(runs, levels)
    _check_factors(runs, lv)
    df = _complete(runs, metric)
    rows = []
    if not AVAILABLE:
        return pd.DataFrame(columns=COLUMNS)
    for factor in lv:
        sub = effects[(effects["factor"] == factor) & ~effects["reference"].astype(bool)]
        if sub.empty:
            continue
        try:
            if df["seed"].nunique() < MIN_SEEDS:
                raise ValueError(f"fewer than {MIN_SEEDS} seeds")
            (params, ses, converged), names = _fit(df, lv, factor, metric)
            failure = ""
        except Exception as exc:  # noqa: BLE001 - a failed cross-check is reported, not raised
            params = ses = pd.Series(dtype=float)
            names, converged, failure = [], False, f"not fitted: {exc}"
        for r in sub.itertuples():
            key = f"{factor}={r.level}"
            n = int(r.n_seeds)
            seed_se = (r.half_width / stats.t.ppf(0.975, n - 1)
                       if n >= 2 and math.isfinite(r.half_width) else math.nan)
            est = float(params.get(key, math.nan)) if key in names else math.nan
            se = float(ses.get(key, math.nan)) if key in names else math.nan
            z = est / se if se and math.isfinite(se) and se > 0 else math.nan
            p = float(2 * stats.norm.sf(abs(z))) if math.isfinite(z) else math.nan
            ratio = se / seed_se if seed_se and math.isfinite(seed_se) and seed_se > 0 \
                else math.nan
            if failure:
                verdict = failure
            elif not (math.isfinite(p) and math.isfinite(r.p)):
                verdict = "no comparison (a test is missing)"
            elif (p < ALPHA) != (r.p < ALPHA) or not (0.5 <= ratio <= 2.0):
                verdict = (f"disagrees: mixed p = {p:.2g} vs seed-level p = {r.p:.2g}, SE "
                           f"ratio {ratio:.2f}")
            else:
                verdict = "agrees"
            half = 1.959963984540054 * se if math.isfinite(se) else math.nan
            rows.append({"factor": factor, "level": r.level, "n_seeds": n,
                         "seed_diff": r.diff, "seed_se": seed_se, "seed_p": r.p,
                         "mixed_diff": est, "mixed_se": se, "mixed_ci_low": est - half,
                         "mixed_ci_high": est + half, "mixed_p": p, "se_ratio": ratio,
                         "converged": converged, "verdict": verdict})
    return pd.DataFrame(rows, columns=COLUMNS)


def disagreements(check: pd.DataFrame) -> list[str]:
    """The rows where the mixed model disagrees sharply, as short phrases."""
    bad = check[check["verdict"].astype(str).str.startswith("disagrees")]
    return [f"{r.factor} = {r.level}: {r.verdict}" for r in bad.itertuples()]

