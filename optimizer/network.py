"""The network model: a graph over bodies and sites, and its shortest paths.

Edges come from the user's ``edges.csv`` or from a generated proximity
network (k nearest neighbours plus a minimum spanning tree, so the graph is
always connected), each edge as long as the straight line times a circuity
factor. Distances are shortest paths, computed once for every (body, site).
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra, minimum_spanning_tree
from scipy.spatial import cKDTree

from optimizer.errors import DataValidationError

CIRCUITY = 1.3
NEIGHBOURS = 8


def proximity_edges(
    nodes: pd.DataFrame, *, neighbours: int = NEIGHBOURS, circuity: float = CIRCUITY
) -> pd.DataFrame:
    """Generate a connected proximity network over located nodes.

    Parameters
    ----------
    nodes : DataFrame
        Indexed by node id, with ``x_km`` and ``y_km``.
    neighbours : int
        Each node is joined to this many nearest others.
    circuity : float
        Road km per straight-line km.

    Returns
    -------
    DataFrame
        ``source,target,km``, each undirected edge once.

    Examples
    --------
    >>> pts = pd.DataFrame({"x_km": [0.0, 3.0, 3.0], "y_km": [0.0, 4.0, 0.0]}, index=list("abc"))
    >>> proximity_edges(pts, neighbours=1, circuity=1.0)
      source target   km
    0      a      c  3.0
    1      b      c  4.0
    """
    xy = nodes[["x_km", "y_km"]].to_numpy(dtype=float)
    n = len(xy)
    if n < 2:
        return pd.DataFrame({"source": [], "target": [], "km": []})
    k = min(neighbours, n - 1)
    _dist, idx = cKDTree(xy).query(xy, k=k + 1)
    rows = np.repeat(np.arange(n), k)
    cols = idx[:, 1:].ravel()
    pairs = {(min(a, b), max(a, b)) for a, b in zip(rows.tolist(), cols.tolist(), strict=True)}
    full = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    tree = minimum_spanning_tree(full).tocoo()
    pairs |= {
        (min(a, b), max(a, b)) for a, b in zip(tree.row.tolist(), tree.col.tolist(), strict=True)
    }
    a, b = np.array(sorted(pairs)).T
    ids = nodes.index.to_numpy()
    return pd.DataFrame({"source": ids[a], "target": ids[b], "km": full[a, b] * circuity})


def graph(edges: pd.DataFrame, node_ids: pd.Index) -> nx.Graph:
    """Build the undirected network; a repeated edge keeps its shortest length."""
    g = nx.Graph()
    g.add_nodes_from(node_ids)
    for source, target, km in edges[["source", "target", "km"]].itertuples(index=False):
        if source == target:
            continue
        if not g.has_edge(source, target) or km < g[source][target]["km"]:
            g.add_edge(source, target, km=float(km))
    return g


def check_connected(g: nx.Graph, file: str = "edges.csv") -> None:
    """Raise a validation error naming the components of a disconnected graph."""
    components = sorted(nx.connected_components(g), key=len, reverse=True)
    if len(components) <= 1:
        return
    lines = [f"({file}) | the network is not connected: {len(components)} components"]
    for i, comp in enumerate(components, start=1):
        members = sorted(map(str, comp))
        shown = ", ".join(members[:8]) + (
            f", ... ({len(members)} nodes)" if len(members) > 8 else ""
        )
        lines.append(f"({file}) | component {i}: {shown}")
    raise DataValidationError(lines)


def shortest_paths(g: nx.Graph, sources: pd.Index, targets: pd.Index) -> np.ndarray:
    """Return the shortest-path km from every source to every target node.

    Examples
    --------
    >>> g = graph(pd.DataFrame({"source": ["a", "b"], "target": ["b", "c"], "km": [1.0, 2.0]}),
    ...           pd.Index(["a", "b", "c"]))
    >>> shortest_paths(g, pd.Index(["a"]), pd.Index(["c", "a"])).tolist()
    [[3.0, 0.0]]
    """
    order = list(g.nodes)
    position = {node: i for i, node in enumerate(order)}
    edges = [(position[u], position[v], d["km"]) for u, v, d in g.edges(data=True)]
    n = len(order)
    if edges:
        u, v, w = (np.array(col) for col in zip(*edges, strict=True))
    else:
        u = v = np.zeros(0, dtype=int)
        w = np.zeros(0)
    matrix = coo_matrix((np.r_[w, w], (np.r_[u, v], np.r_[v, u])), shape=(n, n)).tocsr()
    src = np.array([position[s] for s in sources], dtype=int)
    dist = dijkstra(matrix, directed=True, indices=src)
    return np.asarray(dist[:, [position[t] for t in targets]], dtype=float)
