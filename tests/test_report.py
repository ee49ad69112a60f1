"""bsnn-bench report on a database built through the ORM: CSV numbers against independent
numpy/scipy computations from the known metric values, partial studies, hostile names, formats."""

from __future__ import annotations

import html
import itertools
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sqlalchemy import create_engine, inspect, text
from test_results import FULL_SPEC, labels_of, make_study, metric_values

from harness.cli import main
from harness.report import (
    ablation,
    best_practice,
    best_practice_summary,
    main_effects,
    recommended_vs_baseline,
    report_command,
    study_dirname,
)
from harness.report.formats import tex_escape
from harness.results import runs_frame

LABELS = labels_of(FULL_SPEC)
BIN, OPT = LABELS["binarization"], LABELS["optimizer"]
SEEDS = FULL_SPEC["train"]["seeds"]


def acc(b: int, o: int, s: int) -> float:
    return metric_values(b, o, s)["test_acc"]


def holm_reference(p: list[float]) -> list[float]:
    """Holm by its definition: adj(p_i) = max over p_j <= p_i of min(1, (m - rank_j) p_j)."""
    m = len(p)
    ranked = sorted(p)
    out = []
    for pi in p:
        out.append(max(min(1.0, (m - r) * pj) for r, pj in enumerate(ranked) if pj <= pi))
    return out


def percentile_bootstrap(x: list[float], n: int = 20000) -> tuple[float, float]:
    rng = np.random.default_rng(7)
    arr = np.asarray(x)
    means = rng.choice(arr, size=(n, arr.size), replace=True).mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("report")
    url = f"sqlite:///{root / 'results.sqlite'}"
    make_study(url, FULL_SPEC)
    make_study(url, dict(FULL_SPEC, study="partial"),
               statuses={1: "failed", 4: "pending", 7: "running", 10: "pending"}, create=False)
    make_study(url, dict(FULL_SPEC, study="empty"), statuses=dict.fromkeys(range(18), "pending"),
               create=False)
    out = root / "reports"
    assert report_command(db=url, studies=["full"], out=str(out)) == 0
    assert report_command(db=url, studies=["partial", "empty"], out=str(out),
                          formats=["md", "csv"]) == 0
    return {"url": url, "out": out, "root": root}


def read(reported: dict[str, Any], study: str, name: str) -> pd.DataFrame:
    return pd.read_csv(reported["out"] / study / f"{name}.csv", keep_default_na=False,
                       na_values=[""])


def test_every_file_of_the_report_is_written(reported: dict[str, Any]) -> None:
    folder = reported["out"] / "full"
    names = {p.name for p in folder.iterdir()}
    for table in ("main_effects", "ablation", "interactions",
                  "interaction_binarization_optimizer", "top_configurations", "bn_vs_shift_bn",
                  "cost", "best_practice", "recommended_vs_baseline"):
        assert f"{table}.csv" in names and f"{table}.tex" in names, table
    for figure in ("contrasts", "learning_curves", "interaction_heatmap", "pareto"):
        png = (folder / f"{figure}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000, figure
        assert _png_dpi(png) >= 200, figure
        assert (folder / f"{figure}.pdf").read_bytes().startswith(b"%PDF-"), figure
    assert {"report.md", "index.html"} <= names
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 4
    assert "src=\"http" not in page and "<link" not in page  # self-contained
    tex = (folder / "main_effects.tex").read_text(encoding="utf-8")
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert "ste-clip" in tex and r"\label{tab:full-main-effects}" in tex
    assert r"p (Holm)" in tex and "p\\_holm" not in tex  # readable headers


def _png_dpi(png: bytes) -> float:
    """Pixels per inch from the PNG's pHYs chunk (matplotlib writes the dpi there)."""
    import struct

    at = png.index(b"pHYs")
    x, _y, unit = struct.unpack(">IIB", png[at + 4:at + 13])
    assert unit == 1  # per metre
    return round(x * 0.0254)


def test_main_effects_numbers(reported: dict[str, Any]) -> None:
    me = read(reported, "full", "main_effects")
    assert me[["factor", "level"]].values.tolist() == (
        [["binarization", lab] for lab in BIN] + [["optimizer", lab] for lab in OPT])
    p_raw = []
    for _, row in me.iterrows():
        if row["factor"] == "binarization":
            b = BIN.index(row["level"])
            values = [acc(b, o, s) for o in range(3) for s in SEEDS]
            pairs = [(acc(0, o, s), acc(b, o, s)) for o in range(3) for s in SEEDS]
        else:
            o = OPT.index(row["level"])
            values = [acc(b, o, s) for b in range(2) for s in SEEDS]
            pairs = [(acc(b, 0, s), acc(b, o, s)) for b in range(2) for s in SEEDS]
        assert row["runs"] == len(values)
        assert row["mean"] == pytest.approx(np.mean(values), abs=1e-12)
        assert row["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
        lo, hi = percentile_bootstrap(values)
        assert row["ci_low"] == pytest.approx(lo, abs=0.0015)
        assert row["ci_high"] == pytest.approx(hi, abs=0.0015)
        if row["reference"]:
            assert row["test"] == "reference" and math.isnan(row["p"])
            continue
        d = [y - x for x, y in pairs]
        assert row["diff"] == pytest.approx(np.mean(d), abs=1e-12)
        assert row["n_pairs"] == len(d)
        assert row["test"] == "wilcoxon"
        assert row["p"] == pytest.approx(stats.wilcoxon(d).pvalue, rel=1e-9)
        assert row["diff_ci_low"] <= row["diff"] <= row["diff_ci_high"]
        p_raw.append(row["p"])
    tested = me[~me["reference"]]
    assert tested["p_holm"].tolist() == pytest.approx(holm_reference(p_raw), rel=1e-9)
    assert tested["significant"].tolist() == [p < 0.05 for p in holm_reference(p_raw)]
    # ste-clip loses 6 points in all 9 pairs: exact two-sided Wilcoxon p = 2 / 2^9.
    assert tested["p"].iloc[0] == pytest.approx(2 / 512)
    ste = me[me["level"] == BIN[1]].iloc[0]
    extra = [metric_values(1, o, s) for o in range(3) for s in SEEDS]
    assert ste["spike_rate"] == pytest.approx(np.mean([v["spike_rate"] for v in extra]))
    assert ste["synops_per_sample"] == pytest.approx(
        np.mean([v["synops_per_sample"] for v in extra]))
    # One run never reached 95% (inf): means are over the runs where the metric is finite.
    finite = [v["epochs_to_95pct"] for v in extra if math.isfinite(v["epochs_to_95pct"])]
    assert len(finite) == 8 and ste["epochs_to_95pct"] == pytest.approx(np.mean(finite))


def test_ablation_from_factorial_uses_paired_t_for_three_seeds(reported: dict[str, Any]) -> None:
    ab = read(reported, "full", "ablation")
    assert ab["change"].tolist() == ["baseline", f"binarization = {BIN[1]}",
                                     f"optimizer = {OPT[1]}", f"optimizer = {OPT[2]}"]
    base = [acc(0, 0, s) for s in SEEDS]
    assert ab["mean"].iloc[0] == pytest.approx(np.mean(base))
    changes = [(1, 0), (0, 1), (0, 2)]
    p_raw = []
    for row, (b, o) in zip(ab.iloc[1:].itertuples(), changes):
        values = [acc(b, o, s) for s in SEEDS]
        assert row.runs == 3 and row.mean == pytest.approx(np.mean(values))
        assert row.diff == pytest.approx(np.mean(values) - np.mean(base))
        assert row.test == "paired t (n<6)"
        assert row.p == pytest.approx(stats.ttest_rel(values, base).pvalue, rel=1e-9)
        p_raw.append(row.p)
    assert ab["p_holm"].iloc[1:].tolist() == pytest.approx(holm_reference(p_raw), rel=1e-9)


def test_interactions_top_configurations_and_cost(reported: dict[str, Any]) -> None:
    grid = read(reported, "full", "interaction_binarization_optimizer")
    assert grid.columns.tolist() == ["binarization \\ optimizer", *OPT]
    for b, o in itertools.product(range(2), range(3)):
        assert grid.iloc[b][OPT[o]] == pytest.approx(np.mean([acc(b, o, s) for s in SEEDS]))
    inter = read(reported, "full", "interactions")
    assert len(inter) == 6 and set(inter["runs"]) == {3}

    top = read(reported, "full", "top_configurations")
    means = {(b, o): np.mean([acc(b, o, s) for s in SEEDS])
             for b, o in itertools.product(range(2), range(3))}
    ranking = sorted(means, key=lambda k: -means[k])
    assert len(top) == 6 and top["rank"].tolist() == [1, 2, 3, 4, 5, 6]
    assert [(BIN.index(r.binarization), OPT.index(r.optimizer))
            for r in top.itertuples()] == ranking
    best = ranking[0]
    assert top["mean"].iloc[0] == pytest.approx(means[best])
    assert top["std"].iloc[0] == pytest.approx(np.std([acc(*best, s) for s in SEEDS], ddof=1))

    cost = read(reported, "full", "cost")
    assert cost["binarization"].tolist() == BIN and set(cost["arch"]) == {"conv"}
    assert cost["weight_memory_bits"].tolist() == [320000.0, 10000.0]
    assert cost["weight_memory_ratio"].tolist() == pytest.approx([1.0, 1 / 32])
    assert cost["energy_uj_per_sample"].tolist() == pytest.approx([5.01, 0.51])


def test_bn_vs_shift_bn(reported: dict[str, Any]) -> None:
    bn = read(reported, "full", "bn_vs_shift_bn")
    assert bn["group"].tolist() == ["all", "binarization", "binarization"]
    losses = [metric_values(b, o, s)["test_acc"] - metric_values(b, o, s)["test_acc_shift_bn"]
              for b in range(2) for o in range(3) for s in SEEDS]
    overall = bn.iloc[0]
    assert overall["runs"] == 18
    assert overall["loss"] == pytest.approx(np.mean(losses))
    assert overall["loss_ci_low"] <= overall["loss"] <= overall["loss_ci_high"]
    assert overall["p"] == pytest.approx(stats.wilcoxon(losses).pvalue)


def test_best_practice_recommendation(reported: dict[str, Any]) -> None:
    bp = read(reported, "full", "best_practice").set_index("factor")
    # Independent decision: best by mean, compare it with every other level (paired), Holm.
    fam: list[tuple[str, str, float, float]] = []
    best: dict[str, str] = {}
    for factor, labels in LABELS.items():
        def level_acc(i: int, factor: str = factor) -> dict[tuple[int, int], float]:
            if factor == "binarization":
                return {(o, s): acc(i, o, s) for o in range(3) for s in SEEDS}
            return {(b, s): acc(b, i, s) for b in range(2) for s in SEEDS}
        means = {i: np.mean(list(level_acc(i).values())) for i in range(len(labels))}
        ib = max(means, key=means.get)
        best[factor] = labels[ib]
        for i in range(len(labels)):
            if i != ib:
                d = [level_acc(ib)[k] - level_acc(i)[k] for k in level_acc(ib)]
                fam.append((factor, labels[i], stats.wilcoxon(d).pvalue, np.mean(d)))
    adj = holm_reference([p for _, _, p, _ in fam])
    for factor in LABELS:
        tied = [lab for (f, lab, _, d), pa in zip(fam, adj) if f == factor and
                not (pa < 0.05 and d > 0)]
        row = bp.loc[factor]
        assert row["best"] == best[factor]
        if not tied:
            assert row["decision"] == "significantly best"
            assert row["recommended"] == best[factor]
        else:
            assert row["decision"] == "no significant difference"
            assert row["tied_levels"] == "; ".join(
                lab for lab in LABELS[factor] if lab in tied + [best[factor]])
    # The designed effects: fp32 beats ste-clip in all 9 pairs (p = 2/512, Holm x3: 0.012);
    # hybrid beats sgd in all 6 pairs, but 2/64 x 2 = 0.0625 is not significant, so the
    # optimizer goes to the cheapest level: equal memory, adam's energy is lowest.
    assert bp.loc["binarization", "recommended"] == BIN[0]
    assert bp.loc["binarization", "decision"] == "significantly best"
    assert bp.loc["optimizer", "best"] == OPT[2]
    assert bp.loc["optimizer", "decision"] == "no significant difference"
    assert bp.loc["optimizer", "recommended"] == OPT[0]
    rvb = read(reported, "full", "recommended_vs_baseline")
    assert rvb["configuration"].tolist() == ["baseline", "recommended"]
    assert rvb["mean"].iloc[0] == pytest.approx(np.mean([acc(0, 0, s) for s in SEEDS]))


def test_one_at_a_time_design_gives_the_factorial_ablation(reported: dict[str, Any],
                                                          tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'oat.sqlite'}"
    make_study(url, dict(FULL_SPEC, study="oat", design="one-at-a-time"),
               combos={(0, 0), (1, 0), (0, 1), (0, 2)})
    runs = runs_frame(url, "oat")
    assert len(runs) == 12
    oat = ablation(runs)
    full = read(reported, "full", "ablation")
    cols = ["change", "runs", "mean", "diff", "n_pairs", "test", "p", "p_holm"]
    pd.testing.assert_frame_equal(oat[cols].reset_index(drop=True), full[cols],
                                  check_dtype=False)
    me = main_effects(runs)
    ste = me[me["level"] == BIN[1]].iloc[0]
    # In a one-at-a-time design the only partners of a change are the baseline runs.
    assert ste["n_pairs"] == 3 and ste["runs"] == 3
    assert ste["diff"] == pytest.approx(np.mean([acc(1, 0, s) - acc(0, 0, s) for s in SEEDS]))
    versus = recommended_vs_baseline(runs)
    assert versus["runs"].iloc[0] == 3
    summary = best_practice_summary(best_practice(runs), versus)
    assert summary.startswith(f"Recommended: binarization = {BIN[0]}")


def test_best_practice_summary_in_report(reported: dict[str, Any]) -> None:
    md = (reported["out"] / "full" / "report.md").read_text(encoding="utf-8")
    summary = md[md.index("**Recommendation.**"):].splitlines()[0]
    assert f"binarization = {BIN[0]} (significantly best)" in summary
    assert f"optimizer = {OPT[0]} (no significant difference)" in summary
    assert "The recommended combination is the baseline." in summary
    # The first screen: recommendation, the contrasts figure, the main-effects table, then
    # everything else.
    order = [md.index("**Recommendation.**"), md.index("![Every level against"),
             md.index("## Main effects"), md.index("## Figures"), md.index("## More tables"),
             md.index("## Study details")]
    assert order == sorted(order)
    table = md[md.index("## Main effects"):md.index("## Figures")]
    header = next(line for line in table.splitlines() if line.startswith("| Factor"))
    assert header.count("|") - 1 <= 8  # at most 8 columns; the rest is in the CSV
    me = read(reported, "full", "main_effects")
    fp32, ste = me.iloc[0], me.iloc[1]
    # Accuracy in points with one decimal, p-values with 2 significant digits, everywhere.
    assert f"| fp32 | 9 | {100 * fp32['mean']:.1f} | reference |  |  |  |" in table
    assert (f"| ste-clip | 9 | {100 * ste['mean']:.1f} | {100 * ste['diff']:+.1f} | "
            f"[{100 * ste['diff_ci_low']:+.1f}, {100 * ste['diff_ci_high']:+.1f}] | "
            f"1.2e-02 | yes |") in table


def test_partial_study_counts_and_failures(reported: dict[str, Any]) -> None:
    md = (reported["out"] / "partial" / "report.md").read_text(encoding="utf-8")
    assert "Partial study: 14 of 18 runs complete, 1 failed, 3 pending" in md
    assert "18 runs: 14 complete, 1 failed, 3 pending (of which 1 running)" in md
    failed_at = md.index("## Failed runs")
    assert md.index("loss became NaN at epoch 1 (run 1)") > failed_at > md.index("## Main effects")
    me = read(reported, "partial", "main_effects")
    assert me["runs"].sum() == 2 * 14  # every complete run once per factor
    full_md = (reported["out"] / "full" / "report.md").read_text(encoding="utf-8")
    assert "Partial study" not in full_md and "18 runs: 18 complete, 0 failed, 0 pending" in full_md
    assert "Total compute time: 0:11:33 (693.0 s)" in full_md.replace("**", "")
    assert "hostA (cpu): 9 runs; hostB (cpu): 9 runs" in full_md
    assert "torch 2.13.0" in full_md
    empty = (reported["out"] / "empty" / "report.md").read_text(encoding="utf-8")
    assert "Partial study: 0 of 18 runs complete, 0 failed, 18 pending" in empty
    assert "No complete runs yet" in empty
    assert [p.name for p in (reported["out"] / "empty").iterdir()] == ["report.md"]


def test_default_reports_every_study(reported: dict[str, Any], tmp_path: Path) -> None:
    assert report_command(db=reported["url"], out=str(tmp_path), formats=["csv"]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"full", "partial", "empty"}
    assert list((tmp_path / "empty").iterdir()) == []


def test_report_is_deterministic(reported: dict[str, Any], tmp_path: Path) -> None:
    assert report_command(db=reported["url"], studies=["full"], out=str(tmp_path),
                          formats=["csv"]) == 0
    for name in ("main_effects.csv", "ablation.csv", "best_practice.csv", "bn_vs_shift_bn.csv"):
        assert (tmp_path / "full" / name).read_bytes() == \
            (reported["out"] / "full" / name).read_bytes()


HOSTILE_STUDY = "../../outside'; DROP TABLE bench_runs; --/ünïcødé ⚡ \"q\""
HOSTILE_LEVELS = ["x'; DROP TABLE bench_studies; --", "../../etc/passwd",
                  'ünï "q" <b>bold</b> $x$ 50% & {a}_b ~ ^ #/⚡']


def test_hostile_names_verbatim_and_contained(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    spec = dict(FULL_SPEC, study=HOSTILE_STUDY,
                factors={"binarization": ["fp32", "ste-clip"], "dataset.name": HOSTILE_LEVELS})
    make_study(url, spec)
    out = tmp_path / "out"
    assert report_command(db=url, out=str(out)) == 0

    written = [Path(dirpath) / f for dirpath, _, files in os.walk(tmp_path) for f in files]
    outside = [p for p in written if not p.resolve().is_relative_to(out.resolve())
               and p.name != "results.sqlite"]
    assert outside == []
    (folder,) = list(out.iterdir())
    assert folder.name == study_dirname(HOSTILE_STUDY)
    assert "/" not in folder.name and not folder.name.startswith(".")
    assert len(list(out.rglob("*"))) == len(list(folder.iterdir())) + 1  # flat: one folder

    runs = runs_frame(url, HOSTILE_STUDY)
    assert runs["dataset.name"].unique().tolist() == HOSTILE_LEVELS
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM bench_runs")).scalar() == 18
    assert {"bench_runs", "bench_studies"} <= set(inspect(engine).get_table_names())
    engine.dispose()

    md = (folder / "report.md").read_text(encoding="utf-8")
    page = (folder / "index.html").read_text(encoding="utf-8")
    tex = (folder / "main_effects.tex").read_text(encoding="utf-8")
    me = pd.read_csv(folder / "main_effects.csv")
    assert HOSTILE_STUDY in md
    assert html.escape(HOSTILE_STUDY) in page
    for level in HOSTILE_LEVELS:
        assert level in md
        assert html.escape(level) in page
        assert tex_escape(level) in tex
        assert level in me["level"].tolist()
    assert "<b>bold</b>" not in page
    assert r"\$x\$ 50\% \& \{a\}\_b \textasciitilde{} \textasciicircum{} \#" in tex


def test_format_subset(reported: dict[str, Any], tmp_path: Path) -> None:
    assert report_command(db=reported["url"], studies=["partial"], out=str(tmp_path),
                          formats=["tex", "md", "tex"]) == 0
    assert {p.suffix for p in (tmp_path / "partial").iterdir()} == {".tex", ".md"}
    md = (tmp_path / "partial" / "report.md").read_text(encoding="utf-8")
    assert "## Figures" not in md  # no figure format asked: none drawn, none linked


def test_cli_report_and_user_errors(reported: dict[str, Any], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    url = reported["url"]
    out = str(tmp_path / "cli")
    assert main(["report", "--db", url, "--study", "partial", "--out", out,
                 "--format", "md,csv"]) == 0
    assert (tmp_path / "cli" / "partial" / "report.md").is_file()
    cases = [
        (["--study", "nope"], "no study named 'nope'"),
        (["--format", "md,docx"], "unknown report format 'docx'"),
        (["--metric", "no_such_metric", "--study", "full"], "metric 'no_such_metric'"),
        (["--db", f"sqlite:///{tmp_path / 'missing.sqlite'}"], "missing.sqlite' does not exist"),
    ]
    for extra, message in cases:
        args = ["report", "--out", out, *extra]
        if "--db" not in extra:
            args += ["--db", url]
        capsys.readouterr()
        assert main(args) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("bsnn-bench: error: ") and message in err, err
        assert "Traceback" not in err
    assert not (tmp_path / "missing.sqlite").exists()


def test_best_practice_with_untestable_levels(reported: dict[str, Any]) -> None:
    runs = runs_frame(reported["url"], "full")
    one = runs[(runs["seed"] == 0) & (runs["optimizer"] == OPT[0])]
    levels = {"binarization": BIN, "optimizer": OPT[:1]}
    bp = best_practice(one, levels=levels).set_index("factor")
    # One pair cannot be tested: no claim of significance, the cheapest (binary) level wins.
    assert bp.loc["binarization", "decision"] == (
        "no significant difference; some levels untested (fewer than 2 paired runs)")
    assert bp.loc["binarization", "recommended"] == BIN[1]
    assert bp.loc["optimizer", "decision"] == "only level with runs"
    me = main_effects(one, levels=levels)
    assert me["ci_low"].iloc[:2].isna().all() and me["test"].iloc[1] == "none (n<2)"
