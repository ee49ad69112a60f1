"""A cross-check of the seed-level main effects with a linear mixed model (statsmodels MixedLM).

Per non-reference level, one model (see :func:`_fit`) of the paired differences ``level -
reference`` within each cell of the other factors and seed, with the seed as a random block
(its random intercept on the differences is the seed x factor random slope). The table
beside the seed-level contrast gives the model's coefficient, its standard error and Wald
interval, and a verdict: ``agrees``, or ``disagrees`` when the two differ in significance at
0.05 or their standard errors differ by more than a factor of 2 (a sign that one of them is
misled: few seeds for the mixed model's variance components, or a design far from balance for
the per-seed averages). REML (Powell's method on centred, unit-scale differences). The seed-level
t stays the primary test: its small-sample calibration is exact for balanced designs, while
MixedLM's Wald intervals assume many groups.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
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


def _fit(df: pd.DataFrame, lv: Mapping[str, Sequence[str]], factor: str, label: str,
         metric: str) -> tuple[float, float, bool]:
    """Coefficient, SE and convergence of the mixed model of one level's paired differences.

    Per (seed, cell of the other factors) the difference ``level - reference``; the model is
    ``d = mu + b_seed + e`` with a random seed intercept ``b_seed`` — in the paired form, the
    seed x factor random slope — so the seed is the block, and the run-level noise and the
    seed's slope are separate variance components (REML).
    """
    others = [f for f in lv if f != factor]
    ref = lv[factor][0]
    keys = ["seed", *others]
    wide = (df[df[factor].isin([ref, label])]
            .groupby([*keys, factor], dropna=False)[metric].mean().unstack(factor))
    if ref not in wide or label not in wide:
        raise ValueError("no cell ran both levels")
    d = (wide[label] - wide[ref]).dropna()
    if d.empty:
        # A fractional design's two-level factor: no run of a seed differs from another in it
        # alone; the seed-level difference of level means is the analysis, not a paired model.
        raise ValueError("no cell of the other factors ran both levels (unpaired, as in a "
                         "fractional design)")
    if d.index.get_level_values("seed").nunique() < MIN_SEEDS:
        raise ValueError(f"fewer than {MIN_SEEDS} seeds")
    groups = d.index.get_level_values("seed").to_numpy()
    if len(d) == len(set(groups)):
        # One difference per seed (one-at-a-time designs): the seed's slope and the run noise
        # are one variance, the model is not identified; the seed-level t is the exact analysis.
        raise ValueError("one paired difference per seed (the seed-level t is exact here)")
    y = d.to_numpy(float)
    # Variances of accuracy differences are ~1e-4 and the seed variance is often near its
    # boundary 0: the gradient optimizers then stop at a wrong mean (measured), Powell's
    # derivative-free search on centred, unit-scale data does not.
    centre, scale = float(y.mean()), float(y.std()) or 1.0
    model = MixedLM((y - centre) / scale, np.ones((len(y), 1)), groups=groups)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = model.fit(reml=True, method=["powell", "nm"])
        est, se = float(result.fe_params[0]), float(result.bse_fe[0])
    if not (math.isfinite(se) and se > 0):
        raise ValueError("degenerate fit (no finite standard error)")
    return centre + est * scale, se * scale, bool(result.converged)


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
    for factor in dict.fromkeys(effects["factor"]):
        if factor not in lv:
            continue
        sub = effects[(effects["factor"] == factor) & ~effects["reference"].astype(bool)]
        if sub.empty:
            continue
        for r in sub.itertuples():
            n = int(r.n_seeds)
            seed_se = (r.half_width / stats.t.ppf(0.975, n - 1)
                       if n >= 2 and math.isfinite(r.half_width) else math.nan)
            try:
                est, se, converged = _fit(df, lv, factor, str(r.level), metric)
                failure = ""
            except Exception as exc:  # noqa: BLE001 - a failed cross-check is reported
                est, se, converged, failure = math.nan, math.nan, False, f"not fitted: {exc}"
            z = est / se if math.isfinite(se) and se > 0 else math.nan
            p = float(2 * stats.norm.sf(abs(z))) if math.isfinite(z) else math.nan
            ratio = se / seed_se if math.isfinite(seed_se) and seed_se > 0 else math.nan
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

