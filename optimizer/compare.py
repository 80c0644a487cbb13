"""Scenarios side by side: curves in one tidy table and one plot, and what moved.

A scenario is a model: change a rule or an assumption with
:meth:`Model.with_scenario`, :meth:`Model.with_category` or :func:`scaled`,
sweep each with :func:`optimizer.consolidation_curve`, then compare.

Examples
--------
>>> import optimizer
>>> inst = optimizer.load("toy")
>>> opts = optimizer.CurveOptions(levels=(5, 4, 3))
>>> free = inst.with_model(inst.model.with_scenario(same_nation=False))
>>> frame = compare_curves({
...     "nation rule": optimizer.consolidation_curve(inst, opts),
...     "no nation rule": optimizer.consolidation_curve(free, opts),
... })
>>> frame.loc[frame["level"] == 3, ["scenario", "total", "total_change"]]
         scenario     total  total_change
2     nation rule  467146.0           0.0
5  no nation rule  459194.0       -7952.0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from optimizer.curve import Curve
from optimizer.evaluate import GROUPING_COLUMNS
from optimizer.instance import Instance
from optimizer.model import Band, Model

if TYPE_CHECKING:
    from matplotlib.axes import Axes

DIFF_COLUMNS = ["body_id", "category", "site_id_a", "site_id_b"]
LABELS = {
    "total": "total cost",
    "savings": "savings against the status quo",
    "savings_pct": "savings against the status quo, %",
    "total_change": "total minus the first scenario's",
    "total_change_pct": "total minus the first scenario's, %",
}
UNITLESS = ("savings_pct", "total_change_pct", "gap", "seconds", "level")


def scaled(
    model: Model,
    *,
    radius: float = 1.0,
    discounts: float = 1.0,
    desk_cost: float = 1.0,
    distance_cost: float = 1.0,
    agency_fixed_cost: float = 1.0,
) -> Model:
    """Return a copy of ``model`` with assumptions multiplied in every category.

    Parameters
    ----------
    model : Model
        The model to vary.
    radius : float
        Factor on every ``radius_km`` (unlimited radii stay unlimited).
    discounts : float
        Factor on every band's discount rate (0.5 halves every discount).
    desk_cost, distance_cost, agency_fixed_cost : float
        Factors on those costs.

    Returns
    -------
    Model
        Validated like any model: a factor that pushes a rate to 1 or more is
        a :class:`~optimizer.errors.DataValidationError`.

    Examples
    --------
    >>> import optimizer
    >>> half = scaled(optimizer.load("toy").model, radius=2.0, discounts=0.5)
    >>> half.categories["care"].radius_km, [b.rate for b in half.categories["ict"].bands]
    (24.0, [0.0, 0.1])
    """
    categories = {
        name: replace(
            cat,
            radius_km=None if cat.radius_km is None else cat.radius_km * radius,
            bands=tuple(Band(b.lower, b.upper, b.rate * discounts) for b in cat.bands),
            desk_cost=cat.desk_cost * desk_cost,
            distance_cost=cat.distance_cost * distance_cost,
        )
        for name, cat in model.categories.items()
    }
    fixed = model.scenario.agency_fixed_cost * agency_fixed_cost
    return replace(model, categories=categories).with_scenario(agency_fixed_cost=fixed)


def compare_curves(curves: Mapping[str, Curve | pd.DataFrame]) -> pd.DataFrame:
    """Stack consolidation curves into one tidy table, one row per scenario and level.

    Parameters
    ----------
    curves : mapping of str to Curve or DataFrame
        Scenario name to a :class:`~optimizer.curve.Curve` or its
        ``to_frame()`` (or a ``curve.csv`` read with pandas). The first is
        the baseline.

    Returns
    -------
    DataFrame
        ``scenario`` then the curve's columns (``level, total, ...,
        status``), plus ``total_change``: the total minus the baseline's at
        the same level (NaN where either has no grouping), and
        ``total_change_pct`` in per cent of the baseline's. Scenarios keep
        their order, levels run from most agencies to fewest.

    Raises
    ------
    ValueError
        When no curve is given or a frame lacks ``level`` or ``total``.
    """
    if not curves:
        raise ValueError("compare_curves needs at least one curve")
    frames = []
    for name, curve in curves.items():
        frame = curve.to_frame() if isinstance(curve, Curve) else curve.copy()
        missing = [c for c in ("level", "total") if c not in frame.columns]
        if missing:
            raise ValueError(f"curve {name!r} lacks the columns {missing}")
        frame = frame.sort_values("level", ascending=False)
        frames.append(frame.assign(scenario=name))
    table = pd.concat(frames, ignore_index=True)
    base = frames[0].drop_duplicates("level").set_index("level")["total"]
    baseline = table["level"].map(base)
    table["total_change"] = table["total"] - baseline
    table["total_change_pct"] = 100.0 * table["total_change"] / baseline
    return table[["scenario", *[c for c in table.columns if c != "scenario"]]]


def plot_comparison(frame: pd.DataFrame, ax: Axes | None = None, y: str = "total") -> Axes:
    """Plot one line per scenario of :func:`compare_curves`' table against the level.

    Parameters
    ----------
    frame : DataFrame
        From :func:`compare_curves`.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when omitted.
    y : str
        The column to plot: ``total`` (default), ``savings``,
        ``savings_pct``, ``total_change`` or any other cost column.

    Returns
    -------
    matplotlib Axes
        Levels run from the status quo on the left to the fewest agencies on
        the right, on a log scale; levels without a grouping are gaps. In a
        notebook, ``plot_comparison(frame).figure`` shows it.

    Examples
    --------
    >>> frame = pd.DataFrame({"scenario": ["a", "a", "b", "b"], "level": [6, 3, 6, 3],
    ...                       "total": [506e3, 467e3, 506e3, 459e3]})
    >>> plot_comparison(frame).get_ylabel()
    'total cost, GBP k/yr'
    """
    from optimizer.plot import money_unit, new_axes

    ax = ax if ax is not None else new_axes(8.0, 4.5)
    money = y not in UNITLESS
    scale, unit = money_unit(float(frame[y].abs().max())) if money else (1.0, "")
    for name, rows in frame.groupby("scenario", sort=False):
        rows = rows.sort_values("level", ascending=False)
        ax.plot(rows["level"], rows[y] / scale, marker="o", ms=4, label=str(name))
    levels = sorted({int(k) for k in frame["level"]})
    shown = levels
    if len(levels) > 16:
        shown = sorted({round(v) for v in np.geomspace(levels[0], levels[-1], 12)})
    ax.set_xscale("log")
    ax.set_xticks([float(k) for k in shown], [str(k) for k in shown])
    ax.minorticks_off()
    ax.set_xlim(max(levels) * 1.1, min(levels) / 1.1)
    ax.set_xlabel("number of purchasers (agencies)")
    label = LABELS.get(y, y)
    ax.set_ylabel(f"{label}, {unit}/yr" if money else label)
    ax.set_title(f"{label[0].upper()}{label[1:]}, by scenario", loc="left", fontweight="bold")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return ax


def grouping_diff(
    a: pd.DataFrame, b: pd.DataFrame, instance: Instance | None = None
) -> pd.DataFrame:
    """The (body, category) rows whose agency differs between two groupings.

    Parameters
    ----------
    a, b : DataFrame
        Groupings ``body_id, category, site_id`` (e.g. two scenarios' at the
        same level, or one scenario's at two levels).
    instance : Instance, optional
        When given, ``body_name``, ``site_name_a`` and ``site_name_b`` are added.

    Returns
    -------
    DataFrame
        ``body_id, category, site_id_a, site_id_b``, sorted by body and
        category; a row present in one grouping only has NaN on the other side.

    Examples
    --------
    >>> import optimizer
    >>> inst = optimizer.load("toy")
    >>> on = optimizer.solve_level(inst, 3).groupings
    >>> free = inst.with_model(inst.model.with_scenario(same_nation=False))
    >>> off = optimizer.solve_level(free, 3).groupings
    >>> grouping_diff(on, off, inst)[["body_name", "category", "site_name_a", "site_name_b"]]
      body_name category site_name_a site_name_b
    0  Eastwick     care    Eastwick      Fallow
    1  Eastwick      ict    Eastwick   Brackwell
    2    Fallow     care    Eastwick      Fallow
    """
    keys = ["body_id", "category"]
    left = a[GROUPING_COLUMNS].astype(str)
    right = b[GROUPING_COLUMNS].astype(str)
    both = left.merge(right, on=keys, how="outer", suffixes=("_a", "_b"))
    moved = both[both["site_id_a"].ne(both["site_id_b"])]
    moved = moved.sort_values(keys).reset_index(drop=True)[DIFF_COLUMNS]
    if instance is None:
        return moved
    names = instance.sites["name"]
    return moved.assign(
        body_name=moved["body_id"].map(instance.bodies["name"]),
        site_name_a=moved["site_id_a"].map(names),
        site_name_b=moved["site_id_b"].map(names),
    )
