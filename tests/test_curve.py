"""The consolidation curve: levels, rows, run folders, interruption and resume."""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import optimizer
from optimizer import curve, orlib
from optimizer.curve import (
    CurveOptions,
    consolidation_curve,
    default_levels,
    downward_pass,
    parse_levels,
    status_quo,
)
from optimizer.engine import LevelSolver, solve_level
from optimizer.errors import DataValidationError
from optimizer.evaluate import evaluate
from optimizer.results import read_groupings
from optimizer.schema import load_model
from optimizer.solve import Proof, SolverOptions
from tests.conftest import CLI_CODE, CliRunner
from tests.synthetic import write_synthetic

PMED1 = Path(__file__).resolve().parents[1].parent / "shared/benchmarks/orlib/pmed/pmed1.txt"
STABLE = ["level", "total", "agencies", "desks", "purchases", "distance", "savings", "status"]


def test_downward_pass_swaps_at_evenly_spread_levels_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    solver = LevelSolver(orlib.read_pmed(PMED1)[0])
    wanted = set(range(5, 41))
    monkeypatch.setattr(curve, "SWAP_MOVES", 0)
    greedy = {k: a.cost for k, a in downward_pass(solver, 5, wanted).items()}
    monkeypatch.setattr(curve, "SWAP_MOVES", 8)
    monkeypatch.setattr(curve, "SWAP_LEVELS", 4)
    found = downward_pass(solver, 5, wanted)
    assert set(found) == wanted
    improved = {k for k in wanted if found[k].cost < greedy[k] - 1e-6}
    assert improved and improved <= {40, 31, 22, 13}  # every 9th of the 36 levels
    assert all(found[k].cost <= greedy[k] + 1e-6 for k in wanted)


def test_level_tasks_come_as_the_downward_pass_reaches_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    solver = LevelSolver(orlib.read_pmed(PMED1)[0])
    levels = [100, 60, 30, 10, 3]
    expected = downward_pass(solver, 3, set(levels))
    drops = []
    real = curve.drop_site

    def counted(*args: object) -> object:
        drops.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(curve, "drop_site", counted)
    tasks = curve.level_tasks(solver, levels)
    first = next(tasks)
    assert first.level == 100 and first.start is not None and not drops  # before the pass
    rest = list(tasks)
    assert [t.level for t in rest] == [60, 30, 10, 3] and len(drops) >= 97
    for k, grouping, afresh in [first, *rest]:
        assert grouping is not None and grouping.cost == pytest.approx(expected[k].cost)
        assert not afresh
    assert list(curve.level_tasks(solver, [])) == []


def test_level_tasks_hand_out_the_lowest_level_ahead_of_the_last_ones() -> None:
    solver = LevelSolver(orlib.read_pmed(PMED1)[0])
    levels = [150, 100, 60, 30, 10, 3, 1]
    tasks = list(curve.level_tasks(solver, levels, ahead=2))
    assert [t.level for t in tasks] == [150, 100, 60, 30, 1, 10, 3]  # every level is feasible
    starts = {t.level: t.start for t in tasks}
    assert starts[150] is None  # above the 100 sites: the pass never reaches it
    expected = downward_pass(solver, 1, set(levels))
    for k in (100, 60, 30, 10, 3, 1):
        assert starts[k] is not None and starts[k].cost == pytest.approx(expected[k].cost)
    plain = [t.level for t in curve.level_tasks(solver, levels)]
    assert plain == levels


def test_lowest_early_moves_the_lowest_feasible_level_only() -> None:
    assert curve.lowest_early([9, 8, 7, 6, 5], fewest=7, ahead=1) == [9, 7, 8, 6, 5]
    assert curve.lowest_early([9, 8, 7], fewest=7, ahead=5) == [7, 9, 8]
    assert curve.lowest_early([9, 8, 7], fewest=10, ahead=2) == [9, 8, 7]


def test_second_tries_start_from_the_neighbours_when_cheaper_else_afresh(
    synthetic: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = optimizer.load_instance(synthetic, load_model(synthetic / "model.toml"))
    solver = LevelSolver(instance)
    for level in (12, 8):
        solver.solve(level)
    near = solver.nearby(10)
    assert near is not None
    solver.solved[10] = downward_pass(solver, 10, {10})[10]  # the greedy pass's: dearer
    total = solver.solved[10].cost
    row = {"total": total, "lower_bound": total - 1e6, "gap": 1e-3, "status": "time_limit"}
    tries = curve.second_tries(solver, {10: row}, [12, 10, 8], Proof(1e-4))
    assert near.cost < row["total"]
    assert [(t.level, t.start.cost if t.start else None, t.afresh) for t in tries] == [
        (10, near.cost, False)
    ]
    solver.solve(10)  # its own grouping is now no dearer than the neighbours'
    tries = curve.second_tries(solver, {10: row}, [10], Proof(1e-4))
    assert tries == [curve.LevelTask(10, None, afresh=True)]
    for change in ({"lower_bound": total - 1.0}, {"status": "no_solution"}):
        assert curve.second_tries(solver, {10: {**row, **change}}, [10], Proof(1e-4)) == []
    handed: list[object] = []
    real = solver._benders

    def noted(level: int, start: object, *args: object) -> object:
        handed.append(start)
        return real(level, start, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(solver, "_benders", noted)
    solver.solve(10, None, afresh=True)
    solver.solve(10)
    assert handed[0] is None and handed[1] is not None  # afresh: no start from level 12 or 8


def test_a_level_tried_twice_keeps_the_cheaper_grouping_and_the_higher_bound() -> None:
    old = {"total": 100.0, "lower_bound": 99.98, "gap": 2e-4, "status": "time_limit",
           "seconds": 30.0}
    new = {"total": 100.5, "lower_bound": 99.995, "gap": 5e-3, "status": "time_limit",
           "seconds": 12.0}
    row, second = curve.merge_tries(old, new, Proof(1e-4))
    assert not second and row["total"] == 100.0 and row["lower_bound"] == 99.995
    assert row["gap"] == pytest.approx(5e-5) and row["status"] == "optimal"
    assert row["seconds"] == 42.0
    row, second = curve.merge_tries(old, {**new, "lower_bound": 99.9}, Proof(1e-4))
    assert not second and row["lower_bound"] == 99.98 and row["status"] == "time_limit"
    empty = {"status": "no_solution", "seconds": 5.0, "total": math.nan}
    row, second = curve.merge_tries(old, empty, Proof(1e-4))
    assert not second and row == {**old, "seconds": 35.0}


def test_a_second_try_unmarks_its_level_before_writing_its_grouping(tmp_path: Path) -> None:
    """A run stopped mid-write leaves the level to be solved again, never a row beside
    another try's grouping."""
    toy = optimizer.load("toy")
    out = tmp_path / "run"
    consolidation_curve(toy, CurveOptions(levels=(4,)), out)
    row = json.loads((out / "levels" / "level-4.json").read_text())
    broken = pd.DataFrame({"body_id": ["b1"]})  # no category or site: the write fails
    with pytest.raises(KeyError):
        curve._persist(out, {**row, "total": row["total"] - 1.0}, broken)
    assert not (out / "levels" / "level-4.json").exists()
    assert 4 not in curve._finished(out, [4])


def test_parse_levels_lists_and_ranges() -> None:
    assert parse_levels("380,200,100..98,50", 382) == [380, 200, 100, 99, 98, 50]
    assert parse_levels("all", 10) == [10, 9, 8, 7, 6, 5, 4]
    assert parse_levels("all", 10, min_level=6, max_level=8) == [8, 7, 6]
    assert parse_levels("default", 382) == default_levels(382)


@pytest.mark.parametrize(
    ("spec", "message"), [("5,x", "got 'x'"), ("0,3", "between 1 and 6"), ("9", "got [9]")]
)
def test_parse_levels_rejects_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(DataValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_levels(spec, 6)


def test_default_levels_are_denser_at_the_low_end() -> None:
    levels = default_levels(382)
    assert levels[0] == 382 and levels[-1] == 4 and 14 <= len(levels) <= 17
    steps = [a - b for a, b in itertools.pairwise(levels)]
    assert steps[0] > steps[-1]


def test_toy_curve_rows_match_single_level_solves() -> None:
    toy = optimizer.load("toy")
    curve = consolidation_curve(
        toy, CurveOptions(levels=(6, 5, 4, 3), solver=SolverOptions(gap=1e-9))
    )
    frame = curve.to_frame()
    assert frame["level"].tolist() == [6, 5, 4, 3]
    for level, total in zip(frame["level"], frame["total"], strict=True):
        assert total == pytest.approx(
            solve_level(toy, int(level), SolverOptions(gap=1e-9)).objective
        )
    # The status quo is computed from every body buying alone: GBP 506,000 (tests/test_evaluate.py).
    assert curve.status_quo == pytest.approx(506000.0) == status_quo(toy)
    three = frame[frame["level"] == 3].iloc[0]
    assert three["savings"] == pytest.approx(506000.0 - 467146.0)
    assert three["savings_pct"] == pytest.approx(100 * 38854.0 / 506000.0)
    assert three["agencies_in_northland"] == 2 and three["agencies_in_southland"] == 1


def test_curve_records_infeasible_levels(tmp_path: Path) -> None:
    out = tmp_path / "run"
    curve = consolidation_curve(optimizer.load("toy"), CurveOptions(levels=(4, 2)), out)
    frame = curve.to_frame()
    assert frame.set_index("level").loc[2, "status"] == "infeasible"
    assert not (out / "groupings" / "level-2.csv").exists()
    written = pd.read_csv(out / "curve.csv")
    assert written["level"].tolist() == [4, 2]
    assert written.columns[:12].tolist() == [
        "level",
        "total",
        "agencies",
        "desks",
        "purchases",
        "distance",
        "savings",
        "savings_pct",
        "lower_bound",
        "gap",
        "status",
        "seconds",
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recommended_level"] == 4
    assert summary["status_quo_total"] == pytest.approx(506000.0)


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    return write_synthetic(tmp_path / "data", n_bodies=30)


def _run(folder: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    args = [
        "curve",
        "--data",
        str(folder),
        "--model",
        str(folder / "model.toml"),
        "--out",
        str(out),
    ]
    return subprocess.Popen(
        [sys.executable, "-c", CLI_CODE, *args, "--levels", "all", "--gap", "1e-9", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_killed_run_resumes_to_the_same_curve(synthetic: Path, tmp_path: Path) -> None:
    whole = _run(synthetic, tmp_path / "whole")
    assert whole.wait(timeout=600) == 0, whole.stderr.read() if whole.stderr else ""
    killed_out = tmp_path / "killed"
    killed = _run(synthetic, killed_out)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list((killed_out / "levels").glob("*.json"))) < 3:
        time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=60)
    finished = len(list((killed_out / "levels").glob("*.json")))
    assert 3 <= finished < 27, "the run should have been stopped part way"
    resumed = _run(synthetic, killed_out, "--resume")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read() if resumed.stderr else ""
    a = pd.read_csv(tmp_path / "whole" / "curve.csv")[STABLE]
    b = pd.read_csv(killed_out / "curve.csv")[STABLE]
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9)


def test_every_grouping_file_re_evaluates_to_its_row(synthetic: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _run(synthetic, out)
    assert proc.wait(timeout=600) == 0
    instance = optimizer.load_instance(synthetic, optimizer.load_model(synthetic / "model.toml"))
    curve = pd.read_csv(out / "curve.csv")
    solved = curve[curve["status"] == "optimal"]
    assert len(solved) >= 20
    assert set(curve.loc[curve["status"] != "optimal", "status"]) <= {"infeasible"}
    for row in solved.itertuples(index=False):
        check = evaluate(instance, read_groupings(out / "groupings" / f"level-{row.level}.csv"))
        assert check.feasible
        assert check.level == row.level
        assert check.total == pytest.approx(row.total, rel=1e-9)
        assert row.lower_bound <= row.total * (1 + 1e-9)


def test_resume_refuses_other_options_and_a_plain_rerun_refuses(
    cli: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert cli("curve", "--data", "toy", "--out", out, "--levels", "6,4")[0] == 0
    code, _, stderr = cli("curve", "--data", "toy", "--out", out, "--levels", "6,4")
    assert code == 2 and "holds a run already: add --resume" in stderr
    code, _, stderr = cli(
        "curve", "--data", "toy", "--out", out, "--levels", "6,4", "--resume", "--gap", "0.01"
    )
    assert code == 2 and "the inputs or options differ" in stderr
    code, stdout, _ = cli("curve", "--data", "toy", "--out", out, "--levels", "6,4,3", "--resume")
    assert code == 0 and "467.1" in stdout
    assert sorted(p.name for p in (out / "groupings").iterdir()) == [
        "level-3.csv",
        "level-4.csv",
        "level-6.csv",
    ]


def _frame(totals: dict[int, tuple[float, float]]) -> pd.DataFrame:
    """A hand-made curve frame: level -> (total, lower bound), every level optimal."""
    rows = [
        {"level": k, "total": t, "lower_bound": b, "gap": (t - b) / t, "status": "optimal"}
        for k, (t, b) in totals.items()
    ]
    return pd.DataFrame(rows)


def test_levels_within_their_proven_gaps_are_tied_and_the_fewest_recommended() -> None:
    """Issue 31 item 4: a resumed run 8.1e-5 higher at level 25 must not flip the recommendation.

    Both runs prove every level within 1e-4; which of 25 and 20 comes out
    lowest is noise within those gaps.
    """
    whole = _frame({30: (110.0, 109.99), 25: (100.0, 99.995), 20: (100.004, 99.996)})
    resumed = _frame({30: (110.0, 109.99), 25: (100.0081, 99.9981), 20: (100.004, 99.996)})
    summaries = [curve.curve_summary(f, 120.0, 1.0) for f in (whole, resumed)]
    for summary in summaries:
        assert summary["tied_levels"] == [25, 20]
        assert summary["recommended_level"] == 20
        assert summary["recommended_total"] == 100.004
    assert summaries[0]["lowest_total_level"] == 25 and summaries[1]["lowest_total_level"] == 20
    apart = _frame({25: (100.0, 99.995), 20: (100.2, 100.1)})  # 20's bound is above 25's total
    assert curve.curve_summary(apart, 120.0, 1.0)["tied_levels"] == [25]
    assert curve.curve_summary(apart, 120.0, 1.0)["recommended_level"] == 25


@pytest.fixture(scope="module")
def mid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 150-body synthetic dataset folder (from the package's generator)."""
    from optimizer.synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("mid"), 150, 1)


def test_cli_names_the_levels_tied_within_their_gaps(
    mid: Path, tmp_path: Path, cli: CliRunner
) -> None:
    """At 0.01 s a level no LP finishes: its bound is the floor bound, far below every total."""
    out = tmp_path / "run"
    code, stdout, err = cli(
        "curve", "--data", mid, "--model", mid / "model.toml", "--levels", "40,30",
        "--time-limit", "0.01", "--executor", "serial", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tied_levels"] == [40, 30] and summary["recommended_level"] == 30
    assert "levels 40, 30 are tied within their proven gaps" in stdout
    report = tmp_path / "report.html"
    code, _, err = cli("report", out, "-o", report)
    assert code == 0, err
    assert "Levels 40, 30 are tied within their proven gaps" in report.read_text()


def test_a_pass_given_a_tiny_budget_stops_within_it_and_the_run_writes_its_levels(
    tmp_path: Path,
) -> None:
    """Issue 31 item 5: on 600 bodies the whole pass to level 50 takes about 50 s."""
    from optimizer.synthetic import write_dataset

    folder = write_dataset(tmp_path / "data", 600, 1)
    instance = optimizer.load(folder, folder / "model.toml")
    solver = LevelSolver(instance)
    began = time.perf_counter()
    reached = dict(curve.downward_steps(solver, 50, {500, 300, 100, 50}, budget=0.3))
    assert time.perf_counter() - began < 0.3 + 1.0  # one drop at most past the budget
    assert 50 not in reached
    out = tmp_path / "run"
    options = CurveOptions(levels=(300, 100), solver=SolverOptions(time_limit=2.0))
    began = time.perf_counter()
    frame = consolidation_curve(instance, options, out).to_frame()
    assert time.perf_counter() - began < 30.0
    assert frame["level"].tolist() == [300, 100]
    assert set(frame["status"]) <= {"optimal", "time_limit"}
    for level in (300, 100):
        assert (out / "groupings" / f"level-{level}.csv").exists()
    assert curve.pass_budget(2.0, 2) == pytest.approx(0.4)


def test_a_resumed_run_holds_the_finished_levels_groupings(tmp_path: Path) -> None:
    """Issue 31 item 4: the levels resumed start near the finished ones, as in one run."""
    toy = optimizer.load("toy")
    out = tmp_path / "run"
    first = consolidation_curve(toy, CurveOptions(levels=(6, 4)), out).to_frame()
    options = CurveOptions(levels=(6, 4, 3))
    done = curve._prepare(toy, options, out, resume=True)
    assert {k: row["total"] for k, row in done.items()} == dict(
        zip(first["level"], first["total"], strict=True)
    )  # read back exactly
    shared = curve._Levels(toy, options, status_quo(toy))
    run = curve._Run(shared, curve.SERIAL, done, out, None, 3, 0.0)
    assert {k: a.cost for k, a in run.solver.solved.items()} == pytest.approx(
        {k: row["total"] for k, row in done.items()}, rel=1e-12
    )
    assert run.solver.nearby(3) is not None  # level 3 starts from level 4's grouping


def test_a_category_nobody_buys_leaves_the_curve_whole(
    toy_folder: Path, toy_model: optimizer.Model
) -> None:
    """A model category with no spend at all: its band copies are skipped, not searched.

    Before, the swaps of the downward pass refined that category's empty
    price table and crashed (``argmin of an empty sequence``).
    """
    spend = toy_folder / "spend.csv"
    lines = spend.read_text(encoding="utf-8").splitlines()
    spend.write_text("".join(f"{r}\n" for r in lines if ",ict," not in r), encoding="utf-8")
    toy = optimizer.load_instance(toy_folder, toy_model)
    options = SolverOptions(gap=1e-9)
    frame = consolidation_curve(toy, CurveOptions(levels=(6, 4, 3), solver=options)).to_frame()
    assert frame["status"].tolist() == ["optimal"] * 3
    for level, total in zip(frame["level"], frame["total"], strict=True):
        assert total == pytest.approx(solve_level(toy, int(level), options).objective)


@pytest.mark.parametrize("levels", [(0,), (3, -1)])
def test_a_curve_refuses_levels_below_one_before_solving(
    levels: tuple[int, ...], tmp_path: Path
) -> None:
    toy = optimizer.load("toy")
    with pytest.raises(DataValidationError, match=r"--levels.*at least 1"):
        consolidation_curve(toy, CurveOptions(levels=levels), tmp_path / "out")
    assert not (tmp_path / "out" / "levels").exists()


def test_a_host_in_another_nation_leaves_the_whole_body_curve_whole(tmp_path: Path) -> None:
    """Whole bodies, same nation: b1's host site h1 lies in another nation, so b1 buys elsewhere.

    Refining the band copies then found no copy in use that b1 may buy
    through and crashed (``argmin of an empty sequence``); found by
    tests/test_properties.py.
    """
    rows = {
        "bodies.csv": "body_id,name,nation,x_km,y_km\nb0,B0,north,25,2\nb1,B1,north,5,16\n"
        "b2,B2,north,12,8\nb3,B3,south,8,9\nb4,B4,north,54,9\n",
        "spend.csv": "body_id,category,spend\nb0,c0,197000\nb1,c0,71000\nb1,c1,136000\n"
        "b3,c1,0\nb4,c0,237000\n",
        "sites.csv": "site_id,name,nation,x_km,y_km,fixed_cost,capacity,status,body_id\n"
        "b0,S0,north,25,2,,,candidate,b0\nh1,S1,south,5,16,50000,,candidate,b1\n"
        "h2,S2,north,12,8,50000,,open,b2\nb3,S3,south,8,9,,,candidate,b3\n"
        "h4,S4,north,54,9,,,candidate,b4\n",
    }
    band = "distance_cost = 400\nbands = [[0, 100000, 0], [100000, inf, 0.2]]\n"
    (tmp_path / "model.toml").write_text(
        "[scenario]\nagency_fixed_cost = 5000\nsame_nation = true\nsplit_categories = false\n"
        f"[categories.c0]\ndesk_cost = 0\n{band}[categories.c1]\ndesk_cost = 0\n{band}",
        encoding="utf-8",
    )
    (tmp_path / "data").mkdir()
    for name, text in rows.items():
        (tmp_path / "data" / name).write_text(text, encoding="utf-8")
    instance = optimizer.load_instance(tmp_path / "data", load_model(tmp_path / "model.toml"))
    options = SolverOptions(gap=1e-9)
    frame = consolidation_curve(instance, CurveOptions(levels=(5, 4, 3), solver=options))
    rows_out = frame.to_frame()
    assert rows_out["status"].tolist() == ["infeasible", "optimal", "optimal"]
    for level in (4, 3):
        total = rows_out.loc[rows_out["level"] == level, "total"].item()
        assert total == pytest.approx(solve_level(instance, level, options).objective)


def test_cli_levels_reach_the_sites_that_may_open(
    toy_folder: Path, toy_model_path: Path, tmp_path: Path, cli: CliRunner
) -> None:
    """A site forced open besides every body's own: the status quo is 7 agencies for 6 bodies.

    ``--levels`` allowed only up to the bodies (6) and refused level 7.
    """
    hosts = pd.read_csv(toy_folder / "bodies.csv")[["body_id", "nation", "x_km", "y_km"]]
    sites = hosts.assign(site_id=hosts["body_id"], name=hosts["body_id"], status="")
    extra = {"site_id": "w1", "name": "Westgate", "nation": "Northland", "x_km": 60,
             "y_km": 0, "status": "open", "body_id": ""}  # fmt: skip
    sites = pd.concat([sites, pd.DataFrame([extra])], ignore_index=True)
    sites.to_csv(toy_folder / "sites.csv", index=False)
    with (toy_folder / "edges.csv").open("a", encoding="utf-8") as edges:
        edges.write("a3,w1,40\n")
    out = tmp_path / "run"
    code, _, err = cli(
        "curve", "--data", toy_folder, "--model", toy_model_path, "--levels", "7,5",
        "--executor", "serial", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    frame = pd.read_csv(out / "curve.csv")
    assert frame["level"].tolist() == [7, 5] and set(frame["status"]) == {"optimal"}
    code, _, err = cli(
        "curve", "--data", toy_folder, "--model", toy_model_path, "--levels", "8",
        "--out", tmp_path / "other",
    )  # fmt: skip
    assert code == 2 and "levels must be between 1 and 7" in err, err
