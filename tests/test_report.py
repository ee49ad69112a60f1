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
from harness.report.formats import md_escape, tex_escape
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
    head = tex.split(r"\toprule")[1].split(r"\midrule")[0]
    assert r"p (Holm)" in head and r"\_" not in head  # readable headers


def _png_dpi(png: bytes) -> float:
    """Pixels per inch from the PNG's pHYs chunk (matplotlib writes the dpi there)."""
    import struct

    at = png.index(b"pHYs")
    x, _y, unit = struct.unpack(">IIB", png[at + 4:at + 13])
    assert unit == 1  # per metre
    return round(x * 0.0254)


def seed_reference(d: list[float]) -> dict[str, float]:
    """Seed-level contrast numbers by their definitions (scipy t, enumerated sign flips)."""
    arr = np.asarray(d)
    n = arr.size
    half = stats.t.ppf(0.975, n - 1) * arr.std(ddof=1) / math.sqrt(n)
    flips = [abs(np.dot(signs, arr)) >= abs(arr.sum()) - 1e-12
             for signs in itertools.product((1, -1), repeat=n)]
    return {"diff": arr.mean(), "lo": arr.mean() - half, "hi": arr.mean() + half,
            "p": stats.ttest_1samp(arr, 0.0).pvalue, "flip": float(np.mean(flips))}


def test_main_effects_numbers(reported: dict[str, Any]) -> None:
    me = read(reported, "full", "main_effects")
    assert me[["factor", "level"]].values.tolist() == (
        [["binarization", lab] for lab in BIN] + [["optimizer", lab] for lab in OPT])
    for col in ("factor", "level", "diff", "diff_ci_low", "diff_ci_high", "p", "p_holm",
                "significant", "n_seeds", "resolved", "half_width", "mde"):
        assert col in me.columns, col
    p_raw = []
    for _, row in me.iterrows():
        if row["factor"] == "binarization":
            b = BIN.index(row["level"])
            per_seed = [np.mean([acc(b, o, s) for o in range(3)]) for s in SEEDS]
            d = [np.mean([acc(b, o, s) - acc(0, o, s) for o in range(3)]) for s in SEEDS]
            values = [acc(b, o, s) for o in range(3) for s in SEEDS]
        else:
            o = OPT.index(row["level"])
            per_seed = [np.mean([acc(b, o, s) for b in range(2)]) for s in SEEDS]
            d = [np.mean([acc(b, o, s) - acc(b, 0, s) for b in range(2)]) for s in SEEDS]
            values = [acc(b, o, s) for b in range(2) for s in SEEDS]
        assert row["runs"] == len(values) and row["seeds"] == 3
        assert row["mean"] == pytest.approx(np.mean(per_seed), abs=1e-12)
        half = stats.t.ppf(0.975, 2) * np.std(per_seed, ddof=1) / math.sqrt(3)
        assert row["ci_low"] == pytest.approx(np.mean(per_seed) - half, abs=1e-12)
        assert row["ci_high"] == pytest.approx(np.mean(per_seed) + half, abs=1e-12)
        if row["reference"]:
            assert row["test"] == "reference" and math.isnan(row["p"])
            continue
        ref = seed_reference(d)
        assert row["diff"] == pytest.approx(ref["diff"], abs=1e-12)
        assert row["diff_ci_low"] == pytest.approx(ref["lo"], abs=1e-12)
        assert row["diff_ci_high"] == pytest.approx(ref["hi"], abs=1e-12)
        assert row["half_width"] == pytest.approx((ref["hi"] - ref["lo"]) / 2, abs=1e-12)
        assert row["n_seeds"] == 3 and row["test"] == "seed-level t (df = seeds - 1)"
        assert row["p"] == pytest.approx(ref["p"], rel=1e-9)
        # 3 seeds all of one sign: 2 of the 8 sign patterns are as extreme.
        assert row["p_signflip"] == pytest.approx(ref["flip"]) and ref["flip"] >= 0.25
        assert row["resolved"] == bool(row["half_width"] <= 0.02)
        p_raw.append(row["p"])
    tested = me[~me["reference"]]
    assert tested["p_holm"].tolist() == pytest.approx(holm_reference(p_raw), rel=1e-9)
    assert tested["significant"].tolist() == [p < 0.05 for p in holm_reference(p_raw)]
    ste = me[me["level"] == BIN[1]].iloc[0]
    # ste-clip loses about 6 points in every cell, with little spread over seeds.
    assert ste["diff"] == pytest.approx(-0.06, abs=0.002) and bool(ste["resolved"])
    assert bool(ste["significant"]) and 0 < ste["mde"] < 0.06
    extra = [metric_values(1, o, s) for o in range(3) for s in SEEDS]
    assert ste["spike_rate"] == pytest.approx(np.mean([v["spike_rate"] for v in extra]))
    assert ste["synops_per_sample"] == pytest.approx(
        np.mean([v["synops_per_sample"] for v in extra]))
    # One run never reached 95% (inf): means are over the runs where the metric is finite.
    finite = [v["epochs_to_95pct"] for v in extra if math.isfinite(v["epochs_to_95pct"])]
    assert len(finite) == 8 and ste["epochs_to_95pct"] == pytest.approx(np.mean(finite))


def test_ablation_is_seed_level(reported: dict[str, Any]) -> None:
    ab = read(reported, "full", "ablation")
    assert ab["change"].tolist() == ["baseline", f"binarization = {BIN[1]}",
                                     f"optimizer = {OPT[1]}", f"optimizer = {OPT[2]}"]
    base = [acc(0, 0, s) for s in SEEDS]
    assert ab["mean"].iloc[0] == pytest.approx(np.mean(base))
    changes = [(1, 0), (0, 1), (0, 2)]
    p_raw = []
    for row, (b, o) in zip(ab.iloc[1:].itertuples(), changes):
        values = [acc(b, o, s) for s in SEEDS]
        d = [v - x for v, x in zip(values, base)]
        assert row.runs == 3 and row.mean == pytest.approx(np.mean(values))
        assert row.diff == pytest.approx(np.mean(d))
        if np.std(d) > 0:
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
    contrasts = read(reported, "full", "interaction_contrasts")
    assert len(contrasts) == 2
    for row, o in zip(contrasts.itertuples(), (1, 2)):
        d = [acc(1, o, s) - acc(1, 0, s) - acc(0, o, s) + acc(0, 0, s) for s in SEEDS]
        assert row.diff == pytest.approx(np.mean(d), abs=1e-12)
    simple = read(reported, "full", "simple_effects")
    within = simple[(simple["within"] == f"binarization = {BIN[1]}")
                    & (simple["level"] == OPT[2])].iloc[0]
    assert within["diff"] == pytest.approx(np.mean([acc(1, 2, s) - acc(1, 0, s)
                                                    for s in SEEDS]))

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

    def loss(b: int, o: int, s: int) -> float:
        v = metric_values(b, o, s)
        return v["test_acc"] - v["test_acc_shift_bn"]

    per_seed = [np.mean([loss(b, o, s) for b in range(2) for o in range(3)]) for s in SEEDS]
    overall = bn.iloc[0]
    assert overall["runs"] == 18 and overall["n_seeds"] == 3
    ref = seed_reference(per_seed)
    assert overall["diff"] == pytest.approx(ref["diff"])
    assert overall["diff_ci_low"] == pytest.approx(ref["lo"])
    # The loss averages to the same value in every seed: t is undefined, the sign-flip p
    # (2 of 8 patterns) stands in for it.
    assert np.std(per_seed) == pytest.approx(0, abs=1e-15)
    assert overall["p"] == pytest.approx(ref["flip"]) == 0.25


def test_best_practice_non_inferiority(reported: dict[str, Any]) -> None:
    bp = read(reported, "full", "best_practice").set_index("factor")
    cmp = read(reported, "full", "best_practice_vs_best")
    # fp32 is 6 points better in every cell: ste-clip is significantly worse, fp32 recommended.
    assert bp.loc["binarization", "best"] == BIN[0]
    assert bp.loc["binarization", "recommended"] == BIN[0]
    assert bp.loc["binarization", "worse"] == BIN[1]
    ste = cmp[cmp["level"] == BIN[1]].iloc[0]
    assert ste["diff"] == pytest.approx(-0.06, abs=0.002) and bool(ste["significant"])
    # hybrid is best by mean; adam and sgd are compared with it seed by seed.
    assert bp.loc["optimizer", "best"] == OPT[2]
    for o in (0, 1):
        row = cmp[cmp["level"] == OPT[o]].iloc[0]
        d = [np.mean([acc(b, o, s) - acc(b, 2, s) for b in range(2)]) for s in SEEDS]
        ref = seed_reference(d)
        assert row["diff"] == pytest.approx(ref["diff"])
        assert row["diff_ci_low"] == pytest.approx(ref["lo"])
        noninf = ref["lo"] > -0.01
        assert (OPT[o] in str(bp.loc["optimizer", "non_inferior"])) == noninf
    # The Holm family is every comparison with the best, over both factors.
    tested = cmp[np.isfinite(cmp["p"])]
    assert tested["p_holm"].tolist() == pytest.approx(holm_reference(tested["p"].tolist()))
    rvb = read(reported, "full", "recommended_vs_baseline")
    assert rvb["configuration"].tolist() == ["baseline", "recommended"]
    assert rvb["mean"].iloc[0] == pytest.approx(np.mean([acc(0, 0, s) for s in SEEDS]))
    top = read(reported, "full", "recommended_vs_top")
    assert top["configuration"].tolist() == ["top configuration", "recommended"]


def test_best_practice_says_unresolved_when_evidence_does_not_separate() -> None:
    rng = np.random.default_rng(3)
    rows = [{"status": "complete", "seed": s, "opt": lab,
             "test_acc": 0.8 + rng.normal(0, 0.03) + (0.005 if lab == "b" else 0.0)}
            for s in range(4) for lab in ("a", "b")]
    runs = pd.DataFrame(rows)
    bp = best_practice(runs, levels={"opt": ["a", "b"]}).iloc[0]
    assert bp["recommended"] == ""
    assert bp["decision"].startswith("no recommendation: unresolved at ±")
    # Two seeds: nothing is testable, so nothing is recommended either.
    two = best_practice(runs[runs["seed"] < 2], levels={"opt": ["a", "b"]}).iloc[0]
    assert two["decision"] == "no recommendation: unresolved at fewer than 3 seeds"


def test_one_at_a_time_design_gives_the_factorial_ablation(reported: dict[str, Any],
                                                          tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'oat.sqlite'}"
    make_study(url, dict(FULL_SPEC, study="oat", design="one-at-a-time"),
               combos={(0, 0), (1, 0), (0, 1), (0, 2)})
    runs = runs_frame(url, "oat")
    assert len(runs) == 12
    oat = ablation(runs)
    full = read(reported, "full", "ablation")
    cols = ["change", "runs", "mean", "diff", "n_seeds", "test", "p", "p_holm"]
    pd.testing.assert_frame_equal(oat[cols].reset_index(drop=True), full[cols],
                                  check_dtype=False)
    me = main_effects(runs)
    ste = me[me["level"] == BIN[1]].iloc[0]
    # In a one-at-a-time design the only partners of a change are the baseline runs.
    assert ste["n_seeds"] == 3 and ste["runs"] == 3
    assert ste["diff"] == pytest.approx(np.mean([acc(1, 0, s) - acc(0, 0, s) for s in SEEDS]))
    versus = recommended_vs_baseline(runs)
    assert versus["runs"].iloc[0] == 3
    summary = best_practice_summary(best_practice(runs), versus)
    assert summary.startswith(f"Recommended: binarization = {BIN[0]}")


def test_first_screen_in_report(reported: dict[str, Any]) -> None:
    md = (reported["out"] / "full" / "report.md").read_text(encoding="utf-8")
    shows = md.index("## What this study shows")
    first = md[shows:md.index("**Recommendation.**")].replace("\\", "")  # Markdown escapes
    assert f"binarization (test_acc): {BIN[1]} lowers it by 5.9 points vs {BIN[0]}" in first
    assert "established" in first
    page = (reported["out"] / "full" / "index.html").read_text(encoding="utf-8")
    assert "What this study shows" in page
    # The first screen: verdict, recommendation, the contrasts figure, the main-effects table,
    # then everything else.
    order = [shows, md.index("**Recommendation.**"), md.index("![Every level against"),
             md.index("## Main effects"), md.index("## Figures"), md.index("## More tables"),
             md.index("## Study details")]
    assert order == sorted(order)
    table = md[md.index("## Main effects"):md.index("## Figures")].replace("\\", "")
    header = next(line for line in table.splitlines() if line.startswith("| Factor"))
    assert header.count("|") - 1 <= 8  # at most 8 columns; the rest is in the CSV
    me = read(reported, "full", "main_effects")
    fp32, ste = me.iloc[0], me.iloc[1]
    # Accuracy in points with one decimal, p-values with 2 significant digits, everywhere.
    assert f"| fp32 | 3 | {100 * fp32['mean']:.1f} | reference |  |  |  |" in table
    assert (f"| ste-clip | 3 | {100 * ste['mean']:.1f} | {100 * ste['diff']:+.1f} | "
            f"[{100 * ste['diff_ci_low']:+.1f}, {100 * ste['diff_ci_high']:+.1f}] | "
            f"{ste['p_holm']:.1e} | established |") in table


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
    assert md_escape(HOSTILE_STUDY) in md  # escaped for Markdown (test_reliability_report)
    assert html.escape(HOSTILE_STUDY) in page
    for level in HOSTILE_LEVELS:
        assert md_escape(level) in md
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
        (["--delta", "0"], "--delta must be a positive margin"),
        (["--half-width", "-1"], "--half-width must be positive"),
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


def test_delta_and_half_width_options_change_the_decisions(reported: dict[str, Any],
                                                           tmp_path: Path) -> None:
    assert main(["report", "--db", reported["url"], "--study", "full", "--out", str(tmp_path),
                 "--format", "csv", "--delta", "0.5", "--half-width", "0.5"]) == 0
    bp = pd.read_csv(tmp_path / "full" / "best_practice.csv").set_index("factor")
    # A 50-point margin makes ste-clip (6 points worse, but 32x less memory) non-inferior.
    assert bp.loc["binarization", "recommended"] == BIN[1]
    assert bp.loc["binarization", "decision"].startswith("non-inferior to the best (fp32)")
    me = pd.read_csv(tmp_path / "full" / "main_effects.csv")
    assert me.loc[~me["reference"], "resolved"].all()


def test_contrasts_with_fewer_than_three_seeds_are_unresolved(reported: dict[str, Any]
                                                             ) -> None:
    runs = runs_frame(reported["url"], "full")
    two = runs[runs["seed"] < 2]
    me = main_effects(two)
    tested = me[~me["reference"]]
    assert (tested["n_seeds"] == 2).all() and tested["p"].isna().all()
    assert tested["p_holm"].isna().all() and not tested["significant"].any()
    assert not tested["resolved"].any()
    assert tested["test"].str.startswith("unresolved: 2 seed(s) < 3").all()
    one = runs[(runs["seed"] == 0) & (runs["optimizer"] == OPT[0])]
    levels = {"binarization": BIN, "optimizer": OPT[:1]}
    bp = best_practice(one, levels=levels).set_index("factor")
    assert bp.loc["binarization", "recommended"] == ""
    assert bp.loc["optimizer", "decision"] == "only level with runs"
    me = main_effects(one, levels=levels)
    assert me["ci_low"].iloc[:2].isna().all() and me["n_seeds"].iloc[1] == 1
