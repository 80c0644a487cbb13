"""Fast incumbents: assign clients to a set of open agencies, and cost it.

Given the open sites, each client (body, category) buys through an allowed
open site; the band each agency reaches depends on everyone's choice, so the
assignment iterates: price every agency at the marginal rate its current
volume earns, move every client to its cheapest agency, repeat until stable.
The cost is MODEL.md's, computed from arrays (the evaluator re-checks it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optimizer.formulation import Structure
from optimizer.instance import Instance

ROUNDS = 12


@dataclass(frozen=True)
class Assignment:
    """Each client's site row, and the MODEL.md cost of the grouping."""

    site: np.ndarray
    cost: float
    open_sites: np.ndarray


class Assigner:
    """Pre-computed (client, allowed site) pairs for repeated assignments.

    Parameters
    ----------
    instance : Instance
    st : Structure
        Built from the same instance.
    """

    def __init__(self, instance: Instance, st: Structure) -> None:
        self.st = st
        cats = list(instance.model.categories.values())
        self.desk = np.array([c.desk_cost for c in cats])
        self.dist_rate = np.array([c.distance_cost for c in cats])
        self.lowers = [np.array([b.lower for b in c.bands]) for c in cats]
        self.rates = [np.array([b.rate for b in c.bands]) for c in cats]
        self.cats = cats
        band0 = st.copy_band[st.lst_copy] == 0
        seg = np.repeat(np.arange(st.n_clients), np.diff(st.ptr))
        hseg = np.repeat(np.arange(st.n_clients), np.diff(st.host_ptr))
        hband0 = st.copy_band[st.host_copy] == 0
        self.pair_client = np.r_[seg[band0], hseg[hband0]]
        self.pair_site = np.r_[st.copy_site[st.lst_copy[band0]], st.copy_site[st.host_copy[hband0]]]
        body = st.client_body[self.pair_client]
        cat = st.client_cat[self.pair_client]
        spend = st.client_spend[self.pair_client]
        self.pair_base = spend * (1 + self.dist_rate[cat] * instance.distances[body, self.pair_site] / 1e6)
        self.pair_dist = self.pair_base - spend
        self.pair_host = st.client_host[self.pair_client] == self.pair_site
        self.pair_key = self.pair_client * st.n_sites + self.pair_site
        order = np.argsort(self.pair_key, kind="stable")
        for name in ("pair_client", "pair_site", "pair_base", "pair_dist", "pair_host", "pair_key"):
            setattr(self, name, getattr(self, name)[order])
        self.n_cats = len(cats)

    def assign(self, open_mask: np.ndarray) -> Assignment | None:
        """Return a good grouping with exactly the sites in ``open_mask`` open, or None."""
        st = self.st
        host_open = np.zeros(st.n_clients, dtype=bool)
        has_host = st.client_host >= 0
        host_open[has_host] = open_mask[st.client_host[has_host]]
        usable = open_mask[self.pair_site] & (~host_open[self.pair_client] | self.pair_host)
        clients = self.pair_client[usable]
        if len(np.unique(clients)) < st.n_clients:
            return None
        sites = self.pair_site[usable]
        base = self.pair_base[usable]
        spend = st.client_spend[clients]
        group = sites * self.n_cats + st.client_cat[clients]
        discount = np.zeros(len(sites))
        best: Assignment | None = None
        for _ in range(ROUNDS):
            choice = _argmin_per_client(clients, base - spend * discount, st.n_clients)
            site = sites[choice]
            cost = self.cost(site, open_mask)
            if best is not None and cost >= best.cost - 1e-9:
                break
            best = Assignment(site, cost, np.flatnonzero(open_mask))
            discount = self._marginal_rates(site)[group]
        return best

    def _marginal_rates(self, site: np.ndarray) -> np.ndarray:
        """The marginal rate each (site, category) earns at its current volume."""
        st = self.st
        volume = np.zeros(st.n_sites * self.n_cats)
        np.add.at(volume, site * self.n_cats + st.client_cat, st.client_spend)
        rate = np.zeros_like(volume)
        cat_of = np.arange(len(volume)) % self.n_cats
        for c in range(self.n_cats):
            sel = cat_of == c
            band = np.searchsorted(self.lowers[c], volume[sel], side="left") - 1
            rate[sel] = self.rates[c][np.maximum(band, 0)]
        return rate

    def copies_of(self, site: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The band copy each used (site, category) prices at, and each client's cost there.

        Volumes exactly on a band's lower edge price in the band below (the
        same cost), so the copy always exists.
        """
        st = self.st
        key = site * self.n_cats + st.client_cat
        volume = np.zeros(st.n_sites * self.n_cats)
        np.add.at(volume, key, st.client_spend)
        band = np.zeros(len(volume), dtype=int)
        cat_of = np.arange(len(volume)) % self.n_cats
        for c in range(self.n_cats):
            sel = cat_of == c
            band[sel] = np.maximum(np.searchsorted(self.lowers[c], volume[sel], side="left") - 1, 0)
        n_bands = max(len(r) for r in self.rates)
        copy_key = (st.copy_site * self.n_cats + st.copy_cat) * n_bands + st.copy_band
        used = np.unique(key)
        copies = np.searchsorted(copy_key, used * n_bands + band[used])
        rate = np.array([self.rates[c][band[k]] for c, k in zip(st.client_cat.tolist(), key.tolist(), strict=True)])
        pos = np.searchsorted(self.pair_key, np.arange(st.n_clients) * st.n_sites + site)
        return copies, st.client_spend * (1 - rate) + self.pair_dist[pos]

    def cost(self, site: np.ndarray, open_mask: np.ndarray) -> float:
        """MODEL.md total of clients at ``site`` with the sites in ``open_mask`` open."""
        st = self.st
        key = site * self.n_cats + st.client_cat
        volume = np.zeros(st.n_sites * self.n_cats)
        np.add.at(volume, key, st.client_spend)
        used = np.flatnonzero(volume > 0)
        cat = used % self.n_cats
        purchases = sum(
            v - self.cats[c].saving(v) for v, c in zip(volume[used].tolist(), cat.tolist(), strict=True)
        )
        total = float(st.site_fixed[open_mask].sum()) + float(self.desk[cat].sum()) + purchases
        return total + self._distance(site)

    def _distance(self, site: np.ndarray) -> float:
        st = self.st
        pos = np.searchsorted(self.pair_key, np.arange(st.n_clients) * st.n_sites + site)
        return float(self.pair_dist[pos].sum())


def _argmin_per_client(clients: np.ndarray, cost: np.ndarray, n_clients: int) -> np.ndarray:
    """Index (into the pair arrays) of each client's cheapest pair."""
    order = np.lexsort((cost, clients))
    first = np.r_[True, clients[order][1:] != clients[order][:-1]]
    picked = order[first]
    assert len(picked) == n_clients
    return picked
