"""Read and validate a dataset folder and a model file.

Every problem in every file is collected and raised as one
:class:`~optimizer.errors.DataValidationError` whose lines say where:
``(spend.csv, row 17, column 'spend') | must be >= 0, got '-5'``. Rows are
numbered as a spreadsheet shows them (the header is row 1).
"""

from __future__ import annotations

import itertools
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from optimizer.errors import DataValidationError, where
from optimizer.model import Band, Category, Model, Scenario

SITE_STATUSES = ("candidate", "open", "closed")
EARTH_RADIUS_KM = 6371.0088
# The largest amount of money (GBP/yr) one number may hold: spend of a body in
# a category, a fixed, desk or capacity figure. GBP 10 trillion is several
# times any government's whole yearly spending; larger figures are typing
# slips, and past about 1e16 the solver's arithmetic breaks down.
MAX_MONEY = 1e13
# The largest distance_cost (GBP per GBP 1m of spend per km): at 1e6 a single
# km costs as much as the spend itself.
MAX_DISTANCE_COST = 1e6


@dataclass
class Problems:
    """An accumulator of validation messages."""

    lines: list[str] = field(default_factory=list)

    def add(self, file: str, row: int | None, column: str | None, message: str) -> None:
        """Record one problem at a place."""
        self.lines.append(f"{where(file, row, column)} | {message}")

    def raise_if_any(self) -> None:
        """Raise one error carrying every recorded problem."""
        if self.lines:
            raise DataValidationError(self.lines)


# --------------------------------------------------------------------------- model


_SCENARIO_KEYS = {"agency_fixed_cost", "same_nation", "split_categories", "description"}
_CATEGORY_KEYS = {"desk_cost", "distance_cost", "radius_km", "bands", "description"}
_TOP_KEYS = {"scenario", "categories", "spend_model"}


def load_model(path: Path | str) -> Model:
    """Read and validate a model TOML file.

    Parameters
    ----------
    path : path-like
        The TOML file.

    Returns
    -------
    Model

    Raises
    ------
    DataValidationError
        On a missing file, bad TOML, unknown keys or invalid values.

    """
    path = Path(path)
    name = path.name
    problems = Problems()
    raw = read_toml(path, "model")
    for key in sorted(set(raw) - _TOP_KEYS):
        problems.add(name, None, key, f"unknown key; expected one of {sorted(_TOP_KEYS)}")
    scenario = _scenario(raw.get("scenario", {}), name, problems)
    categories = _categories(raw.get("categories", {}), name, problems)
    problems.raise_if_any()
    extra = {"spend_model": raw["spend_model"]} if "spend_model" in raw else {}
    return Model(scenario=scenario, categories=categories, extra=extra)


def read_toml(path: Path, kind: str) -> dict[str, Any]:
    """Parse a TOML file; a missing, unreadable or malformed one is bad input naming it.

    ``kind`` names the file in messages: "model file not found", "cannot read the sweep file".
    """
    name = path.name
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataValidationError([f"({name}) | {kind} file not found: {path}"]) from None
    except OSError as err:
        raise DataValidationError([f"({name}) | cannot read the {kind} file: {err}"]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise DataValidationError([f"({name}) | not valid TOML: {err}"]) from None


def check_model(
    scenario: Any, categories: Any, source: str = "model"
) -> tuple[Scenario, dict[str, Category]]:
    """Validate a model built in code by the rules and messages of a model file.

    Parameters
    ----------
    scenario : Scenario or dict
        The scenario, or a table as in the TOML file.
    categories : mapping of str to Category or dict
        Keyed by category id; bands may be :class:`Band` objects or
        ``(lower, upper, rate)`` triples.
    source : str
        The name messages give as the file.

    Returns
    -------
    tuple of Scenario and dict
        Normalised copies: numbers as floats, bands as :class:`Band`, every
        category named by its key.

    Raises
    ------
    DataValidationError
        Listing every problem.

    Examples
    --------
    >>> _, cats = check_model(Scenario(), {"ict": Category(bands=((0, math.inf, 0),))})
    >>> cats["ict"].name
    'ict'
    """
    problems = Problems()
    raw = categories
    if isinstance(categories, Mapping):
        raw = {key: _raw_category(key, cat, source, problems) for key, cat in categories.items()}
    checked = _scenario(_raw(scenario), source, problems), _categories(raw, source, problems)
    problems.raise_if_any()
    return checked


def _raw(part: Any) -> Any:
    """A scenario or category as the table a TOML file would hold."""
    if not isinstance(part, Scenario | Category):
        return part
    table = {f.name: _plain(getattr(part, f.name)) for f in fields(part) if f.name != "name"}
    return {key: value for key, value in table.items() if value is not None}


def _raw_category(key: str, category: Any, source: str, problems: Problems) -> Any:
    if not isinstance(category, Category):
        return category
    if category.name and category.name != key:
        message = f"name {category.name!r} differs from its key {key!r}"
        problems.add(source, None, f"categories.{key}.name", message)
    table = _raw(category)
    bands = table.get("bands")
    if isinstance(bands, list | tuple):
        table["bands"] = [_triple(b) for b in bands]
    return table


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python one TOML would give."""
    return value.item() if isinstance(value, np.generic) else value


def _triple(band: Any) -> Any:
    """A band as the ``[lower, upper, rate]`` list TOML would give."""
    if isinstance(band, Band):
        return [band.lower, band.upper, band.rate]
    return [_plain(v) for v in band] if isinstance(band, list | tuple) else band


def _number(
    value: Any,
    name: str,
    key: str,
    problems: Problems,
    *,
    minimum: float = 0.0,
    maximum: float = MAX_MONEY,
    finite: bool = True,
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        problems.add(name, None, key, f"expected a number, got {value!r}")
        return 0.0
    if finite and math.isinf(value):
        problems.add(name, None, key, f"expected a finite number, got {value!r}")
        return 0.0
    if value < minimum:
        problems.add(name, None, key, f"must be >= {minimum:g}, got {value!r}")
    if finite and value > maximum:
        problems.add(name, None, key, f"must be <= {maximum:g}, got {value!r}")
    return float(value)


def _scenario(raw: Any, name: str, problems: Problems) -> Scenario:
    if not isinstance(raw, dict):
        problems.add(name, None, "scenario", "expected a table")
        return Scenario()
    for key in sorted(set(raw) - _SCENARIO_KEYS):
        expected = sorted(_SCENARIO_KEYS)
        problems.add(name, None, f"scenario.{key}", f"unknown key; expected {expected}")
    flags = {}
    for key in ("same_nation", "split_categories"):
        value = raw.get(key, True)
        if not isinstance(value, bool):
            problems.add(name, None, f"scenario.{key}", f"expected true or false, got {value!r}")
            value = True
        flags[key] = value
    fixed = _number(raw.get("agency_fixed_cost", 0.0), name, "scenario.agency_fixed_cost", problems)
    return Scenario(
        agency_fixed_cost=fixed,
        description=str(raw.get("description", "")),
        **flags,
    )


def _categories(raw: Any, name: str, problems: Problems) -> dict[str, Category]:
    if not isinstance(raw, dict) or not raw:
        problems.add(name, None, "categories", "expected at least one [categories.NAME] table")
        return {}
    return {cat: _category(cat, spec, name, problems) for cat, spec in raw.items()}


def _category(cat: str, spec: Any, name: str, problems: Problems) -> Category:
    prefix = f"categories.{cat}"
    if not isinstance(spec, dict):
        problems.add(name, None, prefix, "expected a table")
        return Category(cat)
    for key in sorted(set(spec) - _CATEGORY_KEYS):
        expected = sorted(_CATEGORY_KEYS)
        problems.add(name, None, f"{prefix}.{key}", f"unknown key; expected {expected}")
    radius = spec.get("radius_km")
    if radius is not None:
        radius = _number(radius, name, f"{prefix}.radius_km", problems, finite=False)
    bands = _bands(spec.get("bands", [[0, math.inf, 0.0]]), f"{prefix}.bands", name, problems)
    return Category(
        name=cat,
        desk_cost=_number(spec.get("desk_cost", 0.0), name, f"{prefix}.desk_cost", problems),
        distance_cost=_number(
            spec.get("distance_cost", 0.0),
            name,
            f"{prefix}.distance_cost",
            problems,
            maximum=MAX_DISTANCE_COST,
        ),
        radius_km=radius,
        bands=bands,
        description=str(spec.get("description", "")),
    )


def _bands(raw: Any, key: str, name: str, problems: Problems) -> tuple[Band, ...]:
    if not isinstance(raw, list) or not raw:
        problems.add(name, None, key, "expected a list of [lower, upper, rate] triples")
        return (Band(0.0, math.inf, 0.0),)
    bands: list[Band] = []
    for i, triple in enumerate(raw, start=1):
        ok = isinstance(triple, list) and len(triple) == 3
        if not ok or any(isinstance(v, bool) or not isinstance(v, int | float) for v in triple):
            message = f"expected [lower, upper, rate], got {triple!r}"
            problems.add(name, None, f"{key}[{i}]", message)
            continue
        bands.append(Band(float(triple[0]), float(triple[1]), float(triple[2])))
    if len(bands) == len(raw):
        _check_bands(bands, key, name, problems)
    return tuple(bands) or (Band(0.0, math.inf, 0.0),)


def _check_bands(bands: list[Band], key: str, name: str, problems: Problems) -> None:
    if not bands:
        return
    if bands[0].lower != 0:
        problems.add(name, None, f"{key}[1]", f"bands must start at 0, got {bands[0].lower:g}")
    if not math.isinf(bands[-1].upper):
        message = f"the last band must end at inf, got {bands[-1].upper:g}"
        problems.add(name, None, f"{key}[{len(bands)}]", message)
    for i, band in enumerate(bands, start=1):
        at = f"{key}[{i}]"
        if not band.upper > band.lower:
            problems.add(name, None, at, f"upper {band.upper:g} must exceed lower {band.lower:g}")
        if not 0 <= band.rate < 1:
            problems.add(name, None, at, f"rate must be in [0, 1), got {band.rate:g}")
    for i, (prev, band) in enumerate(itertools.pairwise(bands), start=2):
        at = f"{key}[{i}]"
        if band.lower < prev.upper:
            message = f"overlaps the band before: lower {band.lower:g} < {prev.upper:g}"
            problems.add(name, None, at, message)
        elif band.lower > prev.upper:
            problems.add(name, None, at, f"leaves a gap: lower {band.lower:g} > {prev.upper:g}")
        if band.rate < prev.rate:
            message = (
                f"rate {band.rate:g} falls below {prev.rate:g}; rates must not fall as volume rises"
            )
            problems.add(name, None, at, message)


# ------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Tables:
    """The validated tables of a dataset folder, before distances."""

    bodies: pd.DataFrame
    spend: pd.DataFrame
    sites: pd.DataFrame | None
    edges: pd.DataFrame | None


def read_csv(path: Path, problems: Problems) -> pd.DataFrame | None:
    """Read a CSV as text (no type guessing); record a problem if unreadable."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError:
        problems.add(path.name, None, None, f"file not found: {path}")
        return None
    except OSError as err:
        problems.add(path.name, None, None, f"cannot be opened: {err}")
        return None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        problems.add(path.name, None, None, f"cannot be read as CSV: {err}")
        return None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.apply(lambda s: s.str.strip())


def require_columns(frame: pd.DataFrame, file: str, columns: list[str], problems: Problems) -> bool:
    """Record each missing column; return whether all are present."""
    missing = [c for c in columns if c not in frame.columns]
    for column in missing:
        problems.add(file, None, column, f"missing column; found {list(frame.columns)}")
    return not missing


def _has_rows(frame: pd.DataFrame, file: str, problems: Problems) -> bool:
    """Record a file with a header but no rows; return whether it has rows."""
    if len(frame):
        return True
    problems.add(file, None, None, "has a header but no rows")
    return False


def numbers(
    frame: pd.DataFrame,
    file: str,
    column: str,
    problems: Problems,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    blank_ok: bool = False,
) -> pd.Series:
    """Parse a column as floats, recording each non-numeric or out-of-range value."""
    text = frame[column]
    values = pd.to_numeric(text, errors="coerce").astype(float)
    for i in np.flatnonzero(values.isna().to_numpy()):
        if blank_ok and text.iloc[i] == "":
            continue
        problems.add(file, int(i) + 2, column, f"expected a number, got {text.iloc[i]!r}")
    bad = values.notna() & ((values < low) | (values > high) | np.isinf(values))
    for i in np.flatnonzero(bad.to_numpy()):
        message = f"must be in [{low:g}, {high:g}], got {text.iloc[i]!r}"
        problems.add(file, int(i) + 2, column, message)
    return values


def unique_ids(frame: pd.DataFrame, file: str, column: str, problems: Problems) -> None:
    """Record blank and duplicate ids."""
    ids = frame[column]
    for i in np.flatnonzero((ids == "").to_numpy()):
        problems.add(file, int(i) + 2, column, "blank id")
    for i in np.flatnonzero(ids.duplicated().to_numpy() & (ids != "").to_numpy()):
        problems.add(file, int(i) + 2, column, f"duplicate id {ids.iloc[i]!r}")


def known_ids(
    frame: pd.DataFrame, file: str, column: str, known: pd.Index, what: str, problems: Problems
) -> None:
    """Record every value of ``column`` not in ``known``."""
    values = frame[column]
    for i in np.flatnonzero(~values.isin(known).to_numpy()):
        problems.add(file, int(i) + 2, column, f"unknown {what} {values.iloc[i]!r}")


def coordinates(
    frame: pd.DataFrame, file: str, problems: Problems
) -> tuple[str, pd.Series, pd.Series] | None:
    """Parse ``x_km,y_km`` or ``lat,lon``; return the system and the two columns."""
    if {"x_km", "y_km"} <= set(frame.columns):
        x = numbers(frame, file, "x_km", problems, low=-1e5, high=1e5)
        y = numbers(frame, file, "y_km", problems, low=-1e5, high=1e5)
        return "km", x, y
    if {"lat", "lon"} <= set(frame.columns):
        lat = numbers(frame, file, "lat", problems, low=-90, high=90)
        lon = numbers(frame, file, "lon", problems, low=-180, high=180)
        return "latlon", lat, lon
    problems.add(file, None, "x_km", "missing coordinates: give x_km,y_km or lat,lon")
    return None


def project(lat: pd.Series, lon: pd.Series, lat0: float) -> tuple[pd.Series, pd.Series]:
    """Equirectangular projection to km about the reference latitude ``lat0``.

    Examples
    --------
    >>> x, y = project(pd.Series([0.0]), pd.Series([1.0]), 0.0)
    >>> round(float(x.iloc[0]), 1)
    111.2

    """
    scale = EARTH_RADIUS_KM * math.pi / 180.0
    return lon * scale * math.cos(math.radians(lat0)), lat * scale


def _located(frame: pd.DataFrame, file: str, problems: Problems) -> tuple[str, pd.DataFrame]:
    found = coordinates(frame, file, problems)
    out = frame.copy()
    if found is None:
        return "km", out
    system, a, b = found
    if system == "km":
        out["x_km"], out["y_km"] = a, b
    else:
        out["lat"], out["lon"] = a, b
    return system, out


def read_bodies(folder: Path, problems: Problems) -> tuple[str, pd.DataFrame | None]:
    """Read ``bodies.csv``: ``body_id,name,nation``, a location and an optional ``population``."""
    frame = read_csv(folder / "bodies.csv", problems)
    columns = ["body_id", "name", "nation"]
    if frame is None or not require_columns(frame, "bodies.csv", columns, problems):
        return "km", None
    if not _has_rows(frame, "bodies.csv", problems):
        return "km", None
    unique_ids(frame, "bodies.csv", "body_id", problems)
    for i in np.flatnonzero((frame["nation"] == "").to_numpy()):
        problems.add("bodies.csv", int(i) + 2, "nation", "blank nation")
    _population(frame, problems)
    return _located(frame, "bodies.csv", problems)


def _population(frame: pd.DataFrame, problems: Problems) -> None:
    """Parse the optional ``population`` column in place: residents, finite and >= 0.

    The column is optional, but when it is present every row needs a value:
    a blank is an error, not "unknown".
    """
    if "population" not in frame.columns:
        return
    text = frame["population"]
    values = pd.to_numeric(text, errors="coerce").astype(float)
    bad = ~np.isfinite(values.to_numpy()) | (values.to_numpy() < 0)
    for i in np.flatnonzero(bad):
        message = f"expected a finite number >= 0 (residents), got {text.iloc[i]!r}"
        if text.iloc[i] == "":
            message = "blank population: when the column is present every row needs a value"
        problems.add("bodies.csv", int(i) + 2, "population", message)
    frame["population"] = values


def read_spend(
    folder: Path, bodies: pd.DataFrame | None, model: Model, problems: Problems
) -> pd.DataFrame | None:
    """Read ``spend.csv``: ``body_id,category,spend`` (GBP/yr, long format)."""
    file = "spend.csv"
    frame = read_csv(folder / file, problems)
    columns = ["body_id", "category", "spend"]
    if frame is None or not require_columns(frame, file, columns, problems):
        return None
    if not _has_rows(frame, file, problems):
        return None
    frame["spend"] = numbers(frame, file, "spend", problems, low=0.0, high=MAX_MONEY)
    if bodies is not None:
        known_ids(frame, file, "body_id", pd.Index(bodies["body_id"]), "body", problems)
    categories = pd.Index(list(model.categories))
    known_ids(frame, file, "category", categories, "category (not in the model)", problems)
    dup = frame.duplicated(["body_id", "category"]).to_numpy()
    for i in np.flatnonzero(dup):
        body, category = frame["body_id"].iloc[i], frame["category"].iloc[i]
        message = f"duplicate row for body {body!r} and category {category!r}"
        problems.add(file, int(i) + 2, "category", message)
    return frame


def read_sites(
    folder: Path, bodies: pd.DataFrame | None, problems: Problems
) -> tuple[str, pd.DataFrame | None]:
    """Read the optional ``sites.csv``; ``None`` when absent.

    A blank or absent ``fixed_cost`` is NaN: the model's ``agency_fixed_cost``.
    """
    file = "sites.csv"
    if not optional_file(folder / file, problems):
        return "km", None
    frame = read_csv(folder / file, problems)
    if frame is None or not require_columns(frame, file, ["site_id", "name", "nation"], problems):
        return "km", None
    unique_ids(frame, file, "site_id", problems)
    fixed = "fixed_cost" in frame.columns
    frame["fixed_cost"] = (
        numbers(frame, file, "fixed_cost", problems, low=0.0, high=MAX_MONEY, blank_ok=True)
        if fixed
        else np.nan
    )
    capacity = "capacity" in frame.columns
    frame["capacity"] = (
        numbers(frame, file, "capacity", problems, low=0.0, high=MAX_MONEY, blank_ok=True)
        if capacity
        else np.nan
    )
    _site_hosts(frame, bodies, problems)
    _site_status(frame, problems)
    system, located = _located(frame, file, problems)
    if not ({"x_km", "y_km"} <= set(frame.columns) or {"lat", "lon"} <= set(frame.columns)):
        return system, None  # no coordinates (recorded): nothing to compare with the bodies'
    return system, located


def _site_hosts(frame: pd.DataFrame, bodies: pd.DataFrame | None, problems: Problems) -> None:
    if "body_id" not in frame.columns:
        frame["body_id"] = ""
        return
    if bodies is None:
        return
    hosts = frame["body_id"]
    unknown = (hosts != "") & ~hosts.isin(bodies["body_id"])
    for i in np.flatnonzero(unknown.to_numpy()):
        problems.add("sites.csv", int(i) + 2, "body_id", f"unknown body {hosts.iloc[i]!r}")
    twice = (hosts != "") & hosts.duplicated()
    for i in np.flatnonzero(twice.to_numpy()):
        message = f"body {hosts.iloc[i]!r} hosts another site already; a body hosts at most one"
        problems.add("sites.csv", int(i) + 2, "body_id", message)


def _site_status(frame: pd.DataFrame, problems: Problems) -> None:
    if "status" not in frame.columns:
        frame["status"] = "candidate"
        return
    frame["status"] = frame["status"].replace("", "candidate")
    for i in np.flatnonzero(~frame["status"].isin(SITE_STATUSES).to_numpy()):
        message = f"expected one of {list(SITE_STATUSES)}, got {frame['status'].iloc[i]!r}"
        problems.add("sites.csv", int(i) + 2, "status", message)


def read_edges(folder: Path, node_ids: pd.Index, problems: Problems) -> pd.DataFrame | None:
    """Read the optional ``edges.csv``: ``source,target,km`` over body and site ids."""
    file = "edges.csv"
    if not optional_file(folder / file, problems):
        return None
    frame = read_csv(folder / file, problems)
    if frame is None or not require_columns(frame, file, ["source", "target", "km"], problems):
        return None
    frame["km"] = numbers(frame, file, "km", problems, low=0.0)
    for column in ("source", "target"):
        known_ids(frame, file, column, node_ids, "body or site id", problems)
    _repeated_edges(frame, file, problems)
    return frame[["source", "target", "km"]]


def _repeated_edges(frame: pd.DataFrame, file: str, problems: Problems) -> None:
    """Record each edge given again (either way round: the network is undirected)."""
    ends = np.sort(frame[["source", "target"]].to_numpy(dtype=str), axis=1)
    pairs = pd.Series([f"{a}\0{b}" for a, b in ends])
    first = pairs.drop_duplicates()
    row_of = pd.Series(first.index.to_numpy() + 2, index=first.to_numpy())
    for i in np.flatnonzero(pairs.duplicated().to_numpy()):
        a, b = ends[i]
        message = (
            f"edge {a}-{b} is given again (first in row {row_of[pairs.iloc[i]]}); give it once"
        )
        problems.add(file, int(i) + 2, "target", message)


def optional_file(path: Path, problems: Problems) -> bool:
    """Whether the optional file ``path`` is there; a link to nothing is recorded as a problem.

    A dangling symbolic link is a file the user meant to give, not an absent one.
    """
    if path.exists():
        return True
    if path.is_symlink():
        problems.add(path.name, None, None, f"is a link to a missing file: {os.readlink(path)}")
    return False
