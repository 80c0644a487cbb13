"""Fast incumbents: assign clients to a set of open agencies, cost it, improve it.

Given the open sites, each client (body, category) buys through an allowed
open site; the band each agency reaches depends on everyone's choice, so the
assignment iterates: price every agency at the marginal rate its current
volume earns, move every client to its cheapest agency, repeat while the
total falls. The cost is MODEL.md's, computed from dense per-category arrays
(the reference evaluator re-checks every grouping reported).

The same arrays give, for every open site at once, an estimate of what
closing it costs (its clients move to their next-best agency; its fixed and
desk costs are saved) and of what opening a closed site gains: the moves of
the greedy drop and swap searches of Resende & Werneck (2007).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from optimizer.formulation import Structure
from optimizer.instance import Instance

ROUNDS = 12


@dataclass(frozen=True)
class Assignment:
    """Each client's site row, the MODEL.md cost, and the open site rows."""

    site: np.ndarray
    cost: float
    open_sites: np.ndarray


class Assigner:
    """Dense (client, site) cost arrays, one block per category.

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
        self.rows = [np.flatnonzero(st.client_cat == c) for c in range(self.n_cats)]
        self.base = [self._base(instance, c) for c in range(self.n_cats)]

    def _base(self, instance: Instance, c: int) -> np.ndarray:
        """Full price plus distance cost of clients of ``c`` at allowed sites; inf elsewhere."""
        st = self.st
        clients = self.rows[c]
        out = np.full((len(clients), st.n_sites), np.inf)
        position = np.full(st.n_clients, -1)
        position[clients] = np.arange(len(clients))
        for ptr, lst in ((st.ptr, st.lst_copy), (st.host_ptr, st.host_copy)):
            seg = np.repeat(np.arange(st.n_clients), np.diff(ptr))
            keep = (st.copy_band[lst] == 0) & (st.client_cat[seg] == c)
            rows, sites = position[seg[keep]], st.copy_site[lst[keep]]
            body = st.client_body[seg[keep]]
            spend = st.client_spend[seg[keep]]
            out[rows, sites] = spend * (
                1 + self.cats[c].distance_cost * instance.distances[body, sites] / 1e6
            )
        return out

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
        best: Assignment | None = None
        for _ in range(ROUNDS):
            site = self.cheapest(open_mask, rates)
            if site is None:
                return None
            cost = self.cost(site, open_mask)
            if best is not None and cost >= best.cost - 1e-9:
                break
            best = Assignment(site, cost, np.flatnonzero(open_mask))
            rates = self.marginal_rates(site)
        return best

    def cheapest(self, open_mask: np.ndarray, rates: np.ndarray) -> np.ndarray | None:
        """Each client's cheapest open site at the given marginal rates (host rule applied)."""
        st = self.st
        site = np.full(st.n_clients, -1)
        cols = np.flatnonzero(open_mask)
        if not len(cols):
            return None
        for c, clients in enumerate(self.rows):
            spend = st.client_spend[clients]
            price = self.base[c][:, cols] - spend[:, None] * rates[cols, c][None, :]
            pick = np.argmin(price, axis=1)
            if not np.isfinite(price[np.arange(len(clients)), pick]).all():
                return None
            site[clients] = cols[pick]
        host = st.client_host
        forced = (host >= 0) & open_mask[np.maximum(host, 0)]
        site[forced] = host[forced]
        return site

    def price(self, c: int, rates: np.ndarray, open_mask: np.ndarray) -> np.ndarray:
        """Cost of each client of ``c`` at each site at the given rates; inf where closed."""
        spend = self.st.client_spend[self.rows[c]]
        price = self.base[c] - spend[:, None] * rates[None, :, c]
        price[:, ~open_mask] = np.inf
        return price

    def volumes(self, site: np.ndarray) -> np.ndarray:
        """Aggregated spend per (site, category)."""
        st = self.st
        volume = np.zeros((st.n_sites, self.n_cats))
        np.add.at(volume, (site, st.client_cat), st.client_spend)
        return volume

    def bands(self, volume: np.ndarray) -> np.ndarray:
        """Band position of each (site, category) volume; an edge prices in the band below."""
        out = np.zeros(volume.shape, dtype=int)
        for c in range(self.n_cats):
            out[:, c] = np.maximum(
                np.searchsorted(self.lowers[c], volume[:, c], side="left") - 1, 0
            )
        return out

    def marginal_rates(self, site: np.ndarray) -> np.ndarray:
        """The marginal rate each (site, category) earns at its current volume."""
        band = self.bands(self.volumes(site))
        return np.stack([self.rates[c][band[:, c]] for c in range(self.n_cats)], axis=1)

    def cost(self, site: np.ndarray, open_mask: np.ndarray) -> float:
        """MODEL.md total of clients at ``site`` with the sites in ``open_mask`` open."""
        volume = self.volumes(site)
        _, used_cat = np.nonzero(volume > 0)
        purchases = 0.0
        for c in range(self.n_cats):
            v = volume[:, c][volume[:, c] > 0]
            saved = (np.clip(v[:, None], self.lowers[c], self.uppers[c]) - self.lowers[c]) @ (
                self.rates[c]
            )
            purchases += float(v.sum() - saved.sum())
        total = float(self.st.site_fixed[open_mask].sum()) + float(self.desk[used_cat].sum())
        return total + purchases + self.distance(site)

    def distance(self, site: np.ndarray) -> float:
        """The distance term of a grouping."""
        total = 0.0
        for c, clients in enumerate(self.rows):
            full = self.base[c][np.arange(len(clients)), site[clients]]
            total += float((full - self.st.client_spend[clients]).sum())
        return total

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
            full = self.base[c][np.arange(len(clients)), site[clients]]
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
            rows = np.arange(len(clients))
            now = price[rows, current.site[clients]]
            price[rows, current.site[clients]] = np.inf
            nxt = price.min(axis=1)
            np.add.at(delta, current.site[clients], nxt - now)
        delta[~open_mask | locked] = np.inf
        return delta

    def opening_gains(
        self, current: Assignment, open_mask: np.ndarray, closed: np.ndarray
    ) -> np.ndarray:
        """Estimated saving from opening each closed site (clients that would move to it)."""
        st = self.st
        rates = self.marginal_rates(current.site)
        gain = -st.site_fixed.astype(float).copy()
        for c, clients in enumerate(self.rows):
            now = self.base[c][np.arange(len(clients)), current.site[clients]]
            now = now - st.client_spend[clients] * rates[current.site[clients], c]
            better = np.maximum(now[:, None] - self.base[c], 0.0)
            moved = better.sum(axis=0)
            gain += moved - self.desk[c] * (moved > 0)
        gain[open_mask | closed] = -np.inf
        return gain


# ---------------------------------------------------------------------- swaps

NEIGHBOURS = 24  # sites kept per site as swap partners
PARTNERS = 3  # open sites tried against each closed one


def site_neighbours(instance: Instance, k: int = NEIGHBOURS) -> np.ndarray:
    """Each site's ``k`` nearest other sites (rows), nearest first.

    Network km from the site's host body where it has one, else straight-line
    km between the sites' coordinates.
    """
    sites = instance.sites
    n = len(sites)
    k = min(k, n - 1)
    xy = sites[["x_km", "y_km"]].to_numpy(dtype=float)
    host = instance.host_of_site
    out = np.zeros((n, max(k, 0)), dtype=int)
    for lo in range(0, n, 512):
        rows = np.arange(lo, min(n, lo + 512))
        d = np.hypot(xy[rows, 0, None] - xy[None, :, 0], xy[rows, 1, None] - xy[None, :, 1])
        hosted = host[rows] >= 0
        d[hosted] = instance.distances[host[rows[hosted]]]
        d = np.where(np.isfinite(d), d, np.inf)
        d[np.arange(len(rows)), rows] = -1.0  # itself first, dropped below
        near = np.argsort(d, axis=1, kind="stable")[:, 1 : k + 1]
        out[rows] = near
    return out


def swap_search(
    assigner: Assigner,
    current: Assignment,
    neighbours: np.ndarray,
    locked: np.ndarray,
    banned: np.ndarray,
    deadline: float,
    priority: np.ndarray | None = None,
) -> Assignment:
    """First-improvement swaps: open a closed site, close an open one near it.

    Closed sites are tried in order of ``priority`` (highest first; e.g. the
    LP's ``y``), each against its ``PARTNERS`` nearest open, unlocked sites;
    every candidate is re-assigned and costed exactly, and the first that
    lowers the total is kept. Stops at a local optimum or at ``deadline``
    (a :func:`time.perf_counter` value). Sites in ``banned`` never open.
    """
    st = assigner.st
    mask = np.zeros(st.n_sites, dtype=bool)
    mask[current.open_sites] = True
    score = np.zeros(st.n_sites) if priority is None else priority
    improved = True
    while improved and time.perf_counter() < deadline:
        improved = False
        for c in np.argsort(-score, kind="stable"):
            if mask[c] or banned[c]:
                continue
            partners = [o for o in neighbours[c] if mask[o] and not locked[o]][:PARTNERS]
            for o in partners:
                trial = mask.copy()
                trial[o], trial[c] = False, True
                found = assigner.assign(trial, current.site)
                if found is not None and found.cost < current.cost - 1e-6 * abs(current.cost):
                    current, mask, improved = found, trial, True
                    break
            if time.perf_counter() >= deadline:
                break
    return current
