"""Plots: the curve, the breakdown and the map draw what the run holds."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from conftest import THREE_AGENCIES, CliRunner
from matplotlib.axes import Axes
from matplotlib.collections import Collection
from PIL import Image

import optimizer
from optimizer.curve import status_quo_groupings
from optimizer.errors import DataValidationError
from optimizer.plot import (
    agency_colours,
    new_axes,
    plot_breakdown,
    plot_curve,
    plot_map,
    save,
)
from optimizer.run import open_run


def _curve(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "curve.csv")


def _by_gid(ax: Axes, gid: str) -> Collection:
    return next(c for c in ax.collections if c.get_gid() == gid)


def test_curve_draws_totals_bounds_and_savings_axis(toy_run: Path) -> None:
    frame = _curve(toy_run)
    ax = new_axes()
    assert plot_curve(frame, ax) is ax
    solved = frame[frame["status"] == "optimal"].sort_values("level", ascending=False)
    totals = next(line for line in ax.get_lines() if line.get_marker() == "o")
    bounds = next(line for line in ax.get_lines() if line.get_marker() == "v")
    assert list(totals.get_xdata()) == list(solved["level"])
    assert np.allclose(totals.get_ydata(), solved["total"] / 1e3)  # GBP k for the toy
    assert np.allclose(bounds.get_ydata(), solved["lower_bound"] / 1e3)
    assert ax.get_ylabel() == "total cost, GBP k/yr"
    right = [child for child in ax.child_axes if "savings" in child.get_ylabel()]
    assert len(right) == 1
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "recommended: 3 agencies" in texts and "2 (infeasible)" in texts


def test_breakdown_stacks_every_term(toy_run: Path) -> None:
    frame = _curve(toy_run)
    ax = plot_breakdown(frame)
    solved = frame[frame["status"] == "optimal"].sort_values("level", ascending=False)
    bars = {container.get_label(): container for container in ax.containers}
    assert set(bars) == {"agencies", "desks", "distance", "volume discounts"}
    for term in ("agencies", "desks", "distance"):
        heights = [patch.get_height() for patch in bars[term]]
        assert np.allclose(heights, solved[term] / 1e3), term
    discounts = [patch.get_height() for patch in bars["volume discounts"]]
    assert np.allclose(discounts, -solved["discounts"] / 1e3)
    net = next(line for line in ax.get_lines() if line.get_marker() == "D")
    spend = optimizer.load("toy").spend["spend"].sum()
    assert np.allclose(net.get_ydata(), (solved["total"] - spend) / 1e3)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["6", "5", "4", "3"]


def test_map_draws_bodies_agencies_and_lines(alone_grouping: pd.DataFrame) -> None:
    inst = optimizer.load("toy")
    grouping = alone_grouping.assign(site_id=alone_grouping["body_id"].map(THREE_AGENCIES))
    ax = plot_map(inst, grouping)
    bodies = _by_gid(ax, "bodies").get_offsets()
    agencies = _by_gid(ax, "agencies").get_offsets()
    assert len(bodies) == 6
    assert sorted(map(tuple, np.asarray(agencies))) == [(0.0, -40.0), (10.0, 0.0), (10.0, 15.0)]
    members = _by_gid(ax, "members").get_segments()
    assert len(members) == 6
    a1 = next(seg for seg in members if tuple(seg[0]) == (0.0, 0.0))
    assert tuple(a1[1]) == (10.0, 0.0)  # a1 joined to a2
    assert len(_by_gid(ax, "network").get_segments()) == len(inst.edges)
    assert ax.get_title(loc="left") == "3 agencies, 6 bodies"
    ict = plot_map(inst, grouping, category="ict")
    assert len(_by_gid(ict, "bodies").get_offsets()) == 5  # s2 buys no ict
    assert ict.get_title(loc="left") == "ict: 3 agencies, 5 bodies"
    with pytest.raises(DataValidationError, match="unknown category 'food'"):
        plot_map(inst, grouping, category="food")


def test_uk_map_has_every_council() -> None:
    inst = optimizer.load("uk-councils")
    ax = plot_map(inst, status_quo_groupings(inst))
    assert len(_by_gid(ax, "bodies").get_offsets()) == 382
    assert len(_by_gid(ax, "agencies").get_offsets()) == 382
    assert ax.get_aspect() == 1.0


def test_neighbouring_agencies_differ_in_colour() -> None:
    grid = [(x * 10.0, y * 10.0) for x in range(6) for y in range(6)]
    sites = pd.DataFrame(grid, columns=["x_km", "y_km"], index=[f"s{i}" for i in range(36)])
    colours = agency_colours(sites, neighbours=4)
    for site, (x, y) in sites.iterrows():
        for dx, dy in ((10, 0), (0, 10)):
            other = sites[(sites["x_km"] == x + dx) & (sites["y_km"] == y + dy)]
            if len(other):
                assert colours[site] != colours[other.index[0]], (site, other.index[0])


def test_plots_leave_pyplot_alone(toy_run: Path, tmp_path: Path) -> None:
    before = plt.get_fignums()
    run = open_run(toy_run)
    save(plot_curve(run.curve), tmp_path / "c.png")
    save(plot_breakdown(run.curve), tmp_path / "b.svg")
    save(plot_map(run.instance, run.groupings(3)), tmp_path / "m.pdf")
    assert plt.get_fignums() == before
    assert (tmp_path / "m.pdf").read_bytes().startswith(b"%PDF")
    with pytest.raises(DataValidationError, match=r"must end in \.png, \.svg or \.pdf"):
        save(plot_curve(run.curve), tmp_path / "c.gif")


def test_cli_writes_png_and_svg(toy_run: Path, tmp_path: Path, cli: CliRunner) -> None:
    png = tmp_path / "curve.png"
    code, _, err = cli("plot", toy_run, "--kind", "curve", "-o", png)
    assert code == 0, err
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] > 600
    svg = tmp_path / "map.svg"
    code, _, err = cli("plot", toy_run, "--kind", "map", "--level", 4, "-o", svg)
    assert code == 0, err
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    gids = {element.get("id") for element in root.iter()}
    assert {"bodies", "agencies", "members", "network"} <= gids
