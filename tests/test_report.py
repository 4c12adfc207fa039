"""The report (tables, overlap, experiment filtering) on hand-made data, the recipes' planning,
and one end-to-end run of a recipe on a temporary git + DVC copy of the repository."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import tiny_repo as repo_copy
from coreset.config import parse
from coreset.experiments import tables as tables_cmd
from coreset.experiments.report import analyses, build, significance, tables
from coreset.experiments.report.experiments import (
    Experiment,
    flatten,
    matching,
    parse_show,
    prioritised,
)

ROOT = Path(__file__).resolve().parents[1]


# --- the table builder --------------------------------------------------------------------

def hand_runs() -> pd.DataFrame:
    """Two columns (ratios); A and B tie at 0.2, C is best at 0.3; full is the reference."""
    rows = [("A", 0, 0.80, 0.2), ("A", 1, 0.90, 0.2), ("B", 0, 0.85, 0.2), ("B", 1, 0.85, 0.2),
            ("C", 0, 0.70, 0.2),
            ("A", 0, 0.90, 0.3), ("B", 0, 0.95, 0.3), ("C", 0, 0.99, 0.3),
            ("full", 0, 0.99, 0.2), ("full", 1, 0.97, 0.2), ("full", 0, 0.98, 0.3)]
    return pd.DataFrame(rows, columns=["selector", "seed", "accuracy", "column"])


def test_table_means_stds_bold_and_average_ranks_with_ties():
    t = tables.build(hand_runs(), rows=["A", "B", "C"])
    assert t.rows == ["A", "B", "C"] and t.reference == ["full"]
    assert t.columns == [("0.2",), ("0.3",)]
    # means in percent; sample std (ddof=1): std(80, 90) = sqrt(50) = 7.0711; one seed -> 0
    assert t.mean.loc["A", 0] == pytest.approx(85.0)
    assert t.std.loc["A", 0] == pytest.approx(7.0710678)
    assert t.mean.loc["B", 0] == pytest.approx(85.0) and t.std.loc["B", 0] == 0.0
    assert t.std.loc["C", 0] == 0.0 and t.n.loc["C", 0] == 1
    assert t.mean.loc["full", 0] == pytest.approx(98.0)
    assert t.std.loc["full", 0] == pytest.approx(1.4142136)
    # column 0.2: A = B = 85 tie for ranks 1-2 -> 1.5 each, C 3rd; column 0.3: C, B, A
    assert t.rank[0].tolist() == [1.5, 1.5, 3.0]
    assert t.rank[1].tolist() == [3.0, 2.0, 1.0]
    assert t.avg_rank.tolist() == [2.25, 1.75, 2.0]
    assert t.best[0].tolist() == [True, True, False]  # both tied rows are bold
    assert t.best[1].tolist() == [False, False, True]
    assert "full" not in t.rank.index  # the reference row is never ranked


def test_ties_are_decided_at_display_precision():
    runs = pd.DataFrame({"selector": ["A", "B"], "seed": [0, 0], "column": [0.2, 0.2],
                         "accuracy": [0.123460, 0.123451]})  # both print as 12.35
    t = tables.build(runs)
    assert t.best[0].tolist() == [True, True]
    assert t.rank[0].tolist() == [1.5, 1.5]


def test_rows_with_a_missing_cell_are_shown_but_not_ranked():
    runs = pd.concat([hand_runs(), pd.DataFrame(
        {"selector": ["D"], "seed": [0], "accuracy": [0.999], "column": [0.2]})])
    t = tables.build(runs, rows=["A", "B", "C", "D"])
    assert t.mean.loc["D", 0] == pytest.approx(99.9) and pd.isna(t.mean.loc["D", 1])
    assert t.avg_rank.tolist()[:3] == [2.25, 1.75, 2.0]  # as without D
    assert pd.isna(t.avg_rank["D"]) and not t.best.loc["D"].any()
    assert t.best[0].tolist() == [True, True, False, False]
    assert "| D | 99.90 ± 0.00 | – | – |" in tables.markdown(t)


def test_table_renderers_show_bold_ranks_and_reference():
    t = tables.build(hand_runs(), rows=["A", "B", "C"])
    md = tables.markdown(t, "title")
    assert "| A | **85.00 ± 7.07** | 90.00 ± 0.00 | 2.25 |" in md
    assert "| B | **85.00 ± 0.00** | 95.00 ± 0.00 | 1.75 |" in md
    assert "| C | 70.00 ± 0.00 | **99.00 ± 0.00** | 2.00 |" in md
    assert "| full data (reference) | 98.00 ± 1.41 | 98.00 ± 0.00 | – |" in md
    tex = tables.latex(t, "caption with 20%", "tab:x")
    assert r"A & \textbf{85.00 $\pm$ 7.07} & 90.00 $\pm$ 0.00 & 2.25 \\" in tex
    assert r"caption with 20\%" in tex and r"\bottomrule" in tex
    csv = pd.read_csv(io.StringIO(tables.csv(t)), dtype={"best_in": str})
    assert csv["0.2 mean"].tolist() == pytest.approx([85.0, 85.0, 70.0, 98.0])
    assert csv["avg_rank"].tolist()[:3] == [2.25, 1.75, 2.0]
    assert csv["best_in"].tolist()[:3] == ["0.2", "0.2", "0.3"]
    assert pd.isna(csv["best_in"].iloc[3])  # the reference row is never best


def test_latex_groups_outer_header_levels():
    noisy = hand_runs()
    noisy["column"] = [("noise 20%", str(c)) for c in noisy["column"]]
    clean = hand_runs()
    clean["column"] = [("clean", "0.2")] * len(clean)
    runs = pd.concat([noisy, clean])
    tex = tables.latex(tables.build(runs, columns=[("clean", "0.2"), ("noise 20%", "0.2"),
                                                   ("noise 20%", "0.3")]))
    assert r"\multicolumn{1}{c}{clean} & \multicolumn{2}{c}{noise 20\%}" in tex
    assert r"Method & 0.2 & 0.2 & 0.3 & Avg. rank \\" in tex


# --- significance against random ---------------------------------------------------------------

def test_paired_t_test_by_hand():
    # differences 0.10, 0.11, 0.11: mean 0.32 / 3, sd 0.01 / sqrt(3), t = 32 with 2 degrees of
    # freedom, whose two-sided p-value has the closed form 1 - t / sqrt(t^2 + 2)
    result = significance.paired_test({0: 0.80, 1: 0.82, 2: 0.84, 7: 0.5},
                                      {0: 0.70, 1: 0.71, 2: 0.73})
    assert (result.n, result.test) == (3, "t-test")
    assert result.mean_diff == pytest.approx(0.32 / 3)
    assert result.p_value == pytest.approx(1 - 32 / np.sqrt(32**2 + 2), rel=1e-6)
    assert result.mark == "*"
    worse = significance.paired_test({0: 0.70, 1: 0.71, 2: 0.73}, {0: 0.80, 1: 0.82, 2: 0.84})
    assert worse.mark == "-"
    noisy = significance.paired_test({0: 0.9, 1: 0.7, 2: 0.8}, {0: 0.8, 1: 0.8, 2: 0.8})
    assert noisy.mark == "" and noisy.p_value == pytest.approx(1.0)  # mean difference 0


def test_fewer_than_three_seeds_are_not_tested_and_never_marked():
    agree = significance.paired_test({0: 0.9, 1: 0.8}, {0: 0.8, 1: 0.75})
    assert agree.test == "none" and agree.mark == ""  # both seeds better: still no mark
    single = significance.paired_test({0: 0.9}, {0: 0.1})
    assert single.test == "none" and single.mark == ""
    line = significance.summary({("A", 0.2): agree})
    assert line.startswith("No cell shares at least 3 training seeds")


@pytest.mark.parametrize("seeds", [2, 3, 5])
def test_marks_under_the_null_are_at_most_alpha(seeds):
    """A selector whose per-seed accuracies come from the same distribution as random's is marked
    in at most about 5 % of cells (the 2-seed sign-agreement rule marked about half)."""
    rng = np.random.default_rng(seeds)
    trials = 2000
    marked = sum(bool(significance.paired_test(
        dict(enumerate(rng.normal(0.8, 0.02, seeds))),
        dict(enumerate(rng.normal(0.8, 0.02, seeds)))).mark) for _ in range(trials))
    assert marked / trials <= 0.065
    if seeds >= 3:  # the t-test is exact here: close to 5 %, not a test that never fires
        assert marked / trials >= 0.035


def marked_runs() -> pd.DataFrame:
    """random and two selectors over 3 seeds at two ratios: A beats random at 0.2 and trails it
    at 0.3; B is indistinguishable."""
    rows = []
    for seed, (r2, r3) in enumerate([(0.70, 0.90), (0.71, 0.91), (0.73, 0.92)]):
        rows += [("random", seed, r2, 0.2), ("random", seed, r3, 0.3),
                 ("A", seed, r2 + 0.1 + 0.01 * (seed > 0), 0.2),
                 ("A", seed, r3 - 0.1 - 0.01 * (seed > 0), 0.3),
                 ("B", seed, r2 + (0.05, -0.05, 0.0)[seed], 0.2), ("B", seed, r3, 0.3),
                 ("full", seed, 0.99, 0.2), ("full", seed, 0.99, 0.3)]
    return pd.DataFrame(rows, columns=["selector", "seed", "accuracy", "column"])


def test_tables_mark_cells_and_summarise_against_random():
    t = tables.build(marked_runs(), rows=["random", "A", "B"])
    assert t.marks.loc["A"].tolist() == ["*", "-"] and t.marks.loc["B"].tolist() == ["", ""]
    assert t.marks.loc["random"].tolist() == ["", ""] and t.marks.loc["full"].tolist() == ["", ""]
    assert t.significance.startswith("Beats random in 1 of 4 cells at p < 0.05 (*), worse in 1")
    md = tables.markdown(t)
    assert "| A | **82.00 ± 2.00** \\* | 80.33 ± 0.58 - |" in md
    assert md.rstrip().endswith("paired t-test over the shared training seeds.")
    tex = tables.latex(t)
    assert r"\textbf{82.00 $\pm$ 2.00}$^{*}$ & 80.33 $\pm$ 0.58$^{-}$" in tex
    assert r"Beats random in 1 of 4 cells at p $<$ 0.05" in tex
    csv = pd.read_csv(io.StringIO(tables.csv(t)), keep_default_na=False).set_index("selector")
    assert csv.loc["A", "0.2 vs random"] == "*" and csv.loc["A", "0.3 vs random"] == "-"


def test_tables_without_random_have_no_marks():
    t = tables.build(hand_runs(), rows=["A", "B", "C"])
    assert t.significance == "" and (t.marks == "").all().all()


def test_caption_states_the_protocol():
    t = tables.build(hand_runs(), rows=["A", "B", "C"])
    spec = build.SPECS["selectors_x_ratios"]
    text = build.caption(spec, {"data.dataset": "digits", "train.epochs": 30,
                                "train.batch_size": 64, "train.report": "best"}, t)
    assert "Protocol: 30 epochs over the subset, batch 64, best-epoch accuracy" in text
    steps = build.caption(spec, {"train.epochs": 30, "train.batch_size": 256,
                                 "train.budget": "steps", "train.steps": 40000}, t)
    assert "Protocol: 40000 SGD steps whatever the subset size, batch 256, final-epoch" in steps


# --- overlap and windows --------------------------------------------------------------------

def test_overlap_of_kept_and_dropped_sets():
    sets = {"a": np.array([0, 1, 2, 3]), "b": np.array([2, 3, 4, 5]), "c": np.array([3, 2, 1, 0])}
    kept = analyses.overlap_matrix(sets)
    assert kept.loc["a", "b"] == 0.5 and kept.loc["a", "c"] == 1.0 and kept.loc["b", "c"] == 0.5
    assert np.diag(kept.to_numpy()).tolist() == [1.0, 1.0, 1.0]
    dropped = analyses.overlap_matrix(analyses.dropped_sets(sets, 10))
    # a drops {4..9}, b drops {0, 1, 6..9}: 4 in common out of 6
    assert dropped.loc["a", "b"] == pytest.approx(4 / 6)
    assert dropped.loc["a", "c"] == 1.0


def test_window_masks_keep_bottom_moderate_and_top_of_the_score():
    score = np.arange(10, dtype=float)[::-1]  # sample i has score 9 - i
    masks = analyses.window_masks(score, np.zeros(10, dtype=int), 0.2, balance=False)
    assert np.flatnonzero(masks["bottom"]).tolist() == [8, 9]
    assert np.flatnonzero(masks["top"]).tolist() == [0, 1]
    assert np.flatnonzero(masks["moderate"]).tolist() == [4, 5]  # ascending ranks 4, 5


# --- which experiments a table reports -------------------------------------------------------

def exp(rev: str, ts: str = "", **params) -> Experiment:
    base = {"ratio": 0.2, "train.epochs": 3, "seeds": (0,), "selectors": ("random",),
            "recipes.random.method": "random", "recipes.other.method": "x"}
    return Experiment(rev, "", ts, {**base, **params}, ("full", "random"))


def test_matching_leaves_out_other_params_but_not_free_axes_or_unrun_recipes():
    context = exp("ctx").params
    exps = [exp("a"), exp("b", ratio=0.4, seeds=(0, 1)), exp("c", **{"train.epochs": 30}),
            exp("d", **{"recipes.other.method": "y"})]
    kept, left_out = matching(exps, context, ("ratio",))
    assert [e.rev for e in kept] == ["a", "b", "d"]  # d changed a recipe it did not run
    assert left_out == {"train.epochs": 1}


def test_newest_experiment_wins_and_workspace_comes_last():
    order = prioritised([exp("workspace"), exp("old", "2024-01-01T00:00:00"),
                         exp("new", "2025-01-01T00:00:00")])
    assert [e.rev for e in order] == ["new", "old", "workspace"]


def test_parse_show_keeps_completed_runs_only():
    def rev(sha: str, ratio: float, summary: bool = True) -> dict:
        data = {"timestamp": "2025-01-01T00:00:00",
                "params": {"params.yaml": {"data": {"ratio": ratio, "selectors": ["random"]}}},
                "metrics": {"metrics/summary.json": {"data": {"selectors": {"full": {},
                                                                         "random": {}}}}}}
        if not summary:
            data["metrics"] = {}
        return {"rev": sha, "name": None, "data": data}

    records = [{**rev("base", 0.2), "experiments": [
        {"executor": {"state": "success"}, "name": "e1", "revs": [rev("e1", 0.3)]},
        {"executor": {"state": "failed"}, "name": "e2", "revs": [rev("e2", 0.4)]},
        {"executor": None, "name": "e3", "revs": [rev("e3", 0.6, summary=False)]},
    ]}]
    exps = parse_show(records)
    assert [(e.rev, e.params["ratio"]) for e in exps] == [("base", 0.2), ("e1", 0.3)]
    assert exps[0].recipes == ("full", "random") and exps[0].params["selectors"] == ("random",)


# --- recipes ---------------------------------------------------------------------------------

def base_params() -> dict:
    return flatten(yaml.safe_load((ROOT / "params.yaml").read_text()))


@pytest.mark.parametrize("name", tables_cmd.presets())
def test_presets_are_valid_params(name):
    tree = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in tables_cmd.load_preset(name).items():
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        assert leaf in node, f"{name}: {key} is not in params.yaml"
        node[leaf] = value
    parse(tree)  # raises ConfigError on a bad value


def test_presets_hold_the_paper_settings():
    c100 = tables_cmd.load_preset("cifar100_resnet50")
    assert (c100["train.model"], c100["train.epochs"], c100["train.milestones"]) == (
        "resnet50", 200, [60, 120, 160])
    assert tables_cmd.load_preset("tinyimagenet_resnet50")["data.image_size"] == 64
    assert tables_cmd.load_preset("cifar10_resnet18_deepcore")["train.schedule"] == "cosine"


def test_plan_cells_and_overrides():
    base = base_params()
    p = tables_cmd.plan("robustness", base, tiny=True)
    assert p.fixed["selectors"] == tables_cmd.TINY_SELECTORS and p.fixed["train.epochs"] == 3
    assert len(p.cells) == len(tables_cmd.TINY_SCENARIOS)
    assert tables_cmd.plan("ablation", base).fixed["selectors"] == list(tables_cmd.ABLATION)
    sxr = tables_cmd.plan("selectors_x_ratios", base, ratios=[0.2, 0.5])
    assert sxr.cells == [{"ratio": 0.2}, {"ratio": 0.5}] and sxr.fixed == {}
    with pytest.raises(tables_cmd.TableError, match=r"not a key of params\.yaml"):
        tables_cmd.plan("selectors_x_ratios", base, sets={"train.epoch": 3})


def test_schedule_skips_done_and_runs_new_upstreams_first():
    base = base_params()
    p = tables_cmd.plan("pretrain_epochs", base, ratios=[0.2, 0.3])
    done = [tables_cmd.full_params(base, {"pretrain.epochs": 1, "ratio": 0.2})]
    first, rest, skipped = tables_cmd.schedule(p, base, done, [])
    assert skipped == 1
    # pretrain.epochs=1 at 0.3 shares the done experiment's upstream: no need to go first
    assert {"pretrain.epochs": 1, "ratio": 0.3} in rest
    expected = [e for e in tables_cmd.PRETRAIN_EPOCHS if e != 1]
    assert [c["pretrain.epochs"] for c in first] == expected


def test_hydra_values():
    assert tables_cmd.hydra(["random", "el2n"]) == "[random,el2n]"
    assert tables_cmd.hydra("data/x") == '"data/x"' and tables_cmd.hydra("true") == '"true"'
    assert tables_cmd.hydra(False) == "false" and tables_cmd.hydra(0.0005) == "0.0005"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                   check=True, capture_output=True)


def test_recipe_refuses_an_uncommitted_baseline(tmp_path):
    with pytest.raises(tables_cmd.TableError, match="not a git repository"):
        tables_cmd.check_baseline(tmp_path)
    (tmp_path / "params.yaml").write_text("ratio: 0.2\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "x")
    with pytest.raises(tables_cmd.TableError, match=r"dvc\.lock is not committed"):
        tables_cmd.check_baseline(tmp_path)
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "lock")
    tables_cmd.check_baseline(tmp_path)
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    with pytest.raises(tables_cmd.TableError, match=r"uncommitted changes in dvc\.lock"):
        tables_cmd.check_baseline(tmp_path)


# --- end to end: a recipe on a temporary git + DVC repository ---------------------------------

TINY_SELECTORS = ["random", "moderate"]


def run(repo: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", *args], cwd=repo, capture_output=True,
                          text=True)
    assert (proc.returncode == 0) == ok, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory, tiny_built) -> Path:
    """A committed tiny baseline (the --tiny settings, two selectors, ratio 0.2) + the recipe
    selectors_x_ratios at ratios 0.2, 0.3, 0.4: two experiments queued and run in parallel."""
    assert repo_copy.BASELINE["selectors"] == TINY_SELECTORS
    repo = repo_copy.copy_built(tiny_built[0], tmp_path_factory.mktemp("report_repo") / "repo")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "baseline")
    run(repo, "coreset.experiments.tables", "selectors_x_ratios", "--tiny", "--jobs", "2",
        "--selectors", ",".join(TINY_SELECTORS), "--ratios", "0.2,0.3,0.4")
    return repo


@pytest.mark.integration
def test_recipe_writes_the_table_from_real_experiments(tiny_repo):
    out = tiny_repo / "plots" / "smoke"  # --tiny reports there
    md = (out / "selectors_x_ratios.md").read_text()
    assert "| selector | 20% | 30% | 40% | avg. rank |" in md
    csv = pd.read_csv(out / "selectors_x_ratios.csv").set_index("selector")
    assert list(csv.index) == ["random", "moderate", "full"]
    assert (csv[["20% n", "30% n", "40% n"]] == 1).all().all()
    # the 20% column is the committed baseline: its per-seed file, in percent
    for recipe in ("random", "moderate", "full"):
        acc = json.loads((tiny_repo / f"metrics/train/{recipe}-0.json").read_text())["accuracy"]
        assert csv.loc[recipe, "20% mean"] == pytest.approx(100 * acc, abs=1e-4)
    best = csv.loc[["random", "moderate"], "30% mean"].round(2)
    assert csv.loc[best.idxmax(), "best_in"].split(";").count("30%") == 1
    assert r"\toprule" in (out / "selectors_x_ratios.tex").read_text()
    assert (out / "selectors_x_ratios.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.integration
def test_recipe_rerun_queues_nothing_and_reproduces_the_files(tiny_repo):
    out = tiny_repo / "plots" / "smoke"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = run(tiny_repo, "coreset.experiments.tables", "selectors_x_ratios", "--tiny",
               "--jobs", "2", "--selectors", ",".join(TINY_SELECTORS), "--ratios", "0.2,0.3,0.4")
    assert "3 already done or queued, 0 to run" in proc.stdout
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.integration
def test_report_overlap_windows_and_missing_tables(tiny_repo):
    sets = [f"--set={k}={json.dumps(v)}" for k, v in tables_cmd.TINY.items()]
    run(tiny_repo, "coreset.experiments.report", "overlap", "windows", *sets)
    out = tiny_repo / "plots" / "report"
    kept = pd.read_csv(out / "overlap_ratio30_kept.csv", index_col=0)
    assert list(kept.index) == TINY_SELECTORS and np.allclose(np.diag(kept), 1.0)
    assert (out / "overlap_ratio40.png").exists() and (out / "windows.png").exists()
    proc = run(tiny_repo, "coreset.experiments.report", "pretrain_epochs", *sets, ok=False)
    assert "do not vary pretrain.epochs" in proc.stderr
    # another context (30 training epochs) matches no experiment, and the report says why
    proc = run(tiny_repo, "coreset.experiments.report", "selectors_x_ratios",
               "--set=train.epochs=30", ok=False)
    assert "left out because their params differ in: train.epochs" in proc.stderr
