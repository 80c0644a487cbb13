"""Build the MIP for one consolidation level from arrays.

Notation (MODEL.md): bodies ``b``, sites ``j``, categories ``c``, discount
bands ``t``. A *client* is a (body, category) pair with spend; a *copy* is a
(site, category, band) triple, the agency ``j`` buying ``c`` priced in band
``t``. With marginal rates ``r_t`` that never fall, the purchase cost of an
aggregated volume is concave, ``V - saving(V) = min_t ((1 - r_t) V + b_t)``
with intercept ``b_t = r_t lower_t - saving(lower_t)``, so each
(agency, category) opens at most one band copy and every client buys through
its cheapest open copy. A client ``i = (b, c)`` pays at copy ``a = (j, c, t)``::

    cost[i, a] = spend[b, c] * ((1 - r_t) + distance_cost[c] * d[b, j] / 1e6)

Only *allowed* (client, copy) pairs exist: within ``radius_km``, in the body's
nation when ``same_nation`` holds, reachable, at a site not closed. A band
copy whose lower bound exceeds the spend that can reach its agency never pays
and is not generated.

Two formulations share these arrays.

**Benders master** (:func:`build_master`, uncapacitated, categories split):
``y[j]``, ``w[a]`` binary and ``theta[i] >= 0``, client ``i``'s cost above
its floor ``f_i`` (its cheapest allowed copy; the floors are a constant
offset, which keeps the master's numbers on the scale of the decisions)::

    min  sum_i f_i + sum_j fixed[j] y[j] + sum_a (desk[c] + b_t) w[a] + sum_i theta[i]
    s.t. sum_t w[j,c,t] <= y[j]                one band per agency and category
         sum_t w[s,c,t]  = y[s]                the host of s buys every c it has there
         sum_j y[j] = k                        the level (a free row in "best" mode)

and cuts added as they are violated (:func:`separate`). Client ``i``'s cost
for given ``(y, w)`` is the LP ``min sum_a c_a x_a``, ``sum_a x_a = 1``,
``x_a <= w_a``, and ``sum_{a at s} x_a >= y[s]`` when its body hosts site
``s``; its dual, read off by filling copies cheapest first, gives::

    theta[i] + f_i >= u + z y[s] - sum_{a not at s} (u - c_a)^+ w[a]
                                 - sum_{a at s} (u + z - c_a)^+ w[a]

and, when the copies cannot cover the client, the feasibility cut
``y[s] + sum_{a not at s} w[a] >= 1``. Without a host these are the radius
cuts of Duran-Mateluna, Ales & Elloumi (2023), here over band copies; they
describe exactly the projection of the compact model's LP, and at an integer
point the cut is tight, so the loop ends at an exact optimum.

**Pools** (:class:`CutLists`). Where a client pays the same at every copy of
a band it may use (a category with no distance cost and no radius, bought
anywhere in the nation), the cut's terms for that band share one coefficient.
The master then carries one continuous pool variable
``P_g = sum_{a in g} w[a]`` per such set ``g`` of copies, and the cut uses
``P_g - w[host's copy in g]`` in place of hundreds of ``w`` terms: the same
cut, the same LP, far fewer non-zeros.

**Compact model** (:func:`build_compact`, used with capacities or the
whole-body rule): as above plus ``x[i, a]`` for allowed pairs::

    sum_a x[i,a] = 1;  x[i,a] <= w[a];  sum_{i,a at j} spend[i] x[i,a] <= cap[j] y[j]
    sum_{a at j} x[i,a] = u[b,j] for every c of b;  sum_j u[b,j] = 1   (whole body)

with ``x`` binary whenever capacities or the whole-body rule apply.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from optimizer.errors import InfeasibleError
from optimizer.instance import Instance

TOLERANCE = 1e-9


@dataclass(frozen=True)
class Structure:
    """The arrays both formulations are built from.

    Attributes
    ----------
    client_body, client_cat : ndarray
        Body row and category position of each client.
    client_spend : ndarray
    copy_site, copy_cat, copy_band : ndarray
        Site row, category position and band position of each copy.
    copy_fixed : ndarray
        ``desk[c] + b_t`` for each copy.
    ptr, lst_copy, lst_cost : ndarray
        CSR lists: client ``i``'s allowed copies (other than at its host's
        site) are ``lst_copy[ptr[i]:ptr[i+1]]``, sorted by ``lst_cost``.
    client_host : ndarray
        The site row its body hosts, or -1.
    host_ptr, host_copy, host_cost : ndarray
        CSR lists of each client's copies at its host's site.
    site_fixed : ndarray
    site_capacity : ndarray
        NaN where there is none.
    fixed_open, fixed_closed : ndarray of bool
        Sites forced open or closed.
    """

    client_body: np.ndarray
    client_cat: np.ndarray
    client_spend: np.ndarray
    copy_site: np.ndarray
    copy_cat: np.ndarray
    copy_band: np.ndarray
    copy_fixed: np.ndarray
    ptr: np.ndarray
    lst_copy: np.ndarray
    lst_cost: np.ndarray
    client_host: np.ndarray
    host_ptr: np.ndarray
    host_copy: np.ndarray
    host_cost: np.ndarray
    site_fixed: np.ndarray
    site_capacity: np.ndarray
    fixed_open: np.ndarray
    fixed_closed: np.ndarray
    n_bodies: int

    @cached_property
    def floor(self) -> np.ndarray:
        """Each client's cheapest allowed copy: a lower bound on its cost."""
        return _cheapest(self)

    @property
    def must_open(self) -> np.ndarray:
        """Sites forced open, or whose host can buy some category nowhere else."""
        alone = (np.diff(self.ptr) == 0) & (self.client_host >= 0)
        mask = self.fixed_open.copy()
        mask[self.client_host[alone]] = True
        return mask

    @property
    def n_sites(self) -> int:
        """Number of candidate sites."""
        return len(self.site_fixed)

    @property
    def n_copies(self) -> int:
        """Number of band copies."""
        return len(self.copy_site)

    @property
    def n_clients(self) -> int:
        """Number of (body, category) pairs with spend."""
        return len(self.client_spend)


def allowed(instance: Instance, closed: np.ndarray) -> list[np.ndarray]:
    """Return, per category, the boolean ``(bodies, sites)`` matrix of allowed pairs."""
    d = instance.distances
    ok = np.isfinite(d) & ~closed[None, :]
    if instance.model.scenario.same_nation:
        ok &= (
            instance.bodies["nation"].to_numpy()[:, None]
            == instance.sites["nation"].to_numpy()[None, :]
        )
    out = []
    for cat in instance.model.categories.values():
        radius = np.inf if cat.radius_km is None else cat.radius_km
        out.append(ok & (d <= radius + 1e-9))
    return out


def structure(
    instance: Instance, keep_open: np.ndarray | None = None, keep_closed: np.ndarray | None = None
) -> Structure:
    """Pre-compute clients, copies and the sorted allowed lists.

    Raises
    ------
    InfeasibleError
        When a client has no allowed site at all.
    """
    n_sites = len(instance.sites)
    status = instance.sites["status"].to_numpy()
    fixed_open = (status == "open") | (keep_open if keep_open is not None else False)
    fixed_closed = (status == "closed") | (keep_closed if keep_closed is not None else False)
    fixed_closed = np.asarray(fixed_closed, dtype=bool) & ~np.asarray(fixed_open, dtype=bool)
    fixed_open = np.asarray(fixed_open, dtype=bool) & np.ones(n_sites, dtype=bool)
    masks = allowed(instance, fixed_closed)
    spend = instance.spend_matrix
    body, cat = np.nonzero(spend > 0)
    _check_reachable(instance, masks, body, cat)
    copies = _copies(instance, masks, spend)
    host = _host_sites(instance)
    lists = _lists(instance, masks, body, cat, copies, host)
    return Structure(
        client_body=body,
        client_cat=cat,
        client_spend=spend[body, cat],
        copy_site=copies[0],
        copy_cat=copies[1],
        copy_band=copies[2],
        copy_fixed=copies[3],
        ptr=lists[0],
        lst_copy=lists[1],
        lst_cost=lists[2],
        client_host=host[body],
        host_ptr=lists[3],
        host_copy=lists[4],
        host_cost=lists[5],
        site_fixed=instance.fixed_costs,
        site_capacity=instance.sites["capacity"].to_numpy(dtype=float),
        fixed_open=fixed_open,
        fixed_closed=fixed_closed,
        n_bodies=len(instance.bodies),
    )


def _check_reachable(
    instance: Instance, masks: list[np.ndarray], body: np.ndarray, cat: np.ndarray
) -> None:
    reach = np.array([masks[c][b].any() for b, c in zip(body, cat, strict=True)], dtype=bool)
    if reach.all():
        return
    names = instance.bodies.index.to_numpy()
    cats = instance.categories
    lost = [f"{names[b]}/{cats[c]}" for b, c in zip(body[~reach], cat[~reach], strict=True)]
    raise InfeasibleError(
        f"{len(lost)} body/category pairs have no open-able site within the category's radius"
        f" in their nation: {', '.join(lost[:12])}{' ...' if len(lost) > 12 else ''}"
    )


def _host_sites(instance: Instance) -> np.ndarray:
    """For each body row, the first site row it hosts, or -1."""
    host = np.full(len(instance.bodies), -1, dtype=int)
    rows = instance.host_of_site
    for site in np.flatnonzero(rows >= 0)[::-1]:
        host[rows[site]] = site
    return host


def _copies(
    instance: Instance, masks: list[np.ndarray], spend: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    sites, cats, bands, fixed = [], [], [], []
    for c, category in enumerate(instance.model.categories.values()):
        reach = spend[:, c] @ masks[c]
        intercepts = category.intercepts()
        for t, band in enumerate(category.bands):
            open_to = np.flatnonzero((reach > 0) & (reach > band.lower if t else True))
            sites.append(open_to)
            cats.append(np.full(len(open_to), c))
            bands.append(np.full(len(open_to), t))
            fixed.append(np.full(len(open_to), category.desk_cost + intercepts[t]))
    site = np.concatenate(sites)
    order = np.lexsort((np.concatenate(bands), np.concatenate(cats), site))
    return (
        site[order],
        np.concatenate(cats)[order],
        np.concatenate(bands)[order],
        np.concatenate(fixed)[order],
    )


def _lists(
    instance: Instance,
    masks: list[np.ndarray],
    body: np.ndarray,
    cat: np.ndarray,
    copies: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    host: np.ndarray,
) -> tuple[np.ndarray, ...]:
    copy_site, copy_cat, copy_band, _ = copies
    categories = list(instance.model.categories.values())
    rates = [np.array([b.rate for b in c.bands]) for c in categories]
    spend = instance.spend_matrix
    by_cat = [np.flatnonzero(copy_cat == c) for c in range(len(categories))]
    lists: list[list[np.ndarray]] = [[], [], [], []]
    for b, c in zip(body, cat, strict=True):
        idx = by_cat[c]
        idx = idx[masks[c][b, copy_site[idx]]]
        s = spend[b, c]
        cost = s * (
            (1 - rates[c][copy_band[idx]])
            + categories[c].distance_cost * instance.distances[b, copy_site[idx]] / 1e6
        )
        at_host = copy_site[idx] == host[b]
        order = np.argsort(cost[~at_host], kind="stable")
        lists[0].append(idx[~at_host][order])
        lists[1].append(cost[~at_host][order])
        lists[2].append(idx[at_host])
        lists[3].append(cost[at_host])
    ptr = np.r_[0, np.cumsum([len(a) for a in lists[0]])]
    host_ptr = np.r_[0, np.cumsum([len(a) for a in lists[2]])]
    return (
        ptr,
        _cat(lists[0], int),
        _cat(lists[1], float),
        host_ptr,
        _cat(lists[2], int),
        _cat(lists[3], float),
    )


def _cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)


@dataclass
class MatrixModel:
    """A MIP in matrix form: ``min cost @ x``, ``row_lo <= A x <= row_hi``."""

    cost: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    integer: np.ndarray
    matrix: sp.csr_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    names: list[str] = field(default_factory=list, repr=False)
    level_row: int = -1
    offset: float = 0.0


class Rows:
    """An accumulator of sparse rows, turned into CSR in one call."""

    def __init__(self) -> None:
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.lo: list[float] = []
        self.hi: list[float] = []

    def add(self, cols: np.ndarray, vals: np.ndarray, lo: float, hi: float) -> None:
        """Append one row."""
        self.cols.append(np.asarray(cols, dtype=np.int64))
        self.vals.append(np.asarray(vals, dtype=float))
        self.lo.append(lo)
        self.hi.append(hi)

    def __len__(self) -> int:
        return len(self.lo)

    def csr(self, n_cols: int) -> sp.csr_matrix:
        """Return the rows as a CSR matrix with ``n_cols`` columns."""
        ptr = np.r_[0, np.cumsum([len(c) for c in self.cols])].astype(np.int64)
        cols = np.concatenate(self.cols) if self.cols else np.zeros(0, dtype=np.int64)
        vals = np.concatenate(self.vals) if self.vals else np.zeros(0)
        return sp.csr_matrix((vals, cols, ptr), shape=(len(self.lo), n_cols))


def build_master(st: Structure, lists: CutLists, level: int | None) -> MatrixModel:
    """Build the Benders master (without optimality cuts) for ``level`` agencies.

    Columns: ``y`` (sites), ``w`` (copies), ``theta`` (clients), then the
    pools of ``lists``. ``level=None`` leaves the number of agencies free.
    """
    n_s, n_a, n_i = st.n_sites, st.n_copies, st.n_clients
    theta0 = n_s + n_a
    n = theta0 + n_i + lists.n_pools
    rows = Rows()
    _link_rows(st, rows)
    level_row = len(rows)
    rows.add(np.arange(n_s), np.ones(n_s), *level_bounds(level, n_s))
    for g, members in enumerate(lists.pools):
        rows.add(np.r_[lists.pool0 + g, n_s + members], np.r_[1.0, -np.ones(len(members))], 0, 0)
    upper = np.ones(n)
    upper[theta0:] = np.inf
    upper[:n_s][never_open(st)] = 0.0
    lower = np.zeros_like(upper)
    lower[:n_s][st.must_open] = 1.0
    cost = np.r_[st.site_fixed, st.copy_fixed, np.ones(n_i), np.zeros(lists.n_pools)]
    integer = np.r_[np.ones(n_s + n_a, dtype=bool), np.zeros(n_i + lists.n_pools, dtype=bool)]
    return MatrixModel(
        cost,
        lower,
        upper,
        integer,
        rows.csr(len(cost)),
        np.array(rows.lo),
        np.array(rows.hi),
        level_row=level_row,
        offset=float(st.floor.sum()),
    )


def level_bounds(level: int | None, n_sites: int) -> tuple[float, float]:
    """Bounds of the row ``sum_j y[j]``: exactly ``level``, or free."""
    return (0.0, float(n_sites)) if level is None else (float(level), float(level))


def _link_rows(st: Structure, rows: Rows) -> None:
    """``sum_t w[j,c,t] <= y[j]``, or ``= y[j]`` where j's host buys c."""
    key = st.copy_site * (st.copy_cat.max(initial=0) + 1) + st.copy_cat
    forced = set()
    for i in np.flatnonzero(st.client_host >= 0):
        if st.host_ptr[i + 1] > st.host_ptr[i]:
            forced.add((int(st.client_host[i]), int(st.client_cat[i])))
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], len(key)]
    for a, b in zip(starts, ends, strict=True):
        site = int(st.copy_site[a])
        hi = 0.0
        lo = 0.0 if (site, int(st.copy_cat[a])) in forced else -np.inf
        rows.add(np.r_[st.n_sites + np.arange(a, b), site], np.r_[np.ones(b - a), -1.0], lo, hi)


def unhostable(st: Structure) -> np.ndarray:
    """Sites whose host has spend in a category it may not buy there."""
    bad = np.zeros(st.n_sites, dtype=bool)
    hosted = np.flatnonzero(st.client_host >= 0)
    empty = st.host_ptr[hosted + 1] == st.host_ptr[hosted]
    bad[st.client_host[hosted[empty]]] = True
    return bad


def never_open(st: Structure) -> np.ndarray:
    """Sites that may not open: closed (by ``status`` or ``--keep-closed``), or unfit to host."""
    return st.fixed_closed | unhostable(st)


def _cheapest(st: Structure) -> np.ndarray:
    """A valid lower bound on each client's cost: its cheapest allowed copy."""
    low = np.full(st.n_clients, np.inf)
    for ptr, cost in ((st.ptr, st.lst_cost), (st.host_ptr, st.host_cost)):
        has = ptr[1:] > ptr[:-1]
        mins = np.minimum.reduceat(cost, ptr[:-1][has]) if len(cost) else np.zeros(0)
        low[has] = np.minimum(low[has], mins)
    return np.where(np.isfinite(low), low, 0.0)


POOL_MIN = 4  # pool a band's copies only when it replaces at least this many terms


@dataclass(frozen=True)
class CutLists:
    """Each client's options away from its host, as master columns, cheapest first.

    Entry ``e`` of client ``i`` (``ptr[i] <= e < ptr[i+1]``) costs ``cost[e]``
    and is worth ``values[col[e]] - values[corr[e]]`` at a master point
    (``corr[e] = -1``: nothing subtracted). An entry is one band copy
    (``col = n_sites + copy``) or a pool: the sum of a set of copies of one
    band the client pays the same at, minus its host's copy in the set.

    Attributes
    ----------
    pools : list of ndarray
        The copies of each pool; pool ``g`` is master column ``pool0 + g``.
    """

    ptr: np.ndarray
    col: np.ndarray
    cost: np.ndarray
    corr: np.ndarray
    pools: list[np.ndarray]
    pool0: int

    @property
    def n_pools(self) -> int:
        """Number of pool columns."""
        return len(self.pools)

    @cached_property
    def seg(self) -> np.ndarray:
        """Each entry's client."""
        return np.repeat(np.arange(len(self.ptr) - 1), np.diff(self.ptr))

    @cached_property
    def corrected(self) -> np.ndarray:
        """The entries that subtract a host copy (``corr >= 0``)."""
        return np.flatnonzero(self.corr >= 0)

    def pool_values(self, w: np.ndarray) -> np.ndarray:
        """Each pool's value for copy values ``w``."""
        return np.array([w[m].sum() for m in self.pools])


def cut_lists(st: Structure, min_size: int | None = None) -> CutLists:
    """Pool every (client, band) whose copies all cost the client the same.

    Only bands with at least ``min_size`` such copies (default ``POOL_MIN``)
    are pooled; smaller ones gain nothing. Pools are numbered as first met
    (clients in order, each client's bands in order). Each client's entries
    are sorted by cost; at equal cost its copies (in list order) come before
    its pools (in band order).
    """
    least = POOL_MIN if min_size is None else min_size
    n_bands = int(st.copy_band.max(initial=0)) + 1
    seg = np.repeat(np.arange(st.n_clients), np.diff(st.ptr))
    group = seg * n_bands + st.copy_band[st.lst_copy]  # each entry's (client, band)
    order = np.argsort(group, kind="stable")  # by (client, band), cheapest first
    starts = np.flatnonzero(np.diff(group[order], prepend=-1))
    cost = st.lst_cost[order]
    lowest = cost[starts]
    spread = np.maximum.reduceat(cost, starts) - lowest if len(starts) else lowest
    size = np.diff(np.r_[starts, len(order)])
    chosen = (size >= least) & (spread <= TOLERANCE * np.maximum(1.0, np.abs(lowest)))
    keys = group[order][starts[chosen]]
    pool0 = st.n_sites + st.n_copies + st.n_clients
    pools, corr, members = _pools(st, keys, order, starts[chosen], size[chosen], n_bands)
    pooled = np.zeros(st.n_clients * n_bands, dtype=bool)
    pooled[keys] = True
    kept = np.flatnonzero(~pooled[group])
    client = np.r_[seg[kept], keys // n_bands]
    col = np.r_[st.n_sites + st.lst_copy[kept], pool0 + pools]
    val = np.r_[st.lst_cost[kept], lowest[chosen]]
    at = np.lexsort((np.r_[kept, len(seg) + keys], val, client))
    ptr = np.r_[0, np.cumsum(np.bincount(client, minlength=st.n_clients))].astype(np.int64)
    corr = np.r_[np.full(len(kept), -1), corr]
    return CutLists(ptr, col[at], val[at], corr[at], members, pool0)


def _pools(
    st: Structure,
    keys: np.ndarray,
    order: np.ndarray,
    starts: np.ndarray,
    sizes: np.ndarray,
    n_bands: int,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The pool of each pooled (client, band) ``key`` and its host copy's column (-1: none).

    Key ``k``'s list positions are ``order[starts[k]:starts[k] + sizes[k]]``.
    A pool holds those copies and the band's copy at the client's host's
    site, which the entry subtracts.
    """
    hseg = np.repeat(np.arange(st.n_clients), np.diff(st.host_ptr))
    at_host = hseg * n_bands + st.copy_band[st.host_copy]
    hosts = dict(zip(at_host.tolist(), st.host_copy.tolist(), strict=True))
    found: dict[bytes, int] = {}
    members: list[np.ndarray] = []
    pools = np.zeros(len(keys), dtype=np.int64)
    corr = np.full(len(keys), -1, dtype=np.int64)
    spans = zip(keys.tolist(), starts.tolist(), sizes.tolist(), strict=True)
    for k, (key, a, n) in enumerate(spans):
        copies = st.lst_copy[order[a : a + n]]
        if key in hosts:
            copies, corr[k] = np.append(copies, hosts[key]), st.n_sites + hosts[key]
        pool = np.sort(copies)
        pools[k] = found.setdefault(pool.tobytes(), len(members))
        if pools[k] == len(members):
            members.append(pool)
    return pools, corr, members


def separate(
    st: Structure,
    lists: CutLists,
    values: np.ndarray,
    rel_tol: float = 1e-7,
    at: np.ndarray | None = None,
) -> tuple[Rows, int]:
    """Return the most violated Benders cut of every client, and how many.

    ``values`` is a master point (columns as in :func:`build_master`); its
    ``theta`` is each client's cost above its floor (its cheapest allowed
    copy), and cuts are stated in the same terms.

    Client ``i``'s cost, for given ``(y, w)``, is the LP ``min sum_a c_a x_a``
    with ``sum_a x_a = 1``, ``x_a <= w_a`` and, when its body hosts site
    ``s``, ``sum_{a at s} x_a >= y_s``. Filling copies cheapest first gives
    its optimal duals: ``u``, the cost of the marginal copy away from the
    host, and ``z = max(0, D_H - u)`` with ``D_H`` the dearest host copy in
    use. The cut is

        theta_i >= u + z y_s - sum_{a not at s} (u - c_a)^+ w_a
                           - sum_{a at s} (u + z - c_a)^+ w_a,

    valid for every ``(y, w)`` by weak duality and tight at this one.
    Without a host it is the radius cut of Duran-Mateluna et al. (2023).
    A client with too little open in reach also gets the feasibility cut
    ``y_s + sum of its entries >= 1``, just before its optimality cut. All
    clients are separated at once, in arrays.

    With ``at``, the cuts are still made at ``values`` but kept where the
    point ``at`` violates them (in-out separation, ``values`` lying between
    ``at`` and a grouping's columns); feasibility cuts then come only from
    clients that ``values`` leaves short, which ``at`` leaves shorter still.
    """
    seg, u, lacking = _marginal(st, lists, values)
    cuts = _optimality_cuts(st, lists, values, u, seg, values if at is None else at)
    violated = cuts.lhs < (u - st.floor) - rel_tol * np.maximum(1.0, np.abs(u))
    ptr, cols, vals = cuts.rows(violated, len(values))
    short_ptr, short_cols, short_vals = _feasibility_cuts(st, lists, lacking).rows(
        lacking, len(values)
    )
    rows = Rows()
    for i in np.flatnonzero(violated | lacking).tolist():
        if lacking[i]:
            part = slice(short_ptr[i], short_ptr[i + 1])
            rows.add(short_cols[part], short_vals[part], 1.0, np.inf)
        if violated[i]:
            part = slice(ptr[i], ptr[i + 1])
            rows.add(cols[part], vals[part], float(u[i] - st.floor[i]), np.inf)
    return rows, int(violated.sum() + lacking.sum())


def shortfall(st: Structure, lists: CutLists, values: np.ndarray) -> float:
    """How far a master point's ``theta`` falls short of its clients' costs, summed.

    Each client's cut made at ``values`` (see :func:`separate`) is tight
    there, so this is the sum of their violations. Every cut holds at every
    point, so raising each ``theta`` to its client's cost keeps the point in
    the master with all its cuts: the master LP can rise at most this far
    above the LP value at ``values``, whatever cuts are added. Infinite when
    some client lacks an open option (no such point is in the master).
    """
    seg, u, lacking = _marginal(st, lists, values)
    if lacking.any():
        return float("inf")
    cuts = _optimality_cuts(st, lists, values, u, seg, values)
    return float(np.maximum(0.0, (u - st.floor) - cuts.lhs).sum())


def _marginal(
    st: Structure, lists: CutLists, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each entry's client, each client's marginal cost ``u``, and who lacks open options.

    Filling a client's entries cheapest first, ``u`` is the cost of the
    entry at which what is open reaches ``1 - y_s`` (the host takes the
    rest). When it never does, ``u`` is the dearest entry's cost and the
    client needs a feasibility cut. Only the entries the point opens move
    the filling, so it runs over those alone (a few in a hundred on a
    p-median LP point).
    """
    n = st.n_clients
    lengths = np.diff(lists.ptr)
    seg = lists.seg
    target = 1.0 - _host_share(st, values)
    worth = values[lists.col]
    worth[lists.corrected] -= values[lists.corr[lists.corrected]]
    opened = np.flatnonzero(worth > 0)
    owner = seg[opened]
    cum = np.cumsum(worth[opened])
    before = np.r_[0.0, cum][np.searchsorted(opened, lists.ptr[:-1])]
    inside = cum - before[owner]
    hit = opened[inside >= target[owner] - TOLERANCE]
    first = np.full(n, -1)
    first[seg[hit[::-1]]] = hit[::-1]  # the last write of a client is its first hit
    done = (target <= TOLERANCE) & (lengths > 0)  # the host alone suffices: the cheapest entry
    first[done] = lists.ptr[:-1][done]
    last = np.where(lengths > 0, lists.ptr[1:] - 1, len(lists.cost))  # past the end: reads 0
    u = np.r_[lists.cost, 0.0][np.where(first >= 0, first, last)]
    reach = np.bincount(owner, weights=worth[opened], minlength=n)
    lacking = (first < 0) & (lengths > 0) & (reach < target - 1e-6)
    return seg, u, lacking


def _host_share(st: Structure, values: np.ndarray) -> np.ndarray:
    """Each client's ``y_s``: how open the site its body hosts is (0 without one)."""
    host = st.client_host
    return np.where(host >= 0, values[np.maximum(host, 0)], 0.0)


@dataclass
class _Cuts:
    """One candidate cut per client, as (client, column, coefficient) terms, and its value.

    A column may appear in several terms of one client; :meth:`rows` sums them.
    """

    row: np.ndarray
    col: np.ndarray
    val: np.ndarray
    lhs: np.ndarray

    def rows(self, chosen: np.ndarray, n_cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The cuts of the ``chosen`` clients as CSR (pointers over every client), terms merged."""
        keep = chosen[self.row]
        key = self.row[keep].astype(np.int64) * n_cols + self.col[keep]
        keys, inverse = np.unique(key, return_inverse=True)
        total = np.bincount(inverse, weights=self.val[keep], minlength=len(keys))
        nonzero = total != 0
        keys, total = keys[nonzero], total[nonzero]
        rows = keys // n_cols
        ptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=len(chosen)))].astype(np.int64)
        return ptr, keys % n_cols, total


def _optimality_cuts(
    st: Structure,
    lists: CutLists,
    values: np.ndarray,
    u: np.ndarray,
    seg: np.ndarray,
    at: np.ndarray,
) -> _Cuts:
    """Every client's dual cut (see :func:`separate`) at marginal costs ``u``."""
    n, n_s = st.n_clients, st.n_sites
    hseg = np.repeat(np.arange(n), np.diff(st.host_ptr))
    host = st.client_host
    used = np.full(n, -np.inf)
    in_use = values[n_s + st.host_copy] > TOLERANCE
    np.maximum.at(used, hseg[in_use], st.host_cost[in_use])
    y_s = _host_share(st, values)
    z = np.where(np.isfinite(used) & (y_s > TOLERANCE), np.maximum(0.0, used - u), 0.0)
    cheaper = np.flatnonzero(lists.cost < u[seg])  # the entries with a term: a prefix of each
    owner, coef = seg[cheaper], u[seg[cheaper]] - lists.cost[cheaper]
    corr = lists.corr[cheaper] >= 0
    has_z = np.flatnonzero(z > 0)
    row = np.concatenate([np.arange(n), owner, owner[corr], hseg, has_z])
    col = np.concatenate(
        [
            n_s + st.n_copies + np.arange(n),
            lists.col[cheaper],
            lists.corr[cheaper][corr],
            n_s + st.host_copy,
            host[has_z],
        ]
    )
    val = np.concatenate(
        [
            np.ones(n),
            coef,
            -coef[corr],
            np.maximum(u[hseg] + z[hseg] - st.host_cost, 0.0),
            -z[has_z],
        ]
    )
    nonzero = val != 0
    row, col, val = row[nonzero], col[nonzero], val[nonzero]
    return _Cuts(row, col, val, np.bincount(row, weights=val * at[col], minlength=n))


def _feasibility_cuts(st: Structure, lists: CutLists, lacking: np.ndarray) -> _Cuts:
    """``y_s + sum of the client's entries >= 1`` for each ``lacking`` client: some option stays."""
    entry = np.flatnonzero(lacking[lists.seg])
    less = entry[lists.corr[entry] >= 0]
    hosted = np.flatnonzero(lacking & (st.client_host >= 0))
    return _Cuts(
        np.concatenate([lists.seg[entry], lists.seg[less], hosted]),
        np.concatenate([lists.col[entry], lists.corr[less], st.client_host[hosted]]),
        np.concatenate([np.ones(len(entry)), -np.ones(len(less)), np.ones(len(hosted))]),
        np.zeros(st.n_clients),  # no value needed: every lacking client gets its cut
    )


def build_compact(
    st: Structure, level: int | None, whole_body: bool
) -> tuple[MatrixModel, np.ndarray]:
    """Build the compact model; return it and each x column's (client, copy) pair.

    Columns: ``y`` (sites), ``w`` (copies), ``x`` (allowed client-copy pairs),
    then ``u`` (body-site pairs) when ``whole_body``.
    """
    client, copy, cost = _pairs(st, whole_body)
    n_s, n_a, n_x = st.n_sites, st.n_copies, len(client)
    x0 = n_s + n_a
    rows = Rows()
    _link_rows(st, rows)
    capacitated = bool(np.isfinite(st.site_capacity).any())
    _compact_rows(st, rows, client, copy, x0)
    if capacitated:
        _capacity_rows(st, rows, client, copy, x0)
    if level is not None:
        rows.add(np.arange(n_s), np.ones(n_s), level, level)
    n_u = _whole_body_rows(st, rows, client, copy, x0) if whole_body else 0
    n = x0 + n_x + n_u
    upper = np.ones(n)
    upper[:n_s][never_open(st)] = 0.0
    lower = np.zeros(n)
    lower[:n_s][st.must_open] = 1.0
    cost_vec = np.r_[st.site_fixed, st.copy_fixed, cost, np.zeros(n_u)]
    integer = np.ones(n, dtype=bool)
    integer[x0 : x0 + n_x] = capacitated
    model = MatrixModel(
        cost_vec, lower, upper, integer, rows.csr(n), np.array(rows.lo), np.array(rows.hi)
    )
    return model, np.c_[client, copy]


def _pairs(st: Structure, whole_body: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    seg = np.repeat(np.arange(st.n_clients), np.diff(st.ptr))
    hseg = np.repeat(np.arange(st.n_clients), np.diff(st.host_ptr))
    client = np.r_[seg, hseg]
    copy = np.r_[st.lst_copy, st.host_copy]
    cost = np.r_[st.lst_cost, st.host_cost]
    if whole_body:
        keep = _common_sites(st, client, copy)
        client, copy, cost = client[keep], copy[keep], cost[keep]
    order = np.lexsort((copy, client))
    return client[order], copy[order], cost[order]


def _common_sites(st: Structure, client: np.ndarray, copy: np.ndarray) -> np.ndarray:
    """Keep pairs at sites allowed for every category of the client's body."""
    body = st.client_body[client]
    site = st.copy_site[copy]
    key = np.unique(np.c_[body, site, client], axis=0)
    per_site = np.unique(key[:, :2], axis=0, return_counts=True)
    cats = np.bincount(st.client_body, minlength=st.n_bodies)
    ok = {
        (int(b), int(s)) for (b, s), n in zip(per_site[0], per_site[1], strict=True) if n == cats[b]
    }
    return np.array([(int(b), int(s)) in ok for b, s in zip(body, site, strict=True)], dtype=bool)


def _compact_rows(st: Structure, rows: Rows, client: np.ndarray, copy: np.ndarray, x0: int) -> None:
    starts = np.r_[0, np.flatnonzero(client[1:] != client[:-1]) + 1, len(client)]
    for a, b in itertools.pairwise(starts):
        rows.add(x0 + np.arange(a, b), np.ones(b - a), 1.0, 1.0)
    for k in range(len(client)):
        rows.add(np.array([x0 + k, st.n_sites + copy[k]]), np.array([1.0, -1.0]), -np.inf, 0.0)
    at_host = np.flatnonzero(st.copy_site[copy] == st.client_host[client])
    for i in np.unique(client[at_host]):
        mine = at_host[client[at_host] == i]
        s = st.client_host[i]
        rows.add(np.r_[x0 + mine, s], np.r_[np.ones(len(mine)), -1.0], 0.0, np.inf)


def _capacity_rows(
    st: Structure, rows: Rows, client: np.ndarray, copy: np.ndarray, x0: int
) -> None:
    site = st.copy_site[copy]
    for j in np.flatnonzero(np.isfinite(st.site_capacity)):
        mine = np.flatnonzero(site == j)
        rows.add(
            np.r_[x0 + mine, j],
            np.r_[st.client_spend[client[mine]], -st.site_capacity[j]],
            -np.inf,
            0.0,
        )


def _whole_body_rows(
    st: Structure, rows: Rows, client: np.ndarray, copy: np.ndarray, x0: int
) -> int:
    """``sum_{t} x[i,(j,c,t)] = u[b,j]`` for every client i of b, and ``sum_j u[b,j] = 1``."""
    body = st.client_body[client]
    pairs, u_of = np.unique(np.c_[body, st.copy_site[copy]], axis=0, return_inverse=True)
    u_of = u_of.ravel()
    u0 = x0 + len(client)
    key = client * len(pairs) + u_of
    order = np.argsort(key, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(key[order])) + 1, len(key)]
    for a, b in itertools.pairwise(starts):
        at = order[a:b]
        rows.add(np.r_[x0 + at, u0 + u_of[at[0]]], np.r_[np.ones(len(at)), -1.0], 0.0, 0.0)
    for b in np.unique(pairs[:, 0]):
        us = np.flatnonzero(pairs[:, 0] == b)
        rows.add(u0 + us, np.ones(len(us)), 1.0, 1.0)
    return len(pairs)
