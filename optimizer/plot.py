"""Plots of a run: the consolidation curve, the cost breakdown and a map.

Every function draws on the matplotlib ``Axes`` it is given, or on a new
standalone figure (Agg canvas, never registered with pyplot, so nothing
leaks into pyplot's global state), and returns the ``Axes``: in a notebook
``plot_curve(frame).figure`` shows it. :func:`save` writes PNG, SVG or PDF
atomically. Maps are drawn from the coordinates alone: no map tiles, no
network access.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from pathlib import Path

import matplotlib as mpl
import networkx as nx
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullFormatter

from optimizer.curve import EMPTY
from optimizer.errors import DataValidationError
from optimizer.instance import Instance
from optimizer.run import atomic_path

TERM_COLOURS = {
    "agencies": "#4c72b0",
    "desks": "#8172b3",
    "distance": "#dd8452",
    "discounts": "#55a868",
}
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
)
FORMATS = ("png", "svg", "pdf")
LABELLED = 60  # agencies are named on maps with at most this many


def new_axes(width: float = 8.0, height: float = 5.0) -> Axes:
    """A fresh Axes on a standalone Agg figure (not known to pyplot)."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure.add_subplot()


def money_unit(largest: float) -> tuple[float, str]:
    """A scale and label for GBP amounts up to ``largest``.

    Examples
    --------
    >>> money_unit(5e10)
    (1000000000.0, 'GBP bn')
    """
    for scale, label in ((1e9, "GBP bn"), (1e6, "GBP m"), (1e3, "GBP k")):
        if abs(largest) >= 10 * scale:
            return scale, label
    return 1.0, "GBP"


def _solved(frame: pd.DataFrame) -> pd.DataFrame:
    rows = frame[~frame["status"].isin(EMPTY) & frame["total"].notna()]
    return rows.sort_values("level", ascending=False).reset_index(drop=True)


def _status_quo(rows: pd.DataFrame) -> float:
    return float((rows["total"] + rows["savings"]).iloc[0])


def _level_axis(ax: Axes, levels: list[int]) -> None:
    """Levels on a log scale, most agencies on the left, each level ticked."""
    ax.set_xscale("log")
    low, high = min(levels), max(levels)
    ax.set_xlim(high * 1.15, low / 1.15)
    shown = levels if len(levels) <= 16 else sorted(set(np.geomspace(low, high, 12).round()))
    ax.set_xticks([float(k) for k in shown])
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("number of purchasers (agencies)")


def plot_curve(curve_frame: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """The consolidation curve: total cost against the number of purchasers.

    The proven lower bound is drawn under each level's total (the shaded gap
    is what the solver could not rule out); the right axis reads the same
    points as savings against the status quo; the recommended level (lowest
    total, ties to fewer agencies) is marked, and the band within 1% of it shaded.

    Examples
    --------
    >>> import optimizer
    >>> from optimizer.curve import CurveOptions, consolidation_curve
    >>> frame = consolidation_curve(optimizer.load("toy"), CurveOptions((6, 4, 3))).to_frame()
    >>> plot_curve(frame).get_ylabel()
    'total cost, GBP k/yr'
    """
    ax = ax if ax is not None else new_axes()
    rows = _solved(curve_frame)
    if rows.empty:
        raise DataValidationError(["(curve.csv) | no level has a grouping to plot"])
    quo = _status_quo(rows)
    scale, unit = money_unit(quo)
    levels = rows["level"].astype(float).to_numpy()
    total = rows["total"].to_numpy(dtype=float) / scale
    bound = rows["lower_bound"].to_numpy(dtype=float) / scale
    best = rows.sort_values(["total", "level"]).iloc[0]
    ax.axhspan(best["total"] / scale, best["total"] * 1.01 / scale, color="#55a868", alpha=0.12)
    proven = np.isfinite(bound)
    ax.fill_between(levels, np.where(proven, bound, total), total, color="#4c72b0", alpha=0.15)
    ax.plot(levels[proven], bound[proven], "v--", color="#4c72b0", ms=4, lw=1, alpha=0.8)
    ax.plot(levels, total, "o-", color="#1b3a6b", ms=5, lw=2)
    ax.plot([best["level"]], [best["total"] / scale], "*", color="#c44e52", ms=16, zorder=5)
    ax.annotate(
        f"recommended: {int(best['level'])} agencies\nsaves {_money(quo - best['total'])}/yr"
        f" ({100 * (quo - best['total']) / quo:.1f}%)",
        (best["level"], best["total"] / scale),
        xytext=(0, 28),
        textcoords="offset points",
        ha="center",
        fontsize=9,
        arrowprops={"arrowstyle": "-", "color": "#c44e52", "lw": 0.8},
    )
    _level_axis(ax, [int(k) for k in curve_frame["level"]])
    ax.set_ylabel(f"total cost, {unit}/yr")
    _margin(ax, np.concatenate([total, bound[proven]]))
    flip = (lambda t: quo / scale - t, lambda s: quo / scale - s)
    right = ax.secondary_yaxis("right", functions=flip)
    right.set_ylabel(f"savings against the status quo, {unit}/yr")
    ax.legend(handles=_curve_legend(), loc="upper right", fontsize=8, frameon=False)
    _note_missing(ax, curve_frame)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title("The consolidation curve", loc="left", fontweight="bold")
    return ax


def _margin(ax: Axes, values: np.ndarray) -> None:
    low, high = float(values.min()), float(values.max())
    pad = (high - low) * 0.18 or abs(high) * 0.01 or 1.0
    ax.set_ylim(low - pad, high + pad * 1.6)


def _curve_legend() -> list[Line2D | Patch]:
    return [
        Line2D([], [], marker="o", color="#1b3a6b", lw=2, label="total cost of the best grouping"),
        Line2D([], [], marker="v", ls="--", color="#4c72b0", lw=1, label="proven lower bound"),
        Patch(color="#55a868", alpha=0.25, label="within 1% of the lowest total"),
    ]


def _note_missing(ax: Axes, frame: pd.DataFrame) -> None:
    missing = frame[frame["status"].isin(EMPTY) | frame["total"].isna()]
    if missing.empty:
        return
    pairs = zip(missing["level"], missing["status"], strict=True)
    text = ", ".join(f"{int(level)} ({status})" for level, status in pairs)
    ax.text(0.01, 0.01, f"no grouping at: {text}", transform=ax.transAxes, fontsize=7, va="bottom")


def _money(value: float) -> str:
    """GBP with a readable unit.

    Examples
    --------
    >>> _money(1_825_680_748.6)
    'GBP 1.83bn'
    """
    for scale, suffix in ((1e9, "bn"), (1e6, "m"), (1e3, "k")):
        if abs(value) >= scale:
            return f"GBP {value / scale:,.{2 if scale == 1e9 else 1}f}{suffix}"
    return f"GBP {value:,.0f}"


def plot_breakdown(curve_frame: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """What changes with consolidation: the cost terms by level, stacked.

    The spend itself is bought at every level, so the bars show what is paid
    on top of it: agencies, desks and distance stacked upwards, the volume
    discounts downwards, and their sum (total minus spend) marked.

    Examples
    --------
    >>> import optimizer
    >>> from optimizer.curve import CurveOptions, consolidation_curve
    >>> frame = consolidation_curve(optimizer.load("toy"), CurveOptions((6, 4, 3))).to_frame()
    >>> [t.get_text() for t in plot_breakdown(frame).get_xticklabels()]
    ['6', '4', '3']
    """
    ax = ax if ax is not None else new_axes()
    rows = _solved(curve_frame)
    if rows.empty:
        raise DataValidationError(["(curve.csv) | no level has a grouping to plot"])
    spend = float((rows["purchases"] + rows["discounts"]).iloc[0])
    terms = rows[["agencies", "desks", "distance"]].to_numpy(dtype=float)
    discounts = rows["discounts"].to_numpy(dtype=float)
    scale, unit = money_unit(max(terms.sum(axis=1).max(), discounts.max()))
    x = np.arange(len(rows))
    base = np.zeros(len(rows))
    for i, term in enumerate(("agencies", "desks", "distance")):
        ax.bar(x, terms[:, i] / scale, 0.7, bottom=base, color=TERM_COLOURS[term], label=term)
        base += terms[:, i] / scale
    ax.bar(x, -discounts / scale, 0.7, color=TERM_COLOURS["discounts"], label="volume discounts")
    net = (rows["total"].to_numpy(dtype=float) - spend) / scale
    ax.plot(x, net, "D-", color="black", ms=5, lw=1.2, label="net: total minus spend")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, [str(int(k)) for k in rows["level"]])
    ax.set_xlabel("number of purchasers (agencies)")
    ax.set_ylabel(f"{unit}/yr on top of the spend")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    high = max(float(base.max()), float(net.max()), 0.0)
    low = min(float(-discounts.max()) / scale, float(net.min()), 0.0)
    pad = (high - low) * 0.08 or 1.0
    ax.set_ylim(low - pad, high + 3 * pad)  # room for the legend above the bars
    ax.legend(loc="upper right", fontsize=8, frameon=False, ncols=2)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(
        f"Where the money goes (spend of {_money(spend)}/yr, the same at every level, not drawn)",
        loc="left",
        fontweight="bold",
        fontsize=10,
    )
    return ax


# -------------------------------------------------------------------------- map


def main_agency(instance: Instance, groupings: pd.DataFrame) -> pd.Series:
    """Each body's main agency: the one buying most of its spend.

    Examples
    --------
    >>> import optimizer
    >>> inst = optimizer.load("toy")
    >>> main_agency(inst, inst.spend.assign(site_id="a2"))["a1"]
    'a2'
    """
    spend = instance.spend.set_index(["body_id", "category"])["spend"]
    rows = groupings[["body_id", "category", "site_id"]].astype(str)
    rows = rows.join(spend, on=["body_id", "category"], how="inner")
    per = rows.groupby(["body_id", "site_id"])["spend"].sum().reset_index()
    top = per.sort_values(["spend", "site_id"], ascending=[False, True]).drop_duplicates("body_id")
    return top.set_index("body_id")["site_id"].sort_index()


def agency_colours(sites: pd.DataFrame, neighbours: int = 6) -> dict[str, str]:
    """Colours so that agencies near each other differ (greedy graph colouring).

    Parameters
    ----------
    sites : DataFrame
        ``x_km, y_km`` indexed by site id.
    neighbours : int
        Each agency must differ from this many of its nearest agencies.
    """
    ids = list(sites.index)
    xy = sites[["x_km", "y_km"]].to_numpy(dtype=float)
    graph = nx.Graph()
    graph.add_nodes_from(ids)
    if len(ids) > 1:
        dist = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
        near = np.argsort(dist, axis=1)[:, 1 : neighbours + 1]
        graph.add_edges_from((ids[i], ids[j]) for i, row in enumerate(near) for j in row)
    colour = nx.greedy_color(graph, strategy="largest_first")
    return {site: PALETTE[colour[site] % len(PALETTE)] for site in ids}


def plot_map(
    instance: Instance,
    groupings: pd.DataFrame,
    ax: Axes | None = None,
    category: str | None = None,
    open_sites: Iterable[str] = (),
) -> Axes:
    """A map of a grouping, drawn from the bodies' and sites' coordinates.

    Each body is a dot coloured by its agency (its main agency, the one
    buying most of its spend, or the agency of ``category``) and joined to
    it by a line; agencies are squares edged in black, with ``open_sites``
    (open although no row names them: forced open, or open for no one)
    among them on a map of every category; the network is drawn
    faintly behind. Nearby agencies get different colours. The artists carry
    the gids ``network``, ``members``, ``bodies`` and ``agencies`` (kept as
    group ids in SVG output).

    Examples
    --------
    >>> import optimizer
    >>> inst = optimizer.load("toy")
    >>> plot_map(inst, inst.spend.assign(site_id=inst.spend["body_id"])).get_title(loc="left")
    '6 agencies, 6 bodies'
    """
    ax = ax if ax is not None else new_axes(7.0, 9.0)
    rows = groupings[["body_id", "category", "site_id"]].astype(str)
    if category is not None:
        if category not in instance.categories:
            raise DataValidationError([f"(--category) | unknown category {category!r}"])
        rows = rows[rows["category"] == category]
        agency = rows.set_index("body_id")["site_id"]
    else:
        agency = main_agency(instance, rows)
    shown = set(rows["site_id"]) | (set(map(str, open_sites)) if category is None else set())
    sites = instance.sites.loc[sorted(shown)]
    colours = agency_colours(sites)
    _network(ax, instance)
    _member_lines(ax, instance, agency, colours)
    _points(ax, instance.bodies.loc[agency.index], [colours[a] for a in agency], sites, colours)
    if len(sites) <= LABELLED:
        _labels(ax, sites)
    title = f"{len(sites)} agencies, {len(agency)} bodies"
    _map_frame(ax, instance, f"{category}: {title}" if category is not None else title)
    what = f"{category} only" if category is not None else "each body joined to its main agency"
    _map_legend(ax, what)
    return ax


def _points(
    ax: Axes, bodies: pd.DataFrame, dots: list[str], sites: pd.DataFrame, colours: dict[str, str]
) -> None:
    """Bodies as dots, agencies as black-edged squares, sized for how many there are."""
    size = float(np.clip(3000 / max(len(bodies), 1), 6, 40))
    ax.scatter(bodies["x_km"], bodies["y_km"], s=size, c=dots, lw=0, zorder=3, gid="bodies")
    square = float(np.clip(4000 / max(len(sites), 1), 12, 70))
    ax.scatter(
        sites["x_km"],
        sites["y_km"],
        s=square,
        marker="s",
        c=[colours[s] for s in sites.index],
        edgecolors="black",
        linewidths=0.7,
        zorder=4,
        gid="agencies",
    )


def _network(ax: Axes, instance: Instance) -> None:
    nodes = pd.concat([instance.bodies[["x_km", "y_km"]], instance.sites[["x_km", "y_km"]]])
    nodes = nodes[~nodes.index.duplicated()]
    xy = nodes.to_numpy(dtype=float)
    ends = [
        nodes.index.get_indexer(pd.Index(instance.edges[c].astype(str)))
        for c in ("source", "target")
    ]
    segments = np.stack([xy[ends[0]], xy[ends[1]]], axis=1)
    network = LineCollection(list(segments), colors="#d0d0d0", linewidths=0.4, zorder=1)
    network.set_gid("network")
    ax.add_collection(network)


def _member_lines(ax: Axes, instance: Instance, agency: pd.Series, colours: dict[str, str]) -> None:
    body = instance.bodies.loc[agency.index, ["x_km", "y_km"]].to_numpy(dtype=float)
    site = instance.sites.loc[agency.to_numpy(), ["x_km", "y_km"]].to_numpy(dtype=float)
    segments = np.stack([body, site], axis=1)
    lines = LineCollection(
        list(segments), colors=[colours[a] for a in agency], linewidths=0.8, alpha=0.7, zorder=2
    )
    lines.set_gid("members")
    ax.add_collection(lines)


def _labels(ax: Axes, sites: pd.DataFrame) -> None:
    for name, x, y in zip(sites["name"], sites["x_km"], sites["y_km"], strict=True):
        ax.annotate(
            str(name),
            (float(x), float(y)),
            xytext=(4, 3),
            textcoords="offset points",
            fontsize=5.5,
            zorder=5,
            bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7},
        )


def _map_frame(ax: Axes, instance: Instance, title: str) -> None:
    xy = pd.concat([instance.bodies[["x_km", "y_km"]], instance.sites[["x_km", "y_km"]]])
    low, high = xy.min().to_numpy(dtype=float), xy.max().to_numpy(dtype=float)
    pad = max(float((high - low).max()) * 0.04, 1.0)
    ax.set_xlim(low[0] - pad, high[0] + pad)
    ax.set_ylim(low[1] - 2.5 * pad, high[1] + pad)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("#bbbbbb")
    _scale_bar(ax, float((high - low).max()))
    ax.set_title(title, loc="left", fontweight="bold")


def _map_legend(ax: Axes, what: str) -> None:
    ax.legend(
        handles=[
            Line2D([], [], marker="o", lw=0, color="#555555", ms=4, label="body"),
            Line2D([], [], marker="s", lw=0, mfc="#aaaaaa", mec="black", ms=7, label="agency"),
            Line2D([], [], color="#555555", lw=0.8, label=what),
            Line2D([], [], color="#d0d0d0", lw=0.8, label="network"),
        ],
        loc="best",
        fontsize=7,
        frameon=True,
        framealpha=0.85,
    )


def _scale_bar(ax: Axes, extent: float) -> None:
    length = _round_length(extent / 5)
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    right, bottom = x1 - (x1 - x0) * 0.04, y0 + (y1 - y0) * 0.015
    ax.plot([right - length, right], [bottom, bottom], color="black", lw=2, zorder=6)
    label = f"{length:g} km"
    ax.text(right - length / 2, bottom, label, ha="center", va="bottom", fontsize=7, zorder=6)


def _round_length(value: float) -> float:
    """The largest 1, 2 or 5 times a power of ten not above ``value``.

    Examples
    --------
    >>> _round_length(137.0)
    100.0
    """
    power = 10 ** math.floor(math.log10(max(value, 1e-9)))
    return max(m * power for m in (1.0, 2.0, 5.0) if m * power <= value)


# -------------------------------------------------------------------- saving


def figure_bytes(ax: Axes, fmt: str, dpi: int = 150) -> bytes:
    """The figure holding ``ax`` rendered as ``png``, ``svg`` or ``pdf``."""
    buffer = io.BytesIO()
    with mpl.rc_context({"svg.hashsalt": "consolidate", "svg.fonttype": "path"}):
        _root(ax).savefig(buffer, format=fmt, dpi=dpi, metadata=_metadata(fmt), bbox_inches="tight")
    return buffer.getvalue()


def _root(ax: Axes) -> Figure:
    figure = ax.get_figure(root=True)
    if not isinstance(figure, Figure):
        raise ValueError("the Axes belongs to no figure")
    return figure


def _metadata(fmt: str) -> dict[str, str | None]:
    """Leave out creation dates so the same run gives the same files."""
    if fmt == "svg":
        return {"Date": None}
    if fmt == "pdf":
        return {"CreationDate": None}
    return {}


def save(ax: Axes, path: Path) -> None:
    """Write the figure holding ``ax`` atomically, as the suffix says (png, svg, pdf)."""
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise DataValidationError(
            [f"(-o) | the file must end in .png, .svg or .pdf, got {path.name!r}"]
        )
    data = figure_bytes(ax, fmt)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
