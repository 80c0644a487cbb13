"""Hypothesis strategies: tiny datasets in the public data contract, with their model.

A :class:`Tiny` holds the text of every file of a dataset folder
(``bodies.csv``, ``spend.csv``, an optional ``sites.csv``, ``model.toml``) and
the sites a run forces open or closed (``--keep-open``, ``--keep-closed``). It
is loaded the way a user's folder is (:func:`optimizer.load_instance`), and
:meth:`Tiny.describe` prints those files, so a failing example can be written
out and run through the command line as it is.

:func:`tiny_datasets` draws 3 to 7 bodies in one or two nations and 1 to 3
categories, with: bodies with no spend at all and bodies with none in some
categories (a zero row or no row); radii; one to three discount bands; both
scenario switches (``same_nation``, ``split_categories``); and one of three
site layouts:

* ``bodies``: no ``sites.csv``, every body is a candidate site;
* ``hosted``: a ``sites.csv`` where every body hosts a site (under its own id
  or another), plus up to two separate sites, with blank or own fixed costs,
  capacities and statuses (``candidate``, blank, ``open``, ``closed``);
* ``separate``: some bodies host a site, the rest of the sites host none (the
  status quo is then undefined when a body with spend hosts none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from optimizer import Instance, load_instance, load_model

NATIONS = ("north", "south")
LAYOUTS = ("bodies", "hosted", "separate")
RATES = (0.0, 0.02, 0.05, 0.1, 0.2)
STATUSES = ("candidate", "candidate", "candidate", "", "open", "closed")


@dataclass(frozen=True)
class Tiny:
    """A tiny dataset folder's files and the sites a run forces open or closed."""

    layout: str
    files: dict[str, str]
    keep_open: tuple[str, ...] = ()
    keep_closed: tuple[str, ...] = ()
    site_ids: tuple[str, ...] = field(default=(), repr=False)
    hosts_everyone: bool = True  # every body with spend hosts a site (the status quo exists)

    def write(self, folder: Path) -> Path:
        """Write the files into ``folder`` (made if absent); return ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in self.files.items():
            (folder / name).write_text(text, encoding="utf-8")
        return folder

    def load(self, folder: Path) -> Instance:
        """Write the files into ``folder`` and load them as a user's dataset is loaded."""
        self.write(folder)
        return load_instance(folder, load_model(folder / "model.toml"), name="tiny")

    def describe(self) -> str:
        """Every file and the forced sites, ready to paste into a folder."""
        parts = [f"layout {self.layout}"]
        parts += [f"--- {name}\n{text}" for name, text in self.files.items()]
        parts.append(f"--keep-open {','.join(self.keep_open)}")
        parts.append(f"--keep-closed {','.join(self.keep_closed)}")
        return "\n".join(parts)


def _csv(header: str, rows: list[list[object]]) -> str:
    return "\n".join([header, *(",".join(_cell(v) for v in row) for row in rows)]) + "\n"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@st.composite
def _bands(draw: st.DrawFn) -> list[tuple[float, float, float]]:
    """One to three marginal bands: from 0, no gaps, the last to inf, rates never falling."""
    n = draw(st.integers(1, 3))
    cuts = sorted(draw(st.sets(st.integers(1, 12), min_size=n - 1, max_size=n - 1)))
    edges = [0.0, *(50_000.0 * c for c in cuts), math.inf]
    rates = sorted(draw(st.lists(st.sampled_from(RATES), min_size=n, max_size=n)))
    return [(edges[i], edges[i + 1], rates[i]) for i in range(n)]


def _model_toml(scenario: dict[str, Any], categories: dict[str, dict[str, Any]]) -> str:
    lines = ["[scenario]"]
    lines += [f"{k} = {str(v).lower() if isinstance(v, bool) else v}" for k, v in scenario.items()]
    for name, spec in categories.items():
        lines += ["", f"[categories.{name}]"]
        lines += [f"desk_cost = {spec['desk_cost']}", f"distance_cost = {spec['distance_cost']}"]
        if spec["radius_km"] is not None:
            lines.append(f"radius_km = {spec['radius_km']}")
        bands = ", ".join(f"[{lo:g}, {hi:g}, {r:g}]" for lo, hi, r in spec["bands"])
        lines.append(f"bands = [{bands}]")
    return "\n".join(lines) + "\n"


@st.composite
def _model(draw: st.DrawFn, n_categories: int) -> tuple[str, list[str]]:
    scenario = {
        "agency_fixed_cost": draw(st.sampled_from([0, 5_000, 20_000, 60_000])),
        "same_nation": draw(st.booleans()),
        "split_categories": draw(st.booleans()),
    }
    names = [f"c{i}" for i in range(n_categories)]
    categories = {
        name: {
            "desk_cost": draw(st.sampled_from([0, 1_000, 5_000, 20_000])),
            "distance_cost": draw(st.sampled_from([0, 50, 400])),
            "radius_km": draw(st.one_of(st.none(), st.integers(10, 120))),
            "bands": draw(_bands()),
        }
        for name in names
    }
    return _model_toml(scenario, categories), names


@st.composite
def _spend(draw: st.DrawFn, ids: list[str], categories: list[str]) -> tuple[str, set[str]]:
    """``spend.csv``: some bodies buy nothing, others skip some categories; who buys."""
    rows: list[list[object]] = []
    buyers = set()
    idle = set(draw(st.lists(st.sampled_from(ids), max_size=2)))  # zero spend everywhere
    if draw(st.integers(0, 24)) == 13:  # no body buys anything (hypothesis favours 0: not 0)
        idle = set(ids)
    for b in ids:
        for c in categories:
            kind = "zero" if b in idle else draw(st.sampled_from(["buys", "buys", "buys", "zero"]))
            if kind == "buys":
                rows.append([b, c, draw(st.integers(10, 400)) * 1_000])
                buyers.add(b)
            elif draw(st.booleans()):  # a zero row, or no row at all
                rows.append([b, c, 0])
    return _csv("body_id,category,spend", rows), buyers


@st.composite
def _sites(
    draw: st.DrawFn, layout: str, bodies: list[list[object]], total: float
) -> tuple[list[list[object]], set[str]]:
    """Rows of ``sites.csv`` for ``layout``, and the bodies hosting a site."""
    rows: list[list[object]] = []
    hosts = set()
    ids = [str(b[0]) for b in bodies]
    hosting = ids if layout == "hosted" else draw(st.lists(st.sampled_from(ids), unique=True))
    for n, (b, _, nation, x, y) in enumerate(bodies):
        if b not in hosting:
            continue
        own_id = draw(st.booleans())
        site = b if own_id else f"h{n}"
        if not own_id and draw(st.integers(0, 4)) == 0:  # a host in another nation
            nation = NATIONS[1 - NATIONS.index(str(nation))]
        rows.append([site, f"Site {site}", nation, x, y, *draw(_site_extras(total)), b])
        hosts.add(str(b))
    extra = draw(st.integers(0, 2) if layout == "hosted" else st.integers(1, 3))
    for n in range(extra):
        nation = draw(st.sampled_from(NATIONS))
        x, y = draw(st.integers(0, 60)), draw(st.integers(0, 60))
        rows.append([f"s{n}", f"Separate {n}", nation, x, y, *draw(_site_extras(total)), ""])
    return rows, hosts


@st.composite
def _site_extras(draw: st.DrawFn, total: float) -> list[object]:
    """``fixed_cost``, ``capacity`` and ``status`` of one site (blank cells allowed)."""
    fixed = draw(st.one_of(st.none(), st.sampled_from([0, 3_000, 15_000, 50_000])))
    capacity = None
    if draw(st.integers(0, 3)) == 0:
        capacity = round(total * draw(st.sampled_from([0.0, 0.2, 0.4, 0.7, 1.0])))
    return [fixed, capacity, draw(st.sampled_from(STATUSES))]


@st.composite
def tiny_datasets(draw: st.DrawFn, layouts: tuple[str, ...] = LAYOUTS) -> Tiny:
    """A random tiny dataset (see the module's docstring) and the sites a run forces."""
    n = draw(st.integers(3, 7))
    ids = [f"b{i}" for i in range(n)]
    bodies: list[list[object]] = [
        [
            b,
            f"Body {b}",
            draw(st.sampled_from(NATIONS[: draw(st.integers(1, 2))])),
            draw(st.integers(0, 60)),
            draw(st.integers(0, 60)),
        ]
        for b in ids
    ]
    model, categories = draw(_model(draw(st.integers(1, 3))))
    spend, buyers = draw(_spend(ids, categories))
    files = {
        "bodies.csv": _csv("body_id,name,nation,x_km,y_km", bodies),
        "spend.csv": spend,
        "model.toml": model,
    }
    layout = draw(st.sampled_from(layouts))
    if layout == "bodies":
        site_ids, statuses, hosts = ids, ["candidate"] * n, set(ids)
    else:
        total = float(sum(int(r.split(",")[2]) for r in spend.splitlines()[1:]))
        rows, hosts = draw(_sites(layout, bodies, total))
        header = "site_id,name,nation,x_km,y_km,fixed_cost,capacity,status,body_id"
        files["sites.csv"] = _csv(header, rows)
        site_ids, statuses = [str(r[0]) for r in rows], [str(r[7]) for r in rows]
    free = [s for s, status in zip(site_ids, statuses, strict=True) if status in ("", "candidate")]
    forced = draw(st.lists(st.sampled_from(free), unique=True, max_size=2)) if free else []
    split = draw(st.integers(0, len(forced)))
    return Tiny(
        layout,
        files,
        keep_open=tuple(forced[:split]),
        keep_closed=tuple(forced[split:]),
        site_ids=tuple(site_ids),
        hosts_everyone=buyers <= hosts,
    )
