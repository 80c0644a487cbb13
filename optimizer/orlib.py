"""Readers for the OR-Library location benchmarks, as engine instances.

Three sets are read (file formats: ``shared/benchmarks/orlib/README.md``):

* ``pmed``: uncapacitated p-median (Beasley 1985). The cost matrix is the
  all-pairs shortest-path matrix of the graph, where a vertex pair listed
  more than once keeps the cost of its **last** line.
* ``pmedcap``: capacitated p-median (Osman and Christofides 1994), floor
  Euclidean distances, single-source, every median with capacity ``Q``.
* ``cap``: warehouse location (Beasley 1988), read uncapacitated unless a
  capacity is given.

Every instance uses one category, ``demand``, with ``distance_cost`` 1 and no
bands, fixed or desk cost. A body ``b`` with spend ``s_b`` served from site
``j`` then costs ``s_b (1 + d[b, j] / 1e6)`` (MODEL.md), so the distance is set
to ``d[b, j] = c[b, j] * 1e6 / s_b`` where ``c[b, j]`` is OR-Library's cost of
serving ``b`` from ``j``: the engine's total minus the spend is OR-Library's
objective (:func:`orlib_objective`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.sparse.csgraph import csgraph_from_dense, shortest_path

from optimizer.engine import purchase_floor
from optimizer.instance import Instance
from optimizer.model import Category, Model, Scenario

if TYPE_CHECKING:
    from optimizer.engine import SolveResult

ORLIB_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "orlib"
"""Where the data lives in a checkout: ``shared/`` next to the repository."""

CATEGORY = "demand"
NATION = "orlib"
PMED_SPEND = 1e6
CAPACITY_WORD = "capacity"
OPTIMA_FILES = {
    "pmed": ("pmed", "optima.csv"),
    "pmedcap": ("pmedcap", "optima.csv"),
    "cap": ("cap", "optima.csv"),
    "uncap": ("cap", "uncap_optima.csv"),
}


def orlib_model() -> Model:
    """Return the model every OR-Library instance uses.

    One category, ``demand``: ``distance_cost`` 1, no desk cost, no radius, a
    single band with rate 0; no agency fixed cost, no nation rule, categories
    split (there is only one).

    Returns
    -------
    Model

    """
    scenario = Scenario(agency_fixed_cost=0.0, same_nation=False, split_categories=True)
    category = Category(CATEGORY, desk_cost=0.0, distance_cost=1.0, radius_km=None)
    return Model(scenario, {CATEGORY: category})


def read_pmed(path: Path | str, spend: float = PMED_SPEND) -> tuple[Instance, int]:
    """Read an OR-Library p-median file (``pmed1.txt`` ... ``pmed40.txt``).

    Every vertex is a body with spend 1e6 (MODEL.md's p-median special case)
    and a candidate site hosted by itself, so the engine's total minus
    ``n * 1e6`` is the p-median objective.

    Parameters
    ----------
    path : path-like
        The instance file: ``n m p``, then ``m`` lines ``i j c``.
    spend : float, optional
        Every body's spend; distances are scaled by ``1e6 / spend`` so the
        objective is the same. Only the size of the constant total spend
        changes (a check of the solver's numerics).

    Returns
    -------
    instance : Instance
    p : int
        The number of medians.

    Raises
    ------
    ValueError
        When the file is malformed or the graph is not connected.

    """
    path = Path(path)
    n, p, edges = read_pmed_edges(path)
    distances = shortest_paths(n, edges, path.name)
    ids = [str(v) for v in range(1, n + 1)]
    if not spend > 0:
        raise ValueError("spend must be positive")
    spends = np.full(n, float(spend))
    scaled = distances * 1e6 / spends[:, None]
    instance = _hosted_instance(path.stem, ids, np.zeros((n, 2)), spends, scaled)
    return instance, p


def read_pmed_edges(path: Path | str) -> tuple[int, int, np.ndarray]:
    """Read a p-median file's header and its edge lines as they are.

    Parameters
    ----------
    path : path-like
        The instance file: ``n m p``, then ``m`` lines ``i j c``.

    Returns
    -------
    n : int
        Number of vertices.
    p : int
        Number of medians.
    edges : ndarray
        ``(m, 3)`` rows ``i, j, cost`` in file order, 1-based vertices,
        duplicates kept.

    Raises
    ------
    ValueError
        When the number of values does not match the header.

    """
    path = Path(path)
    numbers = _numbers(path)
    n, m, p = (int(v) for v in numbers[:3])
    if len(numbers) != 3 + 3 * m:
        raise ValueError(f"{path.name}: expected {3 + 3 * m} numbers, found {len(numbers)}")
    return n, p, np.asarray(numbers[3:], dtype=float).reshape(m, 3)


def last_edges(n: int, edges: np.ndarray) -> np.ndarray:
    """Return the edge list with one row per vertex pair: the cost of its last line.

    Parameters
    ----------
    n : int
        Number of vertices (ids 1..n).
    edges : ndarray
        ``(m, 3)`` rows ``i, j, cost`` in file order, 1-based vertices.

    Returns
    -------
    ndarray
        ``(k, 3)`` rows ``i, j, cost`` with ``i < j``, 0-based, sorted by pair.

    Raises
    ------
    ValueError
        On a vertex outside ``1..n`` or a self loop.

    """
    ends = edges[:, :2].astype(int) - 1
    if ends.min(initial=0) < 0 or ends.max(initial=0) >= n:
        raise ValueError(f"edge end outside 1..{n}")
    if (ends[:, 0] == ends[:, 1]).any():
        raise ValueError("self loop in the edge list")
    low, high = ends.min(axis=1), ends.max(axis=1)
    key = low * n + high
    _, last = np.unique(key[::-1], return_index=True)
    keep = np.sort(len(key) - 1 - last)
    order = np.argsort(key[keep], kind="stable")
    rows = keep[order]
    return np.c_[low[rows], high[rows], edges[rows, 2]]


def shortest_paths(n: int, edges: np.ndarray, label: str = "graph") -> np.ndarray:
    """All-pairs shortest paths of an undirected graph, last-occurrence edge costs.

    Parameters
    ----------
    n : int
        Number of vertices.
    edges : ndarray
        ``(m, 3)`` rows ``i, j, cost`` in file order, 1-based vertices.
    label : str
        Named in the error message.

    Returns
    -------
    ndarray
        ``(n, n)`` distances.

    Raises
    ------
    ValueError
        When the graph is not connected.

    """
    unique = last_edges(n, edges)
    i, j = unique[:, 0].astype(int), unique[:, 1].astype(int)
    dense = np.full((n, n), np.inf)
    dense[i, j] = unique[:, 2]
    dense[j, i] = unique[:, 2]
    graph = csgraph_from_dense(dense, null_value=np.inf)
    distances = np.asarray(shortest_path(graph, method="D", directed=False))
    if not np.isfinite(distances).all():
        raise ValueError(f"{label}: the graph is not connected")
    return distances


def read_pmedcap(path: Path | str) -> tuple[Instance, int, float]:
    """Read one capacitated p-median problem (``pmedcap1_K.txt``).

    Every customer is a body whose spend is its demand and a candidate site
    hosted by itself with capacity ``Q`` (a median serves itself, and its own
    demand counts towards its capacity). Distances are Euclidean truncated to
    an integer and the objective is their unweighted sum, so
    ``d[b, j] = floor_dist * 1e6 / demand[b]``.

    Parameters
    ----------
    path : path-like
        The block: ``k best``, ``n p Q``, then ``n`` lines ``i x y demand``.

    Returns
    -------
    instance : Instance
    p : int
        The number of medians.
    best : float
        The optimal or best-known value listed in the file.

    Raises
    ------
    ValueError
        When the file is malformed or a demand is not positive.

    """
    path = Path(path)
    numbers = _numbers(path)
    best = numbers[1]
    n, p, capacity = int(numbers[2]), int(numbers[3]), numbers[4]
    if len(numbers) != 5 + 4 * n:
        raise ValueError(f"{path.name}: expected {5 + 4 * n} numbers, found {len(numbers)}")
    rows = np.asarray(numbers[5:], dtype=float).reshape(n, 4)
    demand = rows[:, 3]
    _check_positive(demand, path.name)
    floor = floor_distances(rows[:, 1:3])
    ids = [_label(v) for v in rows[:, 0]]
    distances = floor * 1e6 / demand[:, None]
    instance = _hosted_instance(path.stem, ids, rows[:, 1:3], demand, distances, capacity)
    return instance, p, best


def floor_distances(points: np.ndarray) -> np.ndarray:
    """Euclidean distances between all pairs of points, truncated to integers.

    Parameters
    ----------
    points : ndarray
        ``(n, 2)`` integer coordinates.

    Returns
    -------
    ndarray
        ``(n, n)`` floor distances.

    Examples
    --------
    >>> floor_distances(np.array([[0, 0], [3, 4], [1, 1]]))[0].tolist()
    [0.0, 5.0, 1.0]

    """
    diff = points[:, None, :] - points[None, :, :]
    return np.floor(np.sqrt((diff**2).sum(axis=2)))


def read_cap(path: Path | str, capacity: float | None = None) -> Instance:
    """Read an OR-Library warehouse location file (``cap41.txt`` ... ``capc.txt``).

    Customers are bodies whose spend is their demand; warehouses are sites
    with no host and the file's fixed cost. The file gives the cost of
    serving all of a customer's demand from a warehouse, so
    ``d[b, j] = c[b, j] * 1e6 / demand[b]``.

    Parameters
    ----------
    path : path-like
        ``m n``; ``m`` lines ``capacity fixed_cost`` (the capacity may be the
        literal word ``capacity``, as in capa/b/c); then per customer its
        demand and the ``m`` allocation costs.
    capacity : float, optional
        None (the default) reads the uncapacitated problem (capacity NaN) and
        ignores the file's capacities. A number gives every warehouse that
        capacity. The engine then assigns each customer to a single
        warehouse, whereas OR-Library's capacitated optima let demand split.

    Returns
    -------
    Instance

    Raises
    ------
    ValueError
        When the file is malformed, or a customer with no demand has a
        non-zero allocation cost (the model cannot express it).

    """
    path = Path(path)
    tokens = path.read_text(encoding="ascii").split()
    m, n = int(tokens[0]), int(tokens[1])
    expected = 2 + 2 * m + n * (1 + m)
    if len(tokens) != expected:
        raise ValueError(f"{path.name}: expected {expected} numbers, found {len(tokens)}")
    head = tokens[2 : 2 + 2 * m]
    fixed = np.array([float(v) for v in head[1::2]])
    _check_capacities(head[0::2])
    body = np.array([float(v) for v in tokens[2 + 2 * m :]]).reshape(n, 1 + m)
    return _cap_instance(path.stem, body[:, 0], body[:, 1:], fixed, capacity, path.name)


def _check_capacities(words: list[str]) -> None:
    for word in words:
        if word != CAPACITY_WORD:
            float(word)


def _cap_instance(
    name: str, demand: np.ndarray, cost: np.ndarray, fixed: np.ndarray,
    capacity: float | None, label: str,
) -> Instance:
    zero = demand == 0
    if (cost[zero] != 0).any():
        raise ValueError(f"{label}: a customer with zero demand has a non-zero allocation cost")
    _check_positive(demand[~zero], label)
    customers = np.flatnonzero(~zero)
    m = len(fixed)
    sites = pd.DataFrame({
        "site_id": [f"w{k}" for k in range(1, m + 1)],
        "name": [f"warehouse {k}" for k in range(1, m + 1)],
        "nation": NATION, "x_km": 0.0, "y_km": 0.0, "fixed_cost": fixed, "body_id": "",
        "capacity": math.nan if capacity is None else float(capacity), "status": "candidate",
    }).set_index("site_id")
    bodies = _bodies([f"c{k}" for k in customers + 1], np.zeros((len(customers), 2)))
    distances = cost[customers] * 1e6 / demand[customers, None]
    return _assemble(name, bodies, sites, demand[customers], distances)


def _hosted_instance(
    name: str, ids: list[str], coords: np.ndarray, spend: np.ndarray, distances: np.ndarray,
    capacity: float = math.nan,
) -> Instance:
    """Every body is also a candidate site with its own id, hosted by itself."""
    bodies = _bodies(ids, coords)
    sites = bodies.copy()
    sites.index.name = "site_id"
    sites["fixed_cost"] = 0.0
    sites["body_id"] = ids
    sites["capacity"] = float(capacity)
    sites["status"] = "candidate"
    return _assemble(name, bodies, sites, spend, distances)


def _bodies(ids: list[str], coords: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({
        "body_id": ids, "name": ids, "nation": NATION,
        "x_km": coords[:, 0].astype(float), "y_km": coords[:, 1].astype(float),
    })
    return frame.set_index("body_id")


def _assemble(
    name: str, bodies: pd.DataFrame, sites: pd.DataFrame, spend: np.ndarray, distances: np.ndarray
) -> Instance:
    table = pd.DataFrame({"body_id": bodies.index.to_list(), "category": CATEGORY, "spend": spend})
    edges = pd.DataFrame({"source": pd.Series(dtype=str), "target": pd.Series(dtype=str),
                          "km": pd.Series(dtype=float)})
    matrix = np.asarray(distances, dtype=float)
    return Instance(name, bodies, sites, table, orlib_model(), matrix, edges)


def _numbers(path: Path) -> list[float]:
    return [float(token) for token in path.read_text(encoding="ascii").split()]


def _check_positive(demand: np.ndarray, label: str) -> None:
    if not (demand > 0).all():
        raise ValueError(f"{label}: every demand must be positive")


def _label(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def optima(set_name: str, root: Path | str | None = None) -> pd.DataFrame:
    """Return the published optima of one set, indexed by instance name.

    Parameters
    ----------
    set_name : {"pmed", "pmedcap", "cap", "uncap"}
        ``cap`` holds the capacitated optima (with a ``capacity`` column),
        ``uncap`` the uncapacitated ones of cap71-74, cap101-104, cap131-134
        and capa/b/c.
    root : path-like, optional
        The ``orlib`` data folder; defaults to :data:`ORLIB_ROOT`.

    Returns
    -------
    DataFrame
        The CSV's columns (``n``, ``p``, ``m``, ``capacity``, ``optimum`` as
        the set has them), indexed by ``instance``.

    Raises
    ------
    ValueError
        For an unknown set name.

    """
    if set_name not in OPTIMA_FILES:
        raise ValueError(f"unknown set {set_name!r}; choose one of {sorted(OPTIMA_FILES)}")
    folder, file = OPTIMA_FILES[set_name]
    base = Path(root) if root is not None else ORLIB_ROOT
    return pd.read_csv(base / folder / file).set_index("instance")


def orlib_objective(result: SolveResult, instance: Instance) -> float:
    """OR-Library's objective of a solve: the engine's total minus the spend.

    Parameters
    ----------
    result : SolveResult
        From :func:`optimizer.engine.solve_level` on ``instance``.
    instance : Instance
        Read by one of this module's readers.

    Returns
    -------
    float

    """
    return float(result.objective - instance.spend["spend"].sum())


def gap_for(instance: Instance, absolute: float) -> float:
    """Return a relative gap that proves OR-Library's objective within ``absolute``.

    The engine's gap is relative to the decision cost, the total less the
    purchase floor (:func:`optimizer.engine.purchase_floor`), so a useful
    gap is ``absolute`` over an upper bound on that cost: every site open
    and every body at its farthest site. (``SolverOptions(gap_abs=...)``
    proves within ``absolute`` GBP directly.)

    Parameters
    ----------
    instance : Instance
        Read by one of this module's readers.
    absolute : float
        The largest error allowed on the OR-Library objective.

    Returns
    -------
    float

    """
    spend = instance.spend_matrix.sum(axis=1)
    far = instance.distances.max(axis=1)
    upper = float((spend * (1 + far / 1e6)).sum() + instance.fixed_costs.sum())
    return absolute / max(upper - purchase_floor(instance), 1.0)
