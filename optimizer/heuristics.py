"""Fast incumbents: assign clients to a set of open agencies, cost it, improve it.

Given the open sites, each client (body, category) buys through an allowed
open site; the band each agency reaches depends on everyone's choice, so the
assignment iterates: price every agency at the marginal rate its current
volume earns, move every client to its cheapest agency, repeat while the
total falls. The cost is MODEL.md's, computed from dense per-category arrays
(the reference evaluator re-checks every grouping reported).

The same arrays give, for every open site at once, an estimate of what
closing it costs (its clients move to their next-best agency; its fixed and
desk costs are saved), for every closed site what opening it gains, and for
every (open, close) pair what the swap changes: the moves of the greedy
drop, add and swap searches of Resende & Werneck (2007). Marginal rates
miss one thing: many agencies each just past a band edge cost more than a
few far past it. :meth:`Assigner.refine` handles that with the open sites
fixed, as a facility location problem over each category's band copies.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import numpy as np

from optimizer.formulation import Structure
from optimizer.instance import Instance

ROUNDS = 12
CHUNK = 2048  # clients per block of the swap estimates (bounds their memory)
TRIES = 6  # best-estimated swaps re-costed exactly per move
DROP_TRIES = 3  # best-estimated closures (openings) tried per drop (add)
REFINE_CELLS = 4_000_000  # largest (clients x copies) array the copy search builds


@dataclass(frozen=True)
class Assignment:
    """Each client's site row, the MODEL.md cost, and the open site rows."""

    site: np.ndarray
    cost: float
    open_sites: np.ndarray

    def mask(self, n_sites: int) -> np.ndarray:
        """The open sites as a boolean mask over all ``n_sites`` sites."""
        mask = np.zeros(n_sites, dtype=bool)
        mask[self.open_sites] = True
        return mask


def better(a: Assignment | None, b: Assignment | None) -> Assignment | None:
    """The cheaper of two groupings, either possibly None; ``a`` on a tie."""
    if a is None:
        return b
    if b is None:
        return a
    return b if b.cost < a.cost - 1e-9 else a


class Assigner:
    """Dense (client, site) cost arrays, one block per category.

    The blocks (``base``) are views of one (site, client) array
    (``by_site``, clients category by category), which prices a whole
    grouping's distance term in one gather and every client's cheapest
    site in one pass (:meth:`cheapest`). Only the sites not closed have a
    row (``cols``, in site order; ``col_of`` maps back, -1 for a closed
    site): no client may buy at a closed one. At 5,000 synthetic bodies
    with 412 sites not closed, the array took 1 GB with a row for every
    site, and each drop of the downward pass about 3 s.

    Parameters
    ----------
    instance : Instance
    st : Structure
        Built from the same instance.
    """

    def __init__(self, instance: Instance, st: Structure) -> None:
        self.st = st
        self.cats = list(instance.model.categories.values())
        self.n_cats = len(self.cats)
        self.desk = np.array([c.desk_cost for c in self.cats])
        self.lowers = [np.array([b.lower for b in c.bands]) for c in self.cats]
        self.uppers = [np.array([b.upper for b in c.bands]) for c in self.cats]
        self.rates = [np.array([b.rate for b in c.bands]) for c in self.cats]
        self.band_lo, self.band_hi, self.band_rate, self.edges = self._band_table()
        self.rows = [np.flatnonzero(st.client_cat == c) for c in range(self.n_cats)]
        self.order = np.concatenate(self.rows)  # clients category by category
        self.counts = np.array([len(r) for r in self.rows])
        self.spend = st.client_spend[self.order]
        self.cols = np.flatnonzero(~st.fixed_closed)
        self.col_of = np.full(st.n_sites, -1)
        self.col_of[self.cols] = np.arange(len(self.cols))
        self.by_site = np.full((len(self.cols), st.n_clients), np.inf)
        blocks = np.split(self.by_site, np.cumsum(self.counts)[:-1], axis=1)
        self.base = [block.T for block in blocks]
        for c in range(self.n_cats):
            self._fill_base(instance, c)
        self.spent = float(st.client_spend.sum())

    def _band_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every category's band edges and rates as ``(categories, bands)`` arrays.

        Categories with fewer bands are padded with empty bands at 0 that save
        nothing; the last array, each band's lower edge, is padded with inf
        instead (no volume reaches a padded band: :meth:`bands`).
        """
        shape = (self.n_cats, max(len(r) for r in self.rates))
        lo, hi, rate = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        edges = np.full(shape, np.inf)
        for c in range(self.n_cats):
            k = len(self.rates[c])
            lo[c, :k], hi[c, :k], rate[c, :k] = self.lowers[c], self.uppers[c], self.rates[c]
            edges[c, :k] = self.lowers[c]
        return lo, hi, rate, edges

    def _fill_base(self, instance: Instance, c: int) -> None:
        """Full price plus distance cost of clients of ``c`` at allowed sites; inf elsewhere.

        Written into ``base[c]``, a block of columns of ``by_site``.
        """
        st = self.st
        clients = self.rows[c]
        out = self.base[c]
        position = np.full(st.n_clients, -1)
        position[clients] = np.arange(len(clients))
        for ptr, lst in ((st.ptr, st.lst_copy), (st.host_ptr, st.host_copy)):
            seg = np.repeat(np.arange(st.n_clients), np.diff(ptr))
            keep = (st.copy_band[lst] == 0) & (st.client_cat[seg] == c)
            rows, sites = position[seg[keep]], st.copy_site[lst[keep]]
            body = st.client_body[seg[keep]]
            spend = st.client_spend[seg[keep]]
            out[rows, self.col_of[sites]] = spend * (
                1 + self.cats[c].distance_cost * instance.distances[body, sites] / 1e6
            )

    # ----------------------------------------------------------------- assignment

    def assign(self, open_mask: np.ndarray, start: np.ndarray | None = None) -> Assignment | None:
        """Return a good grouping with exactly the sites in ``open_mask`` open, or None.

        ``start`` is a previous grouping whose volumes price the first round.
        """
        rates = (
            self.marginal_rates(start)
            if start is not None
            else np.zeros((self.st.n_sites, self.n_cats))
        )
        site = self.cheapest(open_mask, rates)
        return None if site is None else self.settle(site, open_mask)

    def settle(self, site: np.ndarray, open_mask: np.ndarray) -> Assignment:
        """Re-price at the rates ``site`` earns and move every client, while the total falls.

        At most ``ROUNDS`` assignments are costed, ``site`` the first.
        """
        best = Assignment(site, self.cost(site, open_mask), np.flatnonzero(open_mask))
        for _ in range(ROUNDS - 1):
            moved = self.cheapest(open_mask, self.marginal_rates(best.site))
            if moved is None:
                break
            cost = self.cost(moved, open_mask)
            if cost >= best.cost - 1e-9:
                break
            best = Assignment(moved, cost, best.open_sites)
        return best

    def reassign(self, current: Assignment, open_mask: np.ndarray, new: np.ndarray) -> Assignment:
        """Move only the clients a change of open sites concerns.

        ``new`` is each client's cheapest site in ``open_mask`` at the
        current marginal rates. A client moves there when its site closes or
        when that site is one that was closed; everyone else stays, so the
        bands :meth:`refine` found survive.
        """
        was = current.mask(self.st.n_sites)
        site = np.where(~open_mask[current.site] | ~was[new], new, current.site)
        return Assignment(site, self.cost(site, open_mask), np.flatnonzero(open_mask))

    def cheapest(self, open_mask: np.ndarray, rates: np.ndarray) -> np.ndarray | None:
        """Each client's cheapest open site at the given marginal rates (host rule applied).

        Every category at once: on uk-councils at level 48, 0.33 ms instead
        of 0.6 ms a category at a time. Settling each swap the swap search
        tries is mostly this.
        """
        cols = np.flatnonzero(open_mask[self.cols])
        if not len(cols):
            return None
        rated = np.repeat(rates[self.cols[cols]], self.counts, axis=1)
        price = self.by_site[cols] - rated * self.spend
        pick = price.argmin(axis=0)
        if not np.isfinite(price[pick, np.arange(len(pick))]).all():
            return None
        site = np.empty(self.st.n_clients, dtype=int)
        site[self.order] = self.cols[cols[pick]]
        return self.hosted(site, open_mask)

    def hosted(self, site: np.ndarray, open_mask: np.ndarray) -> np.ndarray:
        """``site`` with every client whose host is open moved there (the host rule)."""
        host = self.st.client_host
        forced = (host >= 0) & open_mask[np.maximum(host, 0)]
        site[forced] = host[forced]
        return site

    def price(self, c: int, rates: np.ndarray, open_mask: np.ndarray) -> np.ndarray:
        """Cost of each client of ``c`` at each site of ``cols`` at given rates; inf where shut."""
        spend = self.st.client_spend[self.rows[c]]
        price = self.base[c] - spend[:, None] * rates[None, self.cols, c]
        price[:, ~open_mask[self.cols]] = np.inf
        return price

    def volumes(self, site: np.ndarray) -> np.ndarray:
        """Aggregated spend per (site, category)."""
        st = self.st
        cells = st.n_sites * self.n_cats
        key = site * self.n_cats + st.client_cat
        return np.bincount(key, st.client_spend, cells).reshape(st.n_sites, self.n_cats)

    def bands(self, volume: np.ndarray) -> np.ndarray:
        """Band position of each (site, category) volume; an edge prices in the band below."""
        below = np.zeros(volume.shape, dtype=int)  # edges under each volume
        for edge in self.edges.T:
            below += edge < volume
        out: np.ndarray = np.maximum(below - 1, 0)
        return out

    def marginal_rates(self, site: np.ndarray) -> np.ndarray:
        """The marginal rate each (site, category) earns at its current volume."""
        band = self.bands(self.volumes(site))
        out: np.ndarray = self.band_rate[np.arange(self.n_cats), band]
        return out

    def cost(self, site: np.ndarray, open_mask: np.ndarray) -> float:
        """MODEL.md total of clients at ``site`` with the sites in ``open_mask`` open."""
        volume = self.volumes(site)
        inside = np.minimum(np.maximum(volume[:, :, None], self.band_lo), self.band_hi)
        inside -= self.band_lo
        purchases = float(volume.sum() - (inside * self.band_rate).sum())
        desks = float(((volume > 0) @ self.desk).sum())
        total = float(self.st.site_fixed[open_mask].sum()) + desks
        return total + purchases + self.distance(site)

    def distance(self, site: np.ndarray) -> float:
        """The distance term of a grouping."""
        cols = self.col_of[site[self.order]]
        if (cols < 0).any():  # a client at a closed site
            return math.inf
        full = self.by_site[cols, np.arange(self.st.n_clients)]
        return float(full.sum()) - self.spent

    def copies_of(self, site: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The band copy each used (site, category) prices at, and each client's cost there."""
        st = self.st
        band = self.bands(self.volumes(site))
        n_bands = max(len(r) for r in self.rates)
        copy_key = (st.copy_site * self.n_cats + st.copy_cat) * n_bands + st.copy_band
        used = np.unique(site * self.n_cats + st.client_cat)
        copies = np.searchsorted(copy_key, used * n_bands + band.ravel()[used])
        client_cost = np.zeros(st.n_clients)
        for c, clients in enumerate(self.rows):
            rate = self.rates[c][band[site[clients], c]]
            full = self.base[c][np.arange(len(clients)), self.col_of[site[clients]]]
            client_cost[clients] = full - st.client_spend[clients] * rate
        return copies, client_cost

    # ------------------------------------------------------------------ estimates

    def closing_deltas(
        self, current: Assignment, open_mask: np.ndarray, locked: np.ndarray
    ) -> np.ndarray:
        """Estimated change in total cost from closing each open site (inf: cannot close)."""
        st = self.st
        rates = self.marginal_rates(current.site)
        delta = -st.site_fixed.astype(float).copy()
        volume = self.volumes(current.site)
        delta -= (volume > 0) @ self.desk
        for c, clients in enumerate(self.rows):
            price = self.price(c, rates, open_mask)
            rows, at = np.arange(len(clients)), self.col_of[current.site[clients]]
            now = price[rows, at]
            price[rows, at] = np.inf
            nxt = price.min(axis=1)
            np.add.at(delta, current.site[clients], nxt - now)
        delta[~open_mask | locked] = np.inf
        return delta

    def swap_deltas(
        self, current: Assignment, open_mask: np.ndarray, locked: np.ndarray, banned: np.ndarray
    ) -> np.ndarray:
        """Estimated change in total cost from opening site ``c`` and closing open site ``o``.

        Row ``c`` of every site, column ``o`` of every open site (in site
        order); inf where ``c`` is open or ``banned`` or ``o`` is ``locked``.
        The fast interchange of Whitaker (1983), as in Resende & Werneck
        (2007): with each client's cost ``d1`` where it buys and ``d2`` at its
        next-best open site (both at the current marginal rates), opening
        ``c`` gains ``max(0, d1 - d_c)`` from every client that may move, and
        closing ``o`` moves each of its clients to ``min(d2, d_c)``. Fixed and
        desk costs count; band changes do not (the swap search re-costs its
        candidates exactly).
        """
        st = self.st
        opened = np.flatnonzero(open_mask)
        volume = self.volumes(current.site)
        opening, delta = self._interchanges(current, open_mask)
        closing = st.site_fixed[opened] + (volume[opened] > 0) @ self.desk
        delta += opening[:, None] - closing[None, :]
        delta[open_mask | banned] = np.inf
        delta[:, locked[opened]] = np.inf
        return delta

    def opening_deltas(
        self, current: Assignment, open_mask: np.ndarray, banned: np.ndarray
    ) -> np.ndarray:
        """Estimated change in total cost from opening each closed site (inf: cannot open).

        The opening half of :meth:`swap_deltas`: the site's fixed cost and
        desks, less what every client that may move there gains.
        """
        opening = self._interchanges(current, open_mask)[0]
        opening[open_mask | banned] = np.inf
        return opening

    def _interchanges(
        self, current: Assignment, open_mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """What opening each site costs, and the moves of closing each open site after it.

        Both inf at closed sites (none of which opens).
        """
        st = self.st
        rates = self.marginal_rates(current.site)
        delta = np.full((st.n_sites, int(open_mask.sum())), np.inf)
        delta[self.cols] = 0.0
        opening = np.full(st.n_sites, np.inf)
        opening[self.cols] = st.site_fixed[self.cols]
        for c, clients in enumerate(self.rows):
            for lo in range(0, len(clients), CHUNK):
                part = slice(lo, lo + CHUNK)
                gain = self._interchange(c, part, current.site, rates, open_mask, delta)
                opening[self.cols] -= gain
                opening[self.cols] += self.desk[c] * (gain > 0)
        return opening, delta

    def _interchange(
        self,
        c: int,
        part: slice,
        site: np.ndarray,
        rates: np.ndarray,
        open_mask: np.ndarray,
        delta: np.ndarray,
    ) -> np.ndarray:
        """Add the moves of clients ``part`` of category ``c`` to ``delta``; return their gains.

        Gains are per site of ``cols``; ``delta`` has a row for every site.
        """
        st = self.st
        clients = self.rows[c][part]
        rows = np.arange(len(clients))
        spend = st.client_spend[clients]
        price = self.base[c][part] - spend[:, None] * rates[None, self.cols, c]
        at = self.col_of[site[clients]]
        d1 = price[rows, at]
        others = np.where(open_mask[None, self.cols], price, np.inf)
        others[rows, at] = np.inf
        d2 = others.min(axis=1)
        host = st.client_host[clients]
        pinned = (host >= 0) & open_mask[np.maximum(host, 0)]
        own = self.col_of[np.maximum(host, 0)]
        can = (own >= 0) & np.isfinite(price[rows, own])  # a closed host site never opens
        forced = np.flatnonzero((host >= 0) & ~pinned & can)
        gain = np.maximum(d1[:, None] - price, 0.0)
        gain[pinned] = 0.0
        gain[forced, own[forced]] = d1[forced] - price[forced, own[forced]]
        moved = np.minimum(d2[:, None], price) - d1[:, None] + gain
        moved[forced, own[forced]] = 0.0
        groups, summed = _grouped(moved, at)
        closing = np.searchsorted(np.flatnonzero(open_mask), self.cols[groups])
        delta[np.ix_(self.cols, closing)] += summed.T
        out: np.ndarray = gain.sum(axis=0)
        return out

    def refine(self, current: Assignment) -> Assignment:
        """Improve the band copies each category buys through, with the open sites fixed.

        Per category, the clients and the band copies at open sites form an
        uncapacitated facility location problem (a copy costs its desk and
        band intercept, a client pays its linear price there); a client whose
        host is open may only use its host's copies. :func:`copy_search`
        improves the copies the grouping uses now, and the grouping it gives
        is re-costed exactly (each agency then prices at its best band, so
        the cost is no higher than the copies' own). Skipped for categories
        nobody buys and those whose dense arrays would exceed ``REFINE_CELLS``.
        """
        st = self.st
        open_mask = current.mask(st.n_sites)
        used = np.zeros(st.n_copies, dtype=bool)
        used[self.copies_of(current.site)[0]] = True
        site = current.site.copy()
        for c, clients in enumerate(self.rows):
            copies = np.flatnonzero((st.copy_cat == c) & open_mask[st.copy_site])
            if not len(clients) or len(clients) * len(copies) > REFINE_CELLS:
                continue
            sites = st.copy_site[copies]
            spend = st.client_spend[clients]
            price = self.base[c][:, self.col_of[sites]]
            price -= spend[:, None] * self.rates[c][st.copy_band[copies]]
            host = st.client_host[clients]
            pinned = (host >= 0) & open_mask[np.maximum(host, 0)]
            price[pinned[:, None] & (sites[None, :] != host[:, None])] = np.inf
            if not np.isfinite(price[:, used[copies]]).any(axis=1).all():
                continue  # a client no copy in use may serve here: no start to search from
            chosen = copy_search(price, st.copy_fixed[copies], used[copies])
            site[clients] = sites[chosen]
        cost = self.cost(site, open_mask)
        if cost >= current.cost:
            return current
        return Assignment(site, cost, current.open_sites)


def _grouped(values: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of ``at`` and, for each, the sum of the rows of ``values`` there."""
    order = np.argsort(at, kind="stable")
    heads = np.r_[0, np.flatnonzero(np.diff(at[order])) + 1]
    return at[order][heads], np.add.reduceat(values[order], heads, axis=0)


def copy_search(price: np.ndarray, fixed: np.ndarray, open_: np.ndarray) -> np.ndarray:
    """Local search for uncapacitated facility location; return each client's facility.

    ``price`` is clients x facilities (inf: not allowed), ``fixed`` each
    facility's cost, ``open_`` the facilities open at the start (every client
    must reach one). Each move is the best single add, drop or swap (one
    in, one out), all of them valued exactly at once as in Whitaker's
    (1983) fast interchange; stops when none lowers the cost.

    Examples
    --------
    >>> price = np.array([[1.0, 4.0], [4.0, 1.0], [2.0, 2.0]])
    >>> copy_search(price, np.array([2.0, 4.0]), np.array([True, False])).tolist()
    [0, 0, 0]
    >>> copy_search(price, np.array([2.0, 1.0]), np.array([True, False])).tolist()
    [0, 1, 0]
    """
    open_ = open_.copy()
    rows = np.arange(price.shape[0])
    while True:
        cols = np.flatnonzero(open_)
        near = price[:, cols]
        first = near.argmin(axis=1)
        d1 = near[rows, first]
        near[rows, first] = np.inf
        d2 = near.min(axis=1) if len(cols) > 1 else np.full(len(rows), np.inf)
        at = cols[first]
        gain = np.maximum(d1[:, None] - price, 0.0)
        adding = fixed - gain.sum(axis=0)
        groups, moved = _grouped(np.minimum(d2[:, None], price) - d1[:, None] + gain, at)
        swapping = adding[None, :] - fixed[groups][:, None] + moved
        swapping[:, open_] = np.inf
        adding[open_] = np.inf
        dropping = np.bincount(at, weights=d2 - d1, minlength=len(fixed)) - fixed
        dropping[~open_] = np.inf
        best = min(float(adding.min()), float(dropping.min()), float(swapping.min()))
        if not best < -1e-9 * max(1.0, float(d1.sum())):
            return at
        if adding.min() == best:
            open_[adding.argmin()] = True
        elif dropping.min() == best:
            open_[dropping.argmin()] = False
        else:
            group, added = np.unravel_index(swapping.argmin(), swapping.shape)
            open_[groups[group]], open_[added] = False, True


# ------------------------------------------------------------- drops and swaps


def drop_site(
    assigner: Assigner, current: Assignment, open_mask: np.ndarray, locked: np.ndarray
) -> tuple[Assignment, np.ndarray] | None:
    """Close the open site whose closure is estimated to cost least, and reassign.

    Tries the ``DROP_TRIES`` best estimates (:meth:`Assigner.closing_deltas`)
    in turn; returns the first grouping that serves every client, with its
    open sites, or None when none does (or no site outside ``locked`` may
    close).
    """
    deltas = assigner.closing_deltas(current, open_mask, locked)
    for site in np.argsort(deltas, kind="stable")[:DROP_TRIES]:
        if not math.isfinite(deltas[site]):
            return None
        trial = open_mask.copy()
        trial[site] = False
        moved = assigner.assign(trial, current.site)
        if moved is not None:
            return moved, trial
    return None


def drop_sites(
    assigner: Assigner, current: Assignment, count: int, locked: np.ndarray
) -> Assignment | None:
    """Close ``count`` open sites at once, the cheapest to close on one estimate, if that works.

    A coarse jump for when closing one site at a time (:func:`drop_site`)
    takes too long: the ``count`` sites estimated cheapest to close
    (:meth:`Assigner.closing_deltas`) close together; while the sites left
    do not reach every client, half as many close on that estimate, and
    the rest on a fresh one. None when a single closure fails as well.
    Halving at every step instead cost 13.7 s from 1,965 to 200 sites on a
    2,000-body synthetic instance (each step's assignment about 2 s).
    """
    mask = current.mask(assigner.st.n_sites)
    while count > 0:
        step = _drop_batch(assigner, current, mask, count, locked)
        if step is None:
            return None
        closed = int(mask.sum() - step[1].sum())
        current, mask, count = step[0], step[1], count - closed
    return assigner.settle(current.site, mask)


def _drop_batch(
    assigner: Assigner, current: Assignment, mask: np.ndarray, batch: int, locked: np.ndarray
) -> tuple[Assignment, np.ndarray] | None:
    """Close the ``batch`` sites estimated cheapest to close (fewer while that fails).

    Each client moves to its cheapest open site at the current rates, once
    (no settling: :func:`drop_sites` settles the grouping it ends at).
    """
    deltas = assigner.closing_deltas(current, mask, locked)
    order = np.argsort(deltas, kind="stable")
    rates = assigner.marginal_rates(current.site)
    while batch > 1:
        closing = order[:batch]
        trial = mask.copy()
        trial[closing] = False
        site = assigner.cheapest(trial, rates) if np.isfinite(deltas[closing]).all() else None
        if site is not None:
            return Assignment(site, assigner.cost(site, trial), np.flatnonzero(trial)), trial
        batch //= 2
    return drop_site(assigner, current, mask, locked)


def add_site(
    assigner: Assigner, current: Assignment, open_mask: np.ndarray, banned: np.ndarray
) -> tuple[Assignment, np.ndarray] | None:
    """Open the closed site whose opening is estimated to gain most, and reassign.

    Tries the ``DROP_TRIES`` best estimates (:meth:`Assigner.opening_deltas`)
    and returns the cheapest grouping, with its open sites; None when no
    site outside ``banned`` is closed.
    """
    deltas = assigner.opening_deltas(current, open_mask, banned)
    found: tuple[Assignment, np.ndarray] | None = None
    for site in np.argsort(deltas, kind="stable")[:DROP_TRIES]:
        if not math.isfinite(deltas[site]):
            break
        trial = open_mask.copy()
        trial[site] = True
        moved = assigner.assign(trial, current.site)
        if moved is not None and (found is None or moved.cost < found[0].cost):
            found = moved, trial
    return found


def swap_search(
    assigner: Assigner,
    current: Assignment,
    locked: np.ndarray,
    banned: np.ndarray,
    deadline: float = math.inf,
    moves: int | None = None,
    widen: bool = False,
    target: float = -math.inf,
) -> Assignment:
    """Swap local search: open one site and close another while the total falls.

    Each move estimates every (open, close) pair at once
    (:meth:`Assigner.swap_deltas`), re-assigns the ``TRIES`` best estimates
    (moving only the clients concerned, and afresh; the cheaper) and keeps
    the first that lowers the total. At a local optimum the band copies are
    refined (:meth:`Assigner.refine`) and the swaps resume if that helped;
    if not and ``widen`` is set, every other swap is tried, best estimate
    first (the estimates miss band changes, which matter most when agencies
    are few and large). Stops after ``moves`` moves (refinements included),
    at ``deadline`` (a :func:`time.perf_counter` value), once the total is
    at most ``target`` (a cost the caller already knows to be good enough)
    or when nothing improves. Sites in ``locked`` never close, sites in
    ``banned`` never open.
    """
    mask = current.mask(assigner.st.n_sites)
    for _ in itertools.count() if moves is None else range(moves):
        if time.perf_counter() >= deadline or current.cost <= target:
            break
        step = _best_swap(assigner, current, mask, locked, banned, TRIES, deadline)
        if step is None:
            refined = assigner.refine(current)
            if refined.cost < current.cost - 1e-9 * abs(current.cost):
                step = refined, mask
            elif widen:
                step = _best_swap(assigner, current, mask, locked, banned, None, deadline)
        if step is None:
            break
        current, mask = step
    return current


def _best_swap(
    assigner: Assigner,
    current: Assignment,
    mask: np.ndarray,
    locked: np.ndarray,
    banned: np.ndarray,
    tries: int | None,
    deadline: float,
) -> tuple[Assignment, np.ndarray] | None:
    """The first swap lowering the total among the ``tries`` best estimates (None: all).

    Each swap is re-costed twice from each client's cheapest site after it
    (:class:`Nearest`): moving only the clients it concerns, and settling
    everyone afresh; the cheaper counts.
    """
    delta = assigner.swap_deltas(current, mask, locked, banned)
    opened = np.flatnonzero(mask)
    flat = delta.ravel()
    count = flat.size if tries is None else min(tries, flat.size)
    if not count:
        return None
    near = Nearest(assigner, current, mask)
    best = np.argpartition(flat, count - 1)[:count]
    for cell in best[np.argsort(flat[best], kind="stable")]:
        if not np.isfinite(flat[cell]) or time.perf_counter() >= deadline:
            break
        opening, closing = divmod(int(cell), len(opened))
        trial = mask.copy()
        trial[opening], trial[opened[closing]] = True, False
        new = near.after(opening, int(opened[closing]), trial)
        if new is None:
            continue
        found = assigner.reassign(current, trial, new)
        again = assigner.settle(new, trial)
        if again.cost < found.cost:
            found = again
        if found.cost < current.cost - 1e-9 * abs(current.cost):
            return found, trial
    return None


class Nearest:
    """Each client's two cheapest open sites at a grouping's marginal rates.

    After one swap (open site ``o``, close site ``x``) a client's cheapest
    site is the cheaper of ``o`` and its cheapest other than ``x``, the
    lower-numbered on a tie, just as :meth:`Assigner.cheapest` picks: so
    one swap is re-priced in time linear in the clients, not in clients
    times open sites. On uk-councils at level 52 this made a swap search
    about twice as fast.
    """

    def __init__(self, assigner: Assigner, current: Assignment, open_mask: np.ndarray) -> None:
        st = assigner.st
        self.assigner = assigner
        self.rates = assigner.marginal_rates(current.site)
        self.first = np.zeros(st.n_clients, dtype=int)
        self.second = np.zeros(st.n_clients, dtype=int)
        self.cost1 = np.zeros(st.n_clients)
        self.cost2 = np.zeros(st.n_clients)
        for c, clients in enumerate(assigner.rows):
            price = assigner.price(c, self.rates, open_mask)
            rows = np.arange(len(clients))
            first = price.argmin(axis=1)
            self.first[clients], self.cost1[clients] = assigner.cols[first], price[rows, first]
            price[rows, first] = np.inf
            second = price.argmin(axis=1)
            self.second[clients], self.cost2[clients] = assigner.cols[second], price[rows, second]

    def after(self, opening: int, closing: int, open_mask: np.ndarray) -> np.ndarray | None:
        """Each client's cheapest site once ``opening`` opens and ``closing`` closes, or None.

        ``open_mask`` holds the sites open after the swap (for the host
        rule). None if some client can reach no open site.
        """
        a = self.assigner
        keep = self.first != closing
        site = np.where(keep, self.first, self.second)
        cost = np.where(keep, self.cost1, self.cost2)
        there = np.full(len(site), np.inf)
        column = a.col_of[opening]
        for c, clients in enumerate(a.rows):
            spend = a.st.client_spend[clients]
            if column >= 0:
                there[clients] = a.base[c][:, column] - spend * self.rates[opening, c]
        take = (there < cost) | ((there == cost) & (opening < site))
        if not np.isfinite(np.where(take, there, cost)).all():
            return None
        return a.hosted(np.where(take, opening, site), open_mask)
