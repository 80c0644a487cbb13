"""A level's grouping with names, places and the cost to serve every row.

:func:`detail_frame` turns a grouping into one row per (body, category) with
the names, the network km, the spend, the band the agency reached and the
row's share of every cost term. The shares add up exactly to the level's
breakdown (``curve.csv``, :func:`optimizer.evaluate`):

* ``agencies``: an agency's fixed cost is shared among all its rows, pro
  rata to spend;
* ``desks``: the desk cost of an (agency, category) is shared among that
  agency's rows of the category, pro rata to spend;
* ``purchases`` and ``discounts``: the agency's purchase cost of the
  category ``V - saving(V)`` and its discount ``saving(V)`` (marginal
  bands) are shared pro rata to spend, so every row pays the agency's
  average rate;
* ``distance``: exactly the row's own distance cost.

An agency forced open with no members (``--keep-open``) has no rows, so its
fixed cost appears in the level's breakdown only.

Writers for CSV, Excel (xlsx), GeoJSON and Parquet follow; each writes
atomically (a temporary file in the target folder, then a rename).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from optimizer.errors import DataValidationError
from optimizer.evaluate import COST_TERMS, Evaluation, evaluate
from optimizer.instance import Instance
from optimizer.results import atomic_write_text
from optimizer.run import Run, atomic_path
from optimizer.schema import EARTH_RADIUS_KM

DETAIL_COLUMNS = [
    "body_id",
    "body_name",
    "nation",
    "tier",
    "category",
    "site_id",
    "agency_name",
    "km",
    "spend",
    "volume",
    "band",
    "band_rate",
    "agencies",
    "desks",
    "purchases",
    "discounts",
    "distance",
    "total",
]
FORMATS = ("csv", "xlsx", "geojson", "parquet")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet cell a formula
# The grid of the shipped datasets given in x_km, y_km (datasets/*/README.md).
SHIPPED_GRIDS = {"uk-councils": "EPSG:27700"}


def detail_frame(
    instance: Instance, groupings: pd.DataFrame, evaluation: Evaluation | None = None
) -> pd.DataFrame:
    """One row per (body, category) with spend: names, km, band and cost shares.

    Parameters
    ----------
    instance : Instance
        The data and model the grouping belongs to.
    groupings : DataFrame
        ``body_id, category, site_id``; it must satisfy every rule.
    evaluation : Evaluation, optional
        ``evaluate(instance, groupings)``, when already computed.

    Returns
    -------
    DataFrame
        :data:`DETAIL_COLUMNS`, sorted by body and category; the cost columns
        add up to the level's breakdown (see the module's docstring).

    Examples
    --------
    >>> import optimizer
    >>> inst = optimizer.load("toy")
    >>> alone = inst.spend.assign(site_id=inst.spend["body_id"])
    >>> rows = detail_frame(inst, alone)
    >>> float(rows["total"].sum()) == optimizer.evaluate(inst, alone).total
    True
    """
    result = evaluation if evaluation is not None else evaluate(instance, groupings)
    if not result.feasible:
        raise DataValidationError([f"(groupings) | {v}" for v in result.violations])
    rows = _located(instance, groupings)
    volumes = result.volumes.set_index(["site_id", "category"])
    keys = pd.MultiIndex.from_frame(rows[["site_id", "category"]])
    rows["volume"] = volumes["volume"].reindex(keys).to_numpy()
    saving = volumes["saving"].reindex(keys).to_numpy()
    rows["band"] = volumes["band"].reindex(keys).to_numpy().astype(int)
    cats = instance.model.categories
    rows["band_rate"] = [
        cats[c].bands[b - 1].rate for c, b in zip(rows["category"], rows["band"], strict=True)
    ]
    share = rows["spend"] / rows["volume"]
    fixed = pd.Series(instance.fixed_costs, index=instance.sites.index)
    site_spend = rows.groupby("site_id")["spend"].transform("sum")
    rows["agencies"] = rows["site_id"].map(fixed) * rows["spend"] / site_spend
    rows["desks"] = rows["category"].map(lambda c: cats[c].desk_cost) * share
    rows["purchases"] = (rows["volume"] - saving) * share
    rows["discounts"] = saving * share
    rate = rows["category"].map(lambda c: cats[c].distance_cost).astype(float)
    rows["distance"] = rate * rows["spend"] / 1e6 * rows["km"]
    rows["total"] = rows[list(COST_TERMS)].sum(axis=1)
    return rows[DETAIL_COLUMNS].sort_values(["body_id", "category"]).reset_index(drop=True)


def _located(instance: Instance, groupings: pd.DataFrame) -> pd.DataFrame:
    """The grouping's rows with spend, names and network km."""
    spend = instance.spend.set_index(["body_id", "category"])["spend"]
    table = groupings[["body_id", "category", "site_id"]].astype(str)
    rows = table.join(spend, on=["body_id", "category"], how="inner").reset_index(drop=True)
    bodies, sites = instance.bodies, instance.sites
    body_pos = bodies.index.get_indexer(pd.Index(rows["body_id"]))
    site_pos = sites.index.get_indexer(pd.Index(rows["site_id"]))
    rows["km"] = instance.distances[body_pos, site_pos]
    rows["body_name"] = bodies["name"].to_numpy()[body_pos]
    rows["nation"] = bodies["nation"].to_numpy()[body_pos]
    tier = bodies["tier"] if "tier" in bodies.columns else pd.Series("", index=bodies.index)
    rows["tier"] = tier.fillna("").astype(str).to_numpy()[body_pos]
    rows["agency_name"] = sites["name"].to_numpy()[site_pos]
    return rows


def agency_frame(detail: pd.DataFrame) -> pd.DataFrame:
    """One row per agency: its members, spend bought per category and cost.

    Examples
    --------
    >>> import optimizer
    >>> inst = optimizer.load("toy")
    >>> alone = inst.spend.assign(site_id=inst.spend["body_id"])
    >>> agency_frame(detail_frame(inst, alone))[["site_id", "members"]].head(2).values.tolist()
    [['a1', 1], ['a2', 1]]
    """
    grouped = detail.groupby("site_id", sort=True)
    out = grouped.agg(
        agency_name=("agency_name", "first"),
        nation=("nation", "first"),
        members=("body_id", "nunique"),
        spend=("spend", "sum"),
        total=("total", "sum"),
    )
    by_category = detail.pivot_table(
        index="site_id", columns="category", values="spend", aggfunc="sum", fill_value=0.0
    )
    by_category.columns = [f"volume_{c}" for c in by_category.columns]
    names = grouped["body_name"].agg(lambda names: "; ".join(sorted(set(names))))
    out = out.join(by_category)
    out["member_names"] = names
    return out.reset_index()


# ------------------------------------------------------------------ coordinates


def lonlat(instance: Instance, crs: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Longitude and latitude (WGS84) of every body and site.

    Bodies given with ``lat,lon`` keep them (sites are projected back from
    the equirectangular km the loader made) and take no ``crs``. Bodies given
    with ``x_km,y_km`` need the grid's coordinate system: ``crs`` (an EPSG
    code such as ``EPSG:27700``, British National Grid), else the shipped
    dataset's own.

    Returns
    -------
    (DataFrame, DataFrame)
        ``lon, lat`` indexed like ``instance.bodies`` and ``instance.sites``.

    Raises
    ------
    DataValidationError
        For a plain ``x_km,y_km`` grid with no coordinate system, or a bad ``crs``.

    Examples
    --------
    >>> import optimizer
    >>> bodies, _ = lonlat(optimizer.load("toy"), "EPSG:27700")
    >>> [round(v, 2) for v in bodies.loc["a1"]]
    [-7.56, 49.77]
    """
    bodies, sites = instance.bodies, instance.sites
    if {"lat", "lon"} <= set(bodies.columns):
        if crs is not None:
            raise DataValidationError(
                ["(--crs) | bodies.csv gives lat,lon already: leave --crs out"]
            )
        lat0 = float(bodies["lat"].mean())
        return _frame(bodies["lon"], bodies["lat"]), _unproject(sites, lat0)
    grid = crs or SHIPPED_GRIDS.get(instance.name)
    if grid is None:
        raise DataValidationError(
            [
                f"(bodies.csv, column 'x_km') | {instance.name} gives x_km,y_km on a grid"
                " with no stated coordinate system, so longitude and latitude are unknown;"
                " pass --crs with the grid's EPSG code (x_km,y_km are km of it, e.g."
                " EPSG:27700 for the British National Grid), or give lat,lon in bodies.csv"
            ]
        )
    to_wgs84 = _transformer(grid)
    return _grid(bodies, to_wgs84), _grid(sites, to_wgs84)


def _transformer(crs: str) -> Transformer:
    try:
        source = CRS.from_user_input(crs)
    except CRSError as err:
        raise DataValidationError([f"(--crs) | not a coordinate system: {err}"]) from None
    if not source.is_projected:
        raise DataValidationError(
            [f"(--crs) | {crs} is not a projected grid in metres; x_km,y_km need one"]
        )
    return Transformer.from_crs(source, "EPSG:4326", always_xy=True)


def _grid(frame: pd.DataFrame, to_wgs84: Transformer) -> pd.DataFrame:
    lon, lat = to_wgs84.transform(
        frame["x_km"].to_numpy(dtype=float) * 1000, frame["y_km"].to_numpy(dtype=float) * 1000
    )
    return _frame(pd.Series(lon, index=frame.index), pd.Series(lat, index=frame.index))


def _unproject(frame: pd.DataFrame, lat0: float) -> pd.DataFrame:
    """Invert :func:`optimizer.schema.project` about ``lat0``."""
    scale = EARTH_RADIUS_KM * math.pi / 180.0
    lat = frame["y_km"].astype(float) / scale
    lon = frame["x_km"].astype(float) / (scale * math.cos(math.radians(lat0)))
    return _frame(lon, lat)


def _frame(lon: pd.Series, lat: pd.Series) -> pd.DataFrame:
    out = pd.DataFrame({"lon": lon.astype(float), "lat": lat.astype(float)})
    if not np.isfinite(out.to_numpy()).all():
        raise DataValidationError(["(--crs) | some coordinates fall outside that grid"])
    return out


# ---------------------------------------------------------------------- writers


def export_level(
    run: Run, level: int, path: Path, fmt: str | None = None, crs: str | None = None
) -> pd.DataFrame:
    """Write one level of a run as CSV, xlsx, GeoJSON or Parquet; return its rows.

    Parameters
    ----------
    run : Run
        An opened run folder (:func:`optimizer.run.open_run`).
    level : int
        A level with a grouping in the run.
    path : Path
        The file to write.
    fmt : str, optional
        ``csv``, ``xlsx``, ``geojson`` or ``parquet``; default: from the suffix.
    crs : str, optional
        For GeoJSON from ``x_km,y_km`` data: the grid's EPSG code (see :func:`lonlat`).
    """
    kind = export_format(path, fmt)
    evaluation = run.evaluation(level)
    detail = detail_frame(run.instance, run.groupings(level), evaluation)
    writers: dict[str, Callable[[], None]] = {
        "csv": lambda: write_csv(detail, path),
        "parquet": lambda: write_parquet(detail, path),
        "geojson": lambda: write_geojson(detail, run.instance, path, crs),
        "xlsx": lambda: write_xlsx(
            detail, level_facts(run, level), summary_table(run, evaluation), path
        ),
    }
    writers[kind]()
    return detail


def export_format(path: Path, fmt: str | None) -> str:
    """The format asked for, else the one the file's suffix names.

    Examples
    --------
    >>> export_format(Path("level-50.xlsx"), None)
    'xlsx'
    """
    kind = (fmt or path.suffix.lstrip(".") or "csv").lower()
    kind = {"json": "geojson", "pq": "parquet"}.get(kind, kind)
    if kind not in FORMATS:
        raise DataValidationError(
            [f"(--format) | expected one of {', '.join(FORMATS)}, got {kind!r}"]
        )
    return kind


def write_csv(detail: pd.DataFrame, path: Path) -> None:
    """Write the rows as CSV (UTF-8, full precision), text cells made spreadsheet-safe.

    A text cell a spreadsheet would take for a formula (:func:`spreadsheet_text`)
    is written with a leading ``'``; numbers are written as they are.
    """
    safe = detail.copy()
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column]):
            safe[column] = safe[column].map(spreadsheet_text)
    atomic_write_text(path, safe.to_csv(index=False, lineterminator="\n"))


def spreadsheet_text(value: Any) -> Any:
    """A text value with a ``'`` put before a leading ``=``, ``+``, ``-``, ``@``, tab or CR.

    Spreadsheets run a cell that starts with one of these as a formula (CSV
    injection, OWASP); the quote makes it text. Anything but text is returned
    as it is.

    Examples
    --------
    >>> print(spreadsheet_text("=1+2"))
    '=1+2
    >>> spreadsheet_text("Alderley"), spreadsheet_text(-5.0)
    ('Alderley', -5.0)
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_parquet(detail: pd.DataFrame, path: Path) -> None:
    """Write the rows as Parquet (pyarrow)."""
    with atomic_path(path) as tmp:
        detail.to_parquet(tmp, index=False, engine="pyarrow")


def write_geojson(
    detail: pd.DataFrame, instance: Instance, path: Path, crs: str | None = None
) -> None:
    """Write a GeoJSON FeatureCollection (RFC 7946, longitude and latitude, WGS84).

    One Point feature per row at the body (``role: "member"``, every column of
    the rows as properties) and one per agency at its site (``role: "agency"``).
    """
    bodies, sites = lonlat(instance, crs)
    features = [
        _feature(bodies.loc[row["body_id"]], {"role": "member", **row}) for row in _records(detail)
    ]
    for row in _records(agency_frame(detail)):
        features.append(_feature(sites.loc[row["site_id"]], {"role": "agency", **row}))
    payload = {"type": "FeatureCollection", "features": features}
    atomic_write_text(path, json.dumps(payload, allow_nan=False, default=_plain) + "\n")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def _feature(point: pd.Series, properties: dict[str, Any]) -> dict[str, Any]:
    coordinates = [round(float(point["lon"]), 7), round(float(point["lat"]), 7)]
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": coordinates},
        "properties": properties,
    }


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def level_facts(run: Run, level: int) -> pd.DataFrame:
    """The headline of a level: ``item, value`` rows read from ``curve.csv``."""
    row = run.row(level)
    quo = run.status_quo_total
    items = {
        "dataset": run.instance.name,
        "level (agencies)": level,
        "bodies": len(run.instance.bodies),
        "status": str(row["status"]),
        "proven gap": float(row["gap"]),
        "lower bound GBP/yr": float(row["lower_bound"]),
        "status quo total GBP/yr": quo,
        "total GBP/yr": float(row["total"]),
        "savings GBP/yr": quo - float(row["total"]),
        "savings % of status quo": 100 * (quo - float(row["total"])) / quo if quo else math.nan,
    }
    values = [v if not isinstance(v, float) or math.isfinite(v) else str(v) for v in items.values()]
    return pd.DataFrame({"item": list(items), "value": values})


def summary_table(run: Run, evaluation: Evaluation) -> pd.DataFrame:
    """The level's breakdown beside the status quo's: ``term, status_quo, level, change``."""
    quo = run.status_quo().breakdown
    terms = [*COST_TERMS, "savings", "total"]
    labels = {"savings": "discounts (netted in purchases)"}
    here = evaluation.breakdown
    return pd.DataFrame(
        {
            "term": [labels.get(t, t) for t in terms],
            "status_quo": [quo[t] for t in terms],
            "level": [here[t] for t in terms],
            "change": [here[t] - quo[t] for t in terms],
        }
    )


def write_xlsx(
    detail: pd.DataFrame, facts: pd.DataFrame, breakdown: pd.DataFrame, path: Path
) -> None:
    """Write an Excel workbook: a summary, one sheet per category, and the agencies.

    The ``summary`` sheet holds the level's facts (:func:`level_facts`) and
    its breakdown beside the status quo's (:func:`summary_table`); each
    category's sheet holds its rows; ``agencies`` lists every agency with
    its members and the spend it buys in each category. Text is stored as
    text, never as a formula, whatever it starts with.
    """
    with atomic_path(path) as tmp, pd.ExcelWriter(tmp, engine="openpyxl") as book:
        facts.to_excel(book, sheet_name="summary", index=False)
        breakdown.to_excel(book, sheet_name="summary", index=False, startrow=len(facts) + 2)
        for name, rows in _category_sheets(detail):
            rows.to_excel(book, sheet_name=name, index=False)
        agency_frame(detail).to_excel(book, sheet_name="agencies", index=False)
        for sheet in book.sheets.values():
            _tidy(sheet)


def _category_sheets(detail: pd.DataFrame) -> Iterable[tuple[str, pd.DataFrame]]:
    used = {"summary", "agencies"}
    for category, rows in detail.groupby("category", sort=False):
        name = re.sub(r"[\[\]:*?/\\]", "_", str(category))[:31]
        while name.lower() in used:
            name = name[:28] + f"_{len(used)}"
        used.add(name.lower())
        yield name, rows.drop(columns="category")


def _as_text(sheet: Any) -> None:
    """Store every text cell as text: openpyxl makes a formula of text starting with ``=``.

    The cell keeps its text exactly and is marked as quoted (``quotePrefix``),
    so a spreadsheet neither runs it nor makes a formula of it when edited.
    """
    for row in sheet.iter_rows():
        for cell in row:
            if cell.data_type == "f" or (
                isinstance(cell.value, str) and cell.value.startswith(FORMULA_STARTS)
            ):
                cell.data_type = "s"
                cell.quotePrefix = True


def _tidy(sheet: Any) -> None:
    """Widen columns to their content, freeze the header, format numbers; text stays text."""
    _as_text(sheet)
    formats = {"km": "0.0", "band_rate": "0.0%", "value": "General"}
    for column in sheet.columns:
        header = str(column[0].value or "")
        width = max(len(str(cell.value or "")) for cell in column[:200])
        sheet.column_dimensions[column[0].column_letter].width = min(max(width, 8) + 2, 60)
        for cell in column[1:]:
            if isinstance(cell.value, float):
                cell.number_format = formats.get(header, "#,##0")
    sheet.freeze_panes = "A2"
