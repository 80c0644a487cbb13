"""Bodies with no spend, in every category or in some: every level against brute force.

Such a body buys nothing and needs no agency; the site it hosts is an
ordinary site, open (serving others, or no one when the level asks for more
agencies than can have members) or closed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import optimizer
from optimizer.curve import CurveOptions, consolidation_curve, status_quo
from optimizer.engine import LevelSolver
from optimizer.run import open_run
from optimizer.solve import SolverOptions
from tests import bruteforce
from tests.conftest import CliRunner

LEVELS = (6, 5, 4, 3)  # level 2 of the toy is infeasible
EXACT = SolverOptions(gap=1e-9)


def _zeroed(folder: Path, body: str, categories: tuple[str, ...] | None = None) -> Path:
    """The toy in ``folder`` with ``body``'s spend set to 0 (in ``categories``, or all)."""
    path = folder / "spend.csv"
    spend = pd.read_csv(path, dtype={"body_id": str, "category": str})
    hit = spend["body_id"] == body
    if categories is not None:
        hit &= spend["category"].isin(categories)
    spend.loc[hit, "spend"] = 0
    spend.to_csv(path, index=False)
    return folder


def _optima(instance: optimizer.Instance) -> dict[int, float]:
    found = {k: bruteforce.solve(instance, k) for k in LEVELS}
    return {k: s.total for k, s in found.items() if s is not None}


def _check_rows(frame: pd.DataFrame, optima: dict[int, float], asked: tuple[int, ...]) -> None:
    """Every level asked for reported once, each at its optimum, with a bound at or below it."""
    assert sorted(frame["level"].tolist()) == sorted(asked)
    for _, row in frame.iterrows():
        best = optima[int(row["level"])]
        assert row["status"] == "optimal"
        assert row["total"] == pytest.approx(best, rel=1e-9)
        assert row["lower_bound"] <= best + 1e-6
        assert row["gap"] >= 0.0


@pytest.mark.parametrize("body", ["a1", "a3", "s1", "s2"])
def test_a_curve_with_a_zero_spend_body_is_optimal_at_every_level_in_either_order(
    toy_folder: Path, toy_model_path: Path, body: str
) -> None:
    instance = optimizer.load(_zeroed(toy_folder, body), toy_model_path)
    optima = _optima(instance)
    for levels in (LEVELS, (6, 4), (5, 3), (6, 3, 4)):
        curve = consolidation_curve(instance, CurveOptions(levels=levels, solver=EXACT))
        _check_rows(curve.to_frame(), optima, levels)
    for order in (LEVELS, LEVELS[::-1], (4, 6, 3, 5)):  # one solver: each level starts the next
        solver = LevelSolver(instance, EXACT)
        for level in order:
            result = solver.solve(level)
            assert result.level == level and result.status == "optimal"
            assert result.objective == pytest.approx(optima[level], rel=1e-9)
            assert result.bound <= optima[level] + 1e-6


def test_the_curve_command_on_the_issue_example_reports_every_level_once(
    toy_folder: Path, toy_model_path: Path, cli: CliRunner, tmp_path: Path
) -> None:
    """Issue 31's commands: s2's spend at 0, levels 6..2 and then 6,4."""
    data = _zeroed(toy_folder, "s2")
    optima = _optima(optimizer.load(data, toy_model_path))
    for spec, asked in (("6..2", (6, 5, 4, 3, 2)), ("6,4", (6, 4))):
        out = tmp_path / f"run-{spec.replace(',', '-').replace('.', '')}"
        code, _, err = cli(
            "curve", "--data", data, "--model", toy_model_path, "--out", out,
            "--executor", "serial", "--levels", spec,
        )  # fmt: skip
        assert code == 0, err
        frame = pd.read_csv(out / "curve.csv")
        solved = frame[frame["status"] != "infeasible"]
        _check_rows(solved, optima, tuple(k for k in asked if k in optima))
        assert sorted(frame["level"]) == sorted(asked)
        assert (frame.loc[frame["level"] == 2, "status"] == "infeasible").all()
        level_6 = json.loads((out / "levels" / "level-6.json").read_text(encoding="utf-8"))
        assert level_6["idle_sites"] == ["s2"]  # open, and no member: s2 buys nothing
        run = open_run(out)
        for level in run.levels:  # re-costed with its idle agency, it matches curve.csv
            assert run.evaluation(level).level == level


def test_the_status_quo_leaves_a_zero_spend_body_s_site_closed(
    toy_folder: Path, toy_model_path: Path
) -> None:
    """Every body with spend buys alone at its own site; s2 buys nothing and opens none."""
    instance = optimizer.load(_zeroed(toy_folder, "s2"), toy_model_path)
    fixed = instance.model.scenario.agency_fixed_cost
    assert status_quo(instance) == pytest.approx(_optima(instance)[6] - fixed)


@pytest.mark.parametrize(
    ("body", "categories"), [("a2", ("ict",)), ("s1", ("care",)), ("a4", ("care",))]
)
def test_a_body_with_no_spend_in_some_categories_is_no_client_in_those(
    toy_folder: Path, toy_model_path: Path, body: str, categories: tuple[str, ...]
) -> None:
    instance = optimizer.load(_zeroed(toy_folder, body, categories), toy_model_path)
    assert not (
        (instance.spend["body_id"] == body) & instance.spend["category"].isin(categories)
    ).any()
    optima = _optima(instance)
    for levels in (LEVELS, (6, 4)):
        curve = consolidation_curve(instance, CurveOptions(levels=levels, solver=EXACT))
        _check_rows(curve.to_frame(), optima, levels)
    for level in LEVELS:
        result = optimizer.solve_level(instance, level, EXACT)
        assert result.objective == pytest.approx(optima[level], rel=1e-9)


def test_spend_of_zero_everywhere_is_bad_input(
    toy_folder: Path, toy_model_path: Path, cli: CliRunner
) -> None:
    """With no spend at all nothing is bought: one message naming the file, exit 2."""
    for body in ("a1", "a2", "a3", "a4", "s1", "s2"):
        _zeroed(toy_folder, body)
    code, out, err = cli("solve", "--data", toy_folder, "--model", toy_model_path, "--level", 2)
    assert code == 2 and "Traceback" not in out + err
    assert "spend.csv" in err and "no body has spend above 0" in err
