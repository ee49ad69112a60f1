"""The report's design section, and what a fractional-factorial design changes in its tables.

The study row stores the design (``bench_studies.design``) and ``bench_study_factors`` the
factors and levels in spec order, so the alias structure is recomputed here from the database
alone with the same pure function the dry run prints (:mod:`harness.fraction`).

In a half fraction no two runs of a seed differ in one two-level factor only: every contrast of a
two-level factor is, per seed, the difference of the seed's level means over the fraction (the
fallback of :func:`harness.report.stats.seed_differences`), which the design balances (each side
holds every other factor's levels equally often), and never a paired difference. The captions
say so, and say which tables the fraction cannot fill (the one-at-a-time ablation, a baseline
outside the fraction) instead of letting an empty row pass for a result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from harness.fraction import (
    FRACTIONAL,
    SUB,
    AliasStructure,
    fraction_problem,
    order_name,
    roman,
    study_fraction,
)
from harness.report.contrasts import PAIRED_UNIT
from harness.report.pages import ReportTable, StudyReport

__all__ = ["UNPAIRED_UNIT", "alias_table", "annotate", "design_lines"]

#: What a contrast is per seed in a fractional design (replaces PAIRED_UNIT in the captions).
UNPAIRED_UNIT = ("per seed, the mean paired difference over that seed's cells where the design "
                 "pairs runs (the factors crossed in full); for a two-level factor of this "
                 "fractional design, which pairs none, the difference of the seed's level means "
                 "over the fraction (balanced: both sides hold every other factor's levels "
                 "equally often), not a paired difference")


def design_lines(design: str, lv: Mapping[str, Sequence[str]]) -> list[str]:
    """The design section's lines (a line indented by SUB belongs to the one above); [] for
    designs other than fractional-factorial."""
    s = study_fraction(design, lv)
    if s is None:
        if design == FRACTIONAL:
            return [f"Fractional-factorial study: {fraction_problem(lv)} in the stored levels; "
                    "no alias structure."]
        return []
    k = s.resolution
    grid = ("Cell means of two two-level factors (interaction grids, heatmap) average over "
            "the half of the other two-level combinations the fraction runs"
            + ("; with three two-level factors a cell fixes the third one, so such a grid "
               "mixes the pair's interaction with the third factor's main effect." if k == 3
               else "."))
    return [f"Design: fractional-factorial, resolution {roman(k)} half fraction.", *s.lines(),
            "Every contrast of a two-level factor is, per seed, the difference of its level "
            "means over the fraction (balanced), not a paired difference; over seeds it is "
            "tested as in any design. Contrasts within one level of a two-level factor use "
            "that level's half of the fraction, itself balanced.", grid,
            "Top configurations rank only the combinations the fraction ran."]


def alias_table(s: AliasStructure) -> pd.DataFrame:
    """One row per main effect and two-factor interaction of the two-level factors, and per
    factor crossed in full: what it is aliased with."""
    rows: list[dict[str, Any]] = []
    for effect, alias in [*s.main_effects(), *s.interactions()]:
        rows.append({"effect": effect, "order": effect.count(" × ") + 1,
                     "aliased_with": alias, "alias_order": alias.count(" × ") + 1})
    for f, _ in s.crossed:
        rows.append({"effect": f, "order": 1, "aliased_with": "none (crossed in full)",
                     "alias_order": 0})
    return pd.DataFrame(rows, columns=["effect", "order", "aliased_with", "alias_order"])


def _notes(s: AliasStructure) -> dict[str, str]:
    """Per table name, the sentences a fractional design adds to its caption."""
    k, two = s.resolution, s.two_level
    res = f"resolution {roman(k)}"
    crossed = ", ".join(f for f, _ in s.crossed)
    baseline_in = k % 2 == 0
    iv = ("; in this resolution IV design two-factor interactions of two-level factors are "
          "aliased in pairs (aliased_with), so such a row estimates the sum of the pair"
          if k == 4 else "")
    return {
        "main_effects": (
            f"Design: fractional-factorial ({res} half fraction; aliases in the design "
            f"section). In this design each main effect of a two-level factor ({', '.join(two)}) "
            "is the per-seed difference of its level means over the fraction (balanced: every "
            "other factor's levels occur equally often at both levels), not a paired "
            f"difference, and is aliased with a {order_name(k - 1)}"
            + (f"; {crossed}, crossed in full, keeps paired differences." if crossed else ".")),
        "ablation": (
            "This fractional design does not hold the one-at-a-time ablation: "
            + ("the baseline (every reference level) is in the fraction, but no single change "
               "of a two-level factor is (it flips the sign of the defining relation), so "
               "those rows have no runs and no contrast"
               if baseline_in else
               "the baseline (every reference level) is not in the fraction (the product of "
               "its codes is -1), so no row has a baseline to be compared with")
            + "; the main effects are this design's estimates."),
        "interaction_contrasts": (
            "aliased_with (CSV): the effect this fractional design cannot tell the contrast "
            "from" + ("; in this resolution III design an interaction of two two-level factors "
                      "is aliased with a main effect: those rows carry no estimate"
                      if k == 3 else iv) + "."),
        "simple_effects": (
            "aliased_with (CSV): what the fractional design mixes into each contrast"
            + ("; with three two-level factors a contrast of one within a level of another is "
               "aliased with the third's main effect: those rows carry no estimate"
               if k == 3 else "") + "."),
        "mixed_model_check": (
            "In this fractional design no two runs of a seed differ in a two-level factor "
            "alone, so the paired model has nothing to fit for those factors (rows 'not "
            "fitted'); the seed-level difference of level means is their analysis."),
        "recommended_vs_baseline": (
            "A fractional design runs half of the two-level combinations: a combination "
            "outside the fraction (here the baseline is "
            + ("in" if baseline_in else "not in") + " it) has no runs, and its difference is "
            "not measured (predicting it from main effects would assume no interactions)."),
        "recommended_vs_top": (
            "A recommended combination outside the fraction has no runs: not measured."),
    }


def annotate(report: StudyReport, lv: Mapping[str, Sequence[str]]) -> None:
    """Qualify a fractional-factorial report's captions and verdicts, and add the alias
    table; nothing for the other designs."""
    s = study_fraction(report.info.get("design"), lv)
    if s is None:
        return
    notes = _notes(s)
    for t in report.tables:
        t.note = t.note.replace(PAIRED_UNIT, UNPAIRED_UNIT)
        if t.name in notes:
            t.note = (t.note + " " + notes[t.name]).strip()
    head = [line for line in s.lines() if not line.startswith(SUB)]
    report.tables.append(ReportTable(
        "alias_structure", f"Alias structure of the resolution {roman(s.resolution)} half "
        "fraction", alias_table(s), " ".join(head), in_document=False))
    k = s.resolution
    report.verdicts.append(
        f"Design: a resolution {roman(k)} half fraction of the two-level factors; each of "
        f"their main effects above is aliased with a {order_name(k - 1)}"
        + (" (so it may be that interaction)" if k == 3 else ", assumed negligible")
        + " (alias structure in the design section).")
