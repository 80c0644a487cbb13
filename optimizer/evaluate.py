"""The reference evaluator: check a grouping against MODEL.md and cost it.

This module is the independent check of everything the solver says. It
reads only the instance (tables, model, distances) and a grouping table
``body_id, category, site_id``; it shares no code with the MIP builder.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from optimizer.instance import Instance

COST_TERMS = ("agencies", "desks", "purchases", "distance")
GROUPING_COLUMNS = ["body_id", "category", "site_id"]


@dataclass(frozen=True)
class Violation:
    """A broken rule and the grouping rows (or ids) concerned."""

    rule: str
    message: str
    rows: tuple[str, ...] = ()

    def __str__(self) -> str:
        more = f", ... ({len(self.rows)} in all)" if len(self.rows) > 10 else ""
        shown = ", ".join(self.rows[:10]) + more
        return f"{self.rule}: {self.message}" + (f" [{shown}]" if shown else "")


@dataclass(frozen=True)
class Evaluation:
    """The cost breakdown of a grouping, or the rules it breaks.

    Attributes
    ----------
    breakdown : dict
        ``agencies, desks, purchases, savings, distance, total`` in GBP/yr;
        ``savings`` is the volume discount, already netted in ``purchases``.
    level : int
        The number of open agencies.
    open_sites : list of str
    violations : list of Violation
        Empty when every rule holds.
    volumes : DataFrame
        ``site_id, category, volume, saving, band`` per open (agency, category).
    groupings : DataFrame
        The grouping evaluated, ``body_id, category, site_id``.

    """

    breakdown: dict[str, float]
    level: int
    open_sites: list[str]
    violations: list[Violation] = field(default_factory=list)
    volumes: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    groupings: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def to_frame(self) -> pd.DataFrame:
        """The evaluation as one row named like ``curve.csv``'s columns.

        ``discounts`` is the breakdown's ``savings`` (the volume discount).

        Examples
        --------
        >>> import optimizer
        >>> inst = optimizer.load("toy")
        >>> alone = evaluate(inst, inst.spend.assign(site_id=inst.spend["body_id"]))
        >>> alone.to_frame()[["level", "total", "discounts", "feasible"]]
           level     total  discounts  feasible
        0      6  506000.0        0.0      True
        """
        b = self.breakdown
        row = {"level": self.level, "total": b["total"], **{t: b[t] for t in COST_TERMS}}
        row.update(discounts=b["savings"], feasible=self.feasible, violations=len(self.violations))
        return pd.DataFrame([row])

    def plot(self, instance: Instance, ax: Any = None) -> Any:
        """Map the grouping on ``instance`` (:func:`optimizer.plot.plot_map`); return the Axes."""
        from optimizer.plot import plot_map

        return plot_map(instance, self.groupings, ax, open_sites=self.open_sites)

    @property
    def feasible(self) -> bool:
        """Whether every rule of MODEL.md holds."""
        return not self.violations

    @property
    def total(self) -> float:
        """The total annual cost, GBP."""
        return self.breakdown["total"]


def status_open(instance: Instance) -> list[str]:
    """The sites whose ``sites.csv`` status is ``open``: open at every level and today.

    A groupings file names only the agencies that buy for someone, so
    whatever re-costs one (the status quo, ``evaluate``, a run folder)
    opens these too.
    """
    status = instance.sites["status"]
    return [str(s) for s in status.index[status == "open"]]


def evaluate(
    instance: Instance, groupings: pd.DataFrame, open_sites: Iterable[str] = ()
) -> Evaluation:
    """Check every rule of MODEL.md and compute the cost breakdown.

    Parameters
    ----------
    instance : Instance
        The validated data, model and distances.
    groupings : DataFrame
        ``body_id, category, site_id``: one row per (body, category) with spend.
    open_sites : iterable of str, optional
        Sites open although no row uses them (they still cost their fixed cost).

    Returns
    -------
    Evaluation
        Costs are computed for the rows that can be costed even when rules
        are broken; check ``feasible`` before trusting them.

    """
    table = _clean(groupings)
    violations = _contract(instance, table)
    extra = {str(site) for site in open_sites}
    unknown = sorted(extra - set(instance.sites.index))
    if unknown:
        violations.append(Violation("contract", "unknown site id in open_sites", tuple(unknown)))
    known = table[_known_mask(instance, table)].drop_duplicates(["body_id", "category"])
    merged = _merge(instance, known)
    opened = sorted(set(merged["site_id"]) | (extra - set(unknown)))
    violations += _rules(instance, merged, opened)
    volumes = _volumes(instance, merged)
    breakdown = _breakdown(instance, merged, volumes, opened)
    grouping = table[GROUPING_COLUMNS]
    return Evaluation(breakdown, len(opened), opened, violations, volumes, grouping)


def _clean(groupings: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in GROUPING_COLUMNS if c not in groupings.columns]
    if missing:
        raise ValueError(f"groupings lack columns {missing}")
    table = groupings[GROUPING_COLUMNS].astype(str).reset_index(drop=True)
    table["row"] = [f"row {i + 2}" for i in range(len(table))]
    return table


def _known_mask(instance: Instance, table: pd.DataFrame) -> pd.Series:
    return (
        table["body_id"].isin(instance.bodies.index)
        & table["category"].isin(instance.categories)
        & table["site_id"].isin(instance.sites.index)
    )


def _contract(instance: Instance, table: pd.DataFrame) -> list[Violation]:
    out: list[Violation] = []
    for column, known, what in (
        ("body_id", instance.bodies.index, "body"),
        ("category", pd.Index(instance.categories), "category"),
        ("site_id", instance.sites.index, "site"),
    ):
        bad = table[~table[column].isin(known)]
        if len(bad):
            rows = tuple(bad["row"] + ": " + bad[column])
            out.append(Violation("contract", f"unknown {what} id", rows))
    dup = table[table.duplicated(["body_id", "category"], keep="first")]
    if len(dup):
        message = "more than one row for a body and category"
        out.append(Violation("contract", message, tuple(dup["row"])))
    need = instance.spend[["body_id", "category"]]
    keys = pd.MultiIndex.from_frame(table[["body_id", "category"]])
    wanted = pd.MultiIndex.from_frame(need)
    absent = wanted[~wanted.isin(keys)]
    if len(absent):
        out.append(
            Violation(
                "contract",
                "body and category with spend but no agency",
                tuple(f"{b}/{c}" for b, c in absent),
            )
        )
    extra = table[~keys.isin(wanted) & _known_mask(instance, table).to_numpy()]
    if len(extra):
        message = "row for a body and category with no spend"
        out.append(Violation("contract", message, tuple(extra["row"])))
    return out


def _merge(instance: Instance, table: pd.DataFrame) -> pd.DataFrame:
    spend = instance.spend.set_index(["body_id", "category"])["spend"]
    merged = table.join(spend, on=["body_id", "category"], how="inner")
    body_pos = instance.bodies.index.get_indexer(pd.Index(merged["body_id"]))
    site_pos = instance.sites.index.get_indexer(pd.Index(merged["site_id"]))
    merged["km"] = instance.distances[body_pos, site_pos]
    merged["body_nation"] = instance.bodies["nation"].to_numpy()[body_pos]
    merged["site_nation"] = instance.sites["nation"].to_numpy()[site_pos]
    return merged.reset_index(drop=True)


def _rules(instance: Instance, merged: pd.DataFrame, opened: list[str]) -> list[Violation]:
    checks = (_host, _radius, _nation, _capacity, _whole_body, _status)
    return [v for check in checks for v in check(instance, merged, opened)]


def _host(instance: Instance, merged: pd.DataFrame, opened: list[str]) -> list[Violation]:
    hosts = instance.sites.loc[opened, "body_id"]
    hosts = hosts[hosts != ""]
    rows = merged[merged["body_id"].isin(hosts)]
    own = set(zip(hosts.to_numpy(), hosts.index, strict=True))  # (body, open site it hosts)
    bad = rows[[pair not in own for pair in zip(rows["body_id"], rows["site_id"], strict=True)]]
    if len(bad) == 0:
        return []
    return [
        Violation(
            "rule 1 (host)",
            "a body hosting an open agency buys elsewhere",
            tuple(bad["row"] + ": " + bad["body_id"] + "/" + bad["category"]),
        )
    ]


def _radius(instance: Instance, merged: pd.DataFrame, opened: list[str]) -> list[Violation]:
    radius = merged["category"].map(lambda c: instance.model.categories[c].radius_km)
    limit = radius.astype(float).fillna(np.inf)
    bad = merged[~(merged["km"] <= limit + 1e-9)]
    if len(bad) == 0:
        return []
    shown = (f"{row}: {km:.1f} km" for row, km in zip(bad["row"], bad["km"], strict=True))
    return [Violation("rule 2 (radius)", "agency beyond the category's radius_km", tuple(shown))]


def _nation(instance: Instance, merged: pd.DataFrame, opened: list[str]) -> list[Violation]:
    if not instance.model.scenario.same_nation:
        return []
    bad = merged[merged["body_nation"] != merged["site_nation"]]
    if len(bad) == 0:
        return []
    return [Violation("rule 3 (nation)", "agency in another nation", tuple(bad["row"]))]


def _capacity(instance: Instance, merged: pd.DataFrame, opened: list[str]) -> list[Violation]:
    load = merged.groupby("site_id")["spend"].sum()
    cap = instance.sites["capacity"].reindex(load.index)
    over = load[cap.notna() & (load > cap * (1 + 1e-9) + 1e-6)]
    if len(over) == 0:
        return []
    limits = cap.reindex(over.index).to_numpy()
    shown = (f"{s}: {v:,.0f} > {c:,.0f}" for s, v, c in zip(over.index, over, limits, strict=True))
    return [Violation("rule 4 (capacity)", "agency buys more than its capacity", tuple(shown))]


def _whole_body(instance: Instance, merged: pd.DataFrame, opened: list[str]) -> list[Violation]:
    if instance.model.scenario.split_categories:
        return []
    agencies = merged.groupby("body_id")["site_id"].nunique()
    split = agencies[agencies > 1]
    if len(split) == 0:
        return []
    return [Violation("rule 5 (whole body)", "body split across agencies", tuple(split.index))]


def _status(instance: Instance, merged: pd.DataFrame, opened: list[str]) -> list[Violation]:
    status = instance.sites["status"]
    out = []
    closed = sorted(set(opened) & set(status.index[status == "closed"]))
    if closed:
        out.append(Violation("status", "site with status 'closed' is open", tuple(closed)))
    shut = sorted(set(status.index[status == "open"]) - set(opened))
    if shut:
        out.append(Violation("status", "site with status 'open' is not open", tuple(shut)))
    return out


def _volumes(instance: Instance, merged: pd.DataFrame) -> pd.DataFrame:
    grouped = merged.groupby(["site_id", "category"], sort=True)["spend"]
    volumes = grouped.sum().rename("volume").reset_index()
    cats = instance.model.categories
    pairs = list(zip(volumes["category"], volumes["volume"], strict=True))
    volumes["saving"] = [cats[c].saving(v) for c, v in pairs]
    volumes["band"] = [1 + sum(v > b.lower for b in cats[c].bands[1:]) for c, v in pairs]
    return volumes


def _breakdown(
    instance: Instance, merged: pd.DataFrame, volumes: pd.DataFrame, opened: list[str]
) -> dict[str, float]:
    cats = instance.model.categories
    fixed = instance.fixed_costs[instance.sites.index.get_indexer(pd.Index(opened))]
    rate = merged["category"].map(lambda c: cats[c].distance_cost).astype(float)
    buying = volumes.loc[volumes["volume"] > 0, "category"]
    out = {
        "agencies": float(fixed.sum()),
        "desks": float(sum(cats[c].desk_cost for c in buying)),
        "purchases": float((volumes["volume"] - volumes["saving"]).sum()),
        "savings": float(volumes["saving"].sum()),
        "distance": float((rate * merged["spend"] / 1e6 * merged["km"]).sum()),
    }
    out["total"] = sum(out[t] for t in COST_TERMS)
    return out
