"""The gap: relative to the decision cost, ``--gap-abs``, ``gap_gbp``, and no negative gap."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import optimizer
from optimizer.curve import merge_tries
from optimizer.engine import LevelSolver, check_bound, purchase_floor, solve_level
from optimizer.errors import SolverError
from optimizer.solve import DEFAULT_GAP, HighsBackend, Proof, SolverOptions
from tests.conftest import CliRunner
from tests.knapsack import knapsack

# Random p-median instances in the public data contract, as OR-Library's pmed
# sets are written there: one category, GBP 1m of spend a body, distance cost
# 1 (so GBP 1 per km), no fixed or desk cost, no discount. The spend, the
# same in every grouping, is 60m of a total about 1,500 above it; at level
# 4, seeds 3 and 4 came back 157 and 458 above the optimum, called optimal,
# when the gap was read against the total.
BODIES, LEVEL, SEEDS = 60, 4, (3, 4)
PMED_MODEL = """\
[scenario]
agency_fixed_cost = 0
same_nation = true
split_categories = true

[categories.demand]
desk_cost = 0
distance_cost = 1.0
bands = [[0, inf, 0.0]]
"""


def _pmed(folder: Path, seed: int) -> Path:
    """A p-median dataset of ``BODIES`` points in a 100 km square, with its model."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    ids = [f"p{i:02d}" for i in range(BODIES)]
    xy = rng.uniform(0, 100, (BODIES, 2)).round(1)
    bodies = {"body_id": ids, "name": ids, "nation": "pm", "x_km": xy[:, 0], "y_km": xy[:, 1]}
    pd.DataFrame(bodies).to_csv(folder / "bodies.csv", index=False)
    spend = {"body_id": ids, "category": "demand", "spend": 1e6}
    pd.DataFrame(spend).to_csv(folder / "spend.csv", index=False)
    (folder / "model.toml").write_text(PMED_MODEL, encoding="utf-8")
    return folder


def _pmed_optimum(instance: optimizer.Instance, level: int) -> float:
    """Every set of ``level`` sites, each body at its nearest: the least total."""
    d = instance.distances
    sets = np.array(list(itertools.combinations(range(d.shape[1]), level)))
    least = min(
        float(d[:, chunk].min(axis=2).sum(axis=0).min())
        for chunk in np.array_split(sets, max(1, len(sets) // 20000))
    )
    return least + float(instance.spend["spend"].sum())


def _within(total: float, optimum: float, floor: float) -> bool:
    """Whether ``total`` is ``optimum`` within the default gap of its decision cost."""
    return optimum - 1e-6 <= total <= optimum + DEFAULT_GAP * max(total - floor, 1.0) + 1e-6


@pytest.mark.parametrize("seed", SEEDS)
def test_a_p_median_level_at_the_default_options_is_its_optimum(
    tmp_path: Path, cli: CliRunner, seed: int
) -> None:
    data = _pmed(tmp_path / "pmed", seed)
    instance = optimizer.load(data, data / "model.toml")
    optimum, floor = _pmed_optimum(instance, LEVEL), purchase_floor(instance)
    assert floor == pytest.approx(instance.spend["spend"].sum())  # no discount: the spend
    out = tmp_path / "out"
    code, _, err = cli(
        "solve", "--data", data, "--model", data / "model.toml", "--level", LEVEL, "--out", out
    )
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "optimal"
    assert _within(summary["objective"], optimum, floor), (summary["objective"], optimum)
    assert summary["gap_gbp"] == pytest.approx(summary["objective"] - summary["bound"], abs=1e-6)
    assert summary["gap"] == pytest.approx(summary["gap_gbp"] / (summary["objective"] - floor))


def test_a_p_median_curve_is_optimal_and_gives_gap_gbp(tmp_path: Path, cli: CliRunner) -> None:
    data = _pmed(tmp_path / "pmed", SEEDS[1])
    instance = optimizer.load(data, data / "model.toml")
    floor = purchase_floor(instance)
    out = tmp_path / "run"
    code, _, err = cli(
        "curve", "--data", data, "--model", data / "model.toml", "--out", out,
        "--levels", f"{BODIES},5,{LEVEL},3", "--executor", "serial",
    )  # fmt: skip
    assert code == 0, err
    frame = pd.read_csv(out / "curve.csv")
    assert frame.columns[-1] == "gap_gbp"  # appended: every other column where it was
    assert list(frame.columns[:13]) == list(optimizer.curve.CURVE_COLUMNS)
    for _, row in frame.iterrows():
        level = int(row["level"])
        optimum = _pmed_optimum(instance, level)
        assert row["status"] == "optimal"
        assert _within(row["total"], optimum, floor), (level, row["total"], optimum)
        assert row["gap_gbp"] == pytest.approx(row["total"] - row["lower_bound"], abs=1e-6)
        saved = json.loads((out / "levels" / f"level-{level}.json").read_text(encoding="utf-8"))
        assert saved["gap_gbp"] == pytest.approx(row["gap_gbp"], abs=1e-6)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["worst_gap_gbp"] == pytest.approx(frame["gap_gbp"].max(), abs=1e-6)
    assert summary["worst_gap"] == pytest.approx(frame["gap"].max())


def test_an_absolute_gap_met_proves_a_level(tmp_path: Path, cli: CliRunner) -> None:
    """With no relative gap, a level within ``--gap-abs`` GBP of its bound is optimal."""
    data = _pmed(tmp_path / "pmed", SEEDS[0])
    instance = optimizer.load(data, data / "model.toml")
    wide = solve_level(instance, LEVEL, SolverOptions(gap=0.0, gap_abs=1e9))
    assert wide.status == "optimal" and 0.0 <= wide.gap_gbp <= 1e9
    out = tmp_path / "out"
    code, _, err = cli(
        "solve", "--data", data, "--model", data / "model.toml", "--level", LEVEL,
        "--gap", "0", "--gap-abs", "1e9", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "optimal" and summary["gap_gbp"] <= 1e9
    old = {"level": 4, "total": 100.5, "lower_bound": 99.0, "status": "time_limit", "seconds": 1.0}
    new = {**old, "lower_bound": 99.7}
    row, _ = merge_tries(old, new, Proof(gap=0.0, gap_abs=1.0))
    assert row["status"] == "optimal" and row["gap_gbp"] == pytest.approx(0.8)
    row, _ = merge_tries(old, new, Proof(gap=0.0, gap_abs=0.5))
    assert row["status"] == "time_limit"


def test_the_proof_is_relative_to_the_decision_cost() -> None:
    proof = Proof(gap=1e-3, gap_abs=0.0, floor=1e9)
    total = 1e9 + 2e6  # a decision cost of 2m: 2,000 allowed, not 1e-3 of the total
    assert proof.holds(total, total - 2000.0) and not proof.holds(total, total - 2001.0)
    assert proof.relative(total, total - 2000.0) == pytest.approx(1e-3)
    goal = proof.goal(total - 2000.0)
    assert goal == pytest.approx(total) and proof.holds(goal, total - 2000.0)
    assert Proof(gap=1e-3, floor=5.0).relative(5.5, 5.0) == pytest.approx(0.5)  # 1 GBP at least
    assert Proof(gap=0.0, gap_abs=10.0, floor=1e9).holds(total, total - 10.0)
    assert not Proof(gap=0.0, gap_abs=10.0, floor=1e9).holds(total, -math.inf)


def test_the_purchase_floor_is_below_every_grouping_s_purchases(
    toy_instance: optimizer.Instance,
    alone_grouping: pd.DataFrame,
    three_agency_grouping: pd.DataFrame,
) -> None:
    floor = purchase_floor(toy_instance)
    volume = toy_instance.spend_matrix.sum(axis=0)
    cats = toy_instance.model.categories.values()
    assert floor == pytest.approx(sum(v - c.saving(v) for v, c in zip(volume, cats, strict=True)))
    for grouping in (alone_grouping, three_agency_grouping):
        check = optimizer.evaluate(toy_instance, grouping)
        assert check.breakdown["purchases"] >= floor - 1e-6
    result = solve_level(toy_instance, 3, SolverOptions(gap=1e-9))
    assert result.breakdown["purchases"] >= floor - 1e-6
    assert result.gap == pytest.approx(result.gap_gbp / max(result.objective - floor, 1.0))


def test_highs_reads_its_relative_gap_against_the_floor() -> None:
    """A knapsack whose objective holds a constant of 1e6: values come back with it.

    Against its whole objective, a gap of 1e-3 lets HiGHS stop about 1,000
    above the optimum; against the objective less a floor just below the
    optimum, within 1e-3 of the rest.
    """
    model, weight, value = knapsack(offset=1e6)
    n = len(weight)
    optimum = HighsBackend(model, SolverOptions(gap=0.0)).solve(None).objective
    floor = 1e6 - float(value.sum())  # every item packed: no pack is worth more
    out = HighsBackend(model, SolverOptions(gap=1e-3), floor=floor).solve(None, np.zeros(n))
    assert out.status == "optimal" and out.values is not None
    assert out.objective == pytest.approx(1e6 - float(value[out.values > 0.5].sum()))
    assert out.bound <= optimum + 1e-9
    assert out.objective - out.bound <= 1e-3 * (out.objective - floor) + 1e-6
    target = HighsBackend(model, SolverOptions(gap=0.0), floor=floor)
    assert target.solve(None, np.zeros(n), 1e6 + 0.5).objective == 1e6  # targets keep the offset


def test_a_bound_above_a_total_is_an_error_not_a_gap_of_zero(
    toy_instance: optimizer.Instance,
) -> None:
    check_bound(100.0, 100.0 + 1e-8)  # rounding
    with pytest.raises(SolverError, match="above the total"):
        check_bound(100.0, 100.001, 4)
    solver = LevelSolver(toy_instance, SolverOptions(gap=1e-9))
    honest = solver.solve(4)
    solver.tangents.append((4, honest.objective + 1000.0, 0.0))  # a wrong bound, as a bug gives
    with pytest.raises(SolverError, match="internal error at level 4"):
        solver.solve(4)
    old = {"level": 4, "total": 100.0, "lower_bound": 99.0, "status": "time_limit", "seconds": 1}
    with pytest.raises(SolverError):
        merge_tries(old, {**old, "total": 101.0, "lower_bound": 100.5}, Proof(gap=1e-4))
