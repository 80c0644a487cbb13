"""Scenario comparison on the toy: curves side by side, what moved, scaled models."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import optimizer
from optimizer.compare import DIFF_COLUMNS, compare_curves, grouping_diff, plot_comparison, scaled

LEVELS = (6, 5, 4, 3, 2)


@pytest.fixture(scope="module")
def toy() -> optimizer.Instance:
    return optimizer.load("toy")


@pytest.fixture(scope="module")
def curves(toy: optimizer.Instance, tmp_path_factory: pytest.TempPathFactory) -> dict:
    free = toy.with_model(toy.model.with_scenario(same_nation=False))
    out = tmp_path_factory.mktemp("compare")
    options = optimizer.CurveOptions(levels=LEVELS)
    return {
        "nation rule": optimizer.consolidation_curve(toy, options, out=out / "on"),
        "no nation rule": optimizer.consolidation_curve(free, options, out=out / "off"),
    }


def test_compare_curves_is_tidy_and_measures_against_the_first(curves: dict) -> None:
    frame = compare_curves(curves)
    assert frame.columns[0] == "scenario"
    assert frame["scenario"].tolist() == ["nation rule"] * 5 + ["no nation rule"] * 5
    assert frame["level"].tolist() == list(LEVELS) * 2
    change = frame.set_index(["scenario", "level"])["total_change"]
    # level 3: Eastwick's ICT joins Brackwell across the border, care moves to Fallow
    assert change[("no nation rule", 3)] == pytest.approx(459194.0 - 467146.0)
    assert change[("no nation rule", 4)] == pytest.approx(0.0)
    assert (change["nation rule"].dropna() == 0).all()
    assert math.isnan(change[("no nation rule", 2)])  # infeasible in both: no total
    pct = frame.set_index(["scenario", "level"])["total_change_pct"]
    assert pct[("no nation rule", 3)] == pytest.approx(-100 * 7952 / 467146)


def test_compare_curves_takes_frames_read_back_from_run_folders(curves: dict) -> None:
    folder = curves["no nation rule"].folder
    assert isinstance(folder, Path)
    from_csv = pd.read_csv(folder / "curve.csv")
    mixed = compare_curves({"on": curves["nation rule"], "off (csv)": from_csv})
    same = compare_curves({"on": curves["nation rule"], "off": curves["no nation rule"]})
    assert mixed["total_change"].tolist() == pytest.approx(
        same["total_change"].tolist(), nan_ok=True
    )


def test_compare_curves_aligns_levels_missing_from_the_baseline(curves: dict) -> None:
    short = curves["nation rule"].to_frame().query("level in (6, 3)")
    frame = compare_curves({"short": short, "full": curves["no nation rule"]})
    change = frame.set_index(["scenario", "level"])["total_change"]
    assert math.isnan(change[("full", 5)])
    assert change[("full", 3)] == pytest.approx(-7952.0)


def test_compare_curves_refuses_nothing_and_frames_without_totals() -> None:
    with pytest.raises(ValueError, match="at least one"):
        compare_curves({})
    with pytest.raises(ValueError, match=r"'bad'.*\['total'\]"):
        compare_curves({"bad": pd.DataFrame({"level": [3]})})


def test_plot_comparison_draws_one_line_per_scenario(curves: dict) -> None:
    frame = compare_curves(curves)
    ax = plot_comparison(frame)
    assert [line.get_label() for line in ax.get_lines()] == ["nation rule", "no nation rule"]
    assert ax.get_ylabel() == "total cost, GBP k/yr"
    assert ax.get_xscale() == "log"
    low, high = ax.get_xlim()
    assert low > high  # the status quo on the left
    y = ax.get_lines()[1].get_ydata()
    assert y[3] == pytest.approx(459.194)
    assert np.isnan(y[4])  # the infeasible level is a gap
    pct = plot_comparison(frame, y="savings_pct")
    assert pct.get_ylabel() == "savings against the status quo, %"


def test_grouping_diff_lists_the_rows_that_moved(toy: optimizer.Instance, curves: dict) -> None:
    on = curves["nation rule"].groupings[3]
    off = curves["no nation rule"].groupings[3]
    moved = grouping_diff(on, off)
    assert list(moved.columns) == DIFF_COLUMNS
    assert moved.values.tolist() == [
        ["s1", "care", "s1", "s2"],
        ["s1", "ict", "s1", "a2"],
        ["s2", "care", "s1", "s2"],
    ]
    named = grouping_diff(on, off, toy)
    assert named["body_name"].tolist() == ["Eastwick", "Eastwick", "Fallow"]
    assert named["site_name_b"].tolist() == ["Fallow", "Brackwell", "Fallow"]
    assert grouping_diff(on, on).empty


def test_grouping_diff_shows_rows_present_on_one_side_only(curves: dict) -> None:
    on = curves["nation rule"].groupings[3]
    moved = grouping_diff(on, on.iloc[1:])
    assert len(moved) == 1
    assert moved.loc[0, "site_id_a"] == on.iloc[0]["site_id"]
    assert pd.isna(moved.loc[0, "site_id_b"])


def test_scaled_multiplies_every_category(toy: optimizer.Instance) -> None:
    model = toy.model
    assert scaled(model) == model
    varied = scaled(
        model, radius=2.0, discounts=0.5, desk_cost=3.0, distance_cost=0.0, agency_fixed_cost=2.0
    )
    care, ict = varied.categories["care"], varied.categories["ict"]
    assert care.radius_km == 24.0 and ict.radius_km is None
    assert [b.rate for b in care.bands] == [0.0, 0.05]
    assert [(b.lower, b.upper) for b in ict.bands] == [
        (b.lower, b.upper) for b in model.categories["ict"].bands
    ]
    assert (care.desk_cost, ict.desk_cost) == (3000.0, 6000.0)
    assert care.distance_cost == 0.0
    assert varied.scenario.agency_fixed_cost == 10000.0
    assert varied.scenario.same_nation == model.scenario.same_nation
