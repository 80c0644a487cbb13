"""An exhaustive reference solver for tiny instances, written from MODEL.md alone.

It shares no code with the engine or the evaluator: it reads the instance's
tables, model and distances, enumerates every set of exactly ``k`` open sites
(every site whose ``status`` is ``open`` or that is kept open among them, none
that is ``closed`` or kept closed) and every assignment of the (body, category)
pairs with spend to those sites, keeps the assignments that meet rules 1-5 and
returns the cheapest. A body with no spend has no pairs: it needs no agency,
and a site it hosts is a site like any other (MODEL.md).

Rules 1, 2, 3 and 5 are applied while listing each unit's options (a unit is a
(body, category) pair, or a whole body when ``split_categories`` is off); rule
4 (capacity) is checked on every enumerated assignment. The costs of all the
assignments of one open set are computed with numpy. With categories split and
no capacity among the open sites, the categories share nothing but the open
set (the fixed costs), so each category's assignments are enumerated on their
own and the cheapest of each added up. The winner is then re-checked and
re-costed by :func:`check` and :func:`cost_of`, plain Python transcriptions of
MODEL.md.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

RADIUS_TOL = 1e-9
CHUNK = 200_000


@dataclass(frozen=True)
class Data:
    """Plain arrays read from an instance."""

    bodies: list[str]
    body_nation: list[str]
    sites: list[str]
    site_nation: list[str]
    site_host: list[int]  # body row hosting each site, -1 for none
    fixed: np.ndarray
    capacity: np.ndarray  # inf where none
    dist: np.ndarray  # (bodies, sites)
    cats: list[str]
    desk: np.ndarray
    dist_rate: np.ndarray
    radius: np.ndarray  # inf where none
    bands: list[list[tuple[float, float, float]]]  # per category: (lower, upper, rate)
    client_body: np.ndarray
    client_cat: np.ndarray
    client_spend: np.ndarray
    same_nation: bool
    split: bool
    must_open: frozenset[int] = frozenset()  # status open, or kept open
    never_open: frozenset[int] = frozenset()  # status closed, or kept closed


@dataclass(frozen=True)
class Solution:
    """The cheapest grouping found: total cost, open sites and each pair's site."""

    total: float
    open_sites: tuple[str, ...]
    assignment: dict[tuple[str, str], str]
    enumerated: int


def read(instance, keep_open: Sequence[str] = (), keep_closed: Sequence[str] = ()) -> Data:
    """Extract the arrays the brute force needs from an ``Instance``.

    ``keep_open`` and ``keep_closed`` are site ids forced open or closed on top
    of ``sites.csv``'s ``status``.
    """
    model = instance.model
    bodies = [str(b) for b in instance.bodies.index]
    sites = [str(s) for s in instance.sites.index]
    row = {b: i for i, b in enumerate(bodies)}
    hosts = []
    for h in instance.sites["body_id"]:
        hosts.append(row[str(h)] if isinstance(h, str) and h in row else -1)
    hosted = [h for h in hosts if h >= 0]
    if len(hosted) != len(set(hosted)):
        raise ValueError("the brute force supports at most one hosted site per body")
    fixed = instance.sites["fixed_cost"].to_numpy(dtype=float)
    fixed = np.where(np.isnan(fixed), model.scenario.agency_fixed_cost, fixed)
    capacity = instance.sites["capacity"].to_numpy(dtype=float)
    capacity = np.where(np.isnan(capacity), np.inf, capacity)
    cats = list(model.categories)
    categories = [model.categories[c] for c in cats]
    spend = instance.spend
    keep = spend["spend"].to_numpy(dtype=float) > 0
    status = [str(v) for v in instance.sites["status"]]
    must = {j for j, s in enumerate(sites) if status[j] == "open" or s in set(keep_open)}
    never = {j for j, s in enumerate(sites) if status[j] == "closed" or s in set(keep_closed)}
    return Data(
        bodies=bodies,
        body_nation=[str(n) for n in instance.bodies["nation"]],
        sites=sites,
        site_nation=[str(n) for n in instance.sites["nation"]],
        site_host=hosts,
        fixed=fixed,
        capacity=capacity,
        dist=np.asarray(instance.distances, dtype=float),
        cats=cats,
        desk=np.array([c.desk_cost for c in categories], dtype=float),
        dist_rate=np.array([c.distance_cost for c in categories], dtype=float),
        radius=np.array([math.inf if c.radius_km is None else c.radius_km for c in categories]),
        bands=[[(b.lower, b.upper, b.rate) for b in c.bands] for c in categories],
        client_body=np.array([row[str(b)] for b in spend["body_id"][keep]], dtype=int),
        client_cat=np.array([cats.index(str(c)) for c in spend["category"][keep]], dtype=int),
        client_spend=spend["spend"].to_numpy(dtype=float)[keep],
        same_nation=bool(model.scenario.same_nation),
        split=bool(model.scenario.split_categories),
        must_open=frozenset(must),
        never_open=frozenset(never),
    )


def purchase(data: Data, c: int, volume):
    """``V - saving_c(V)`` with marginal bands (works on scalars and arrays)."""
    saving = 0.0
    for lower, upper, rate in data.bands[c]:
        saving = saving + rate * np.maximum(0.0, np.minimum(volume, upper) - lower)
    return volume - saving


def allowed(data: Data, b: int, c: int, j: int) -> bool:
    """Rules 2 and 3 for one (body, category) at one site."""
    if not data.dist[b, j] <= data.radius[c] + RADIUS_TOL:
        return False
    return not (data.same_nation and data.body_nation[b] != data.site_nation[j])


def units(data: Data) -> list[list[int]]:
    """The clients moved together: one per client, or one per body (rule 5)."""
    if data.split:
        return [[i] for i in range(len(data.client_body))]
    out: dict[int, list[int]] = {}
    for i, b in enumerate(data.client_body.tolist()):
        out.setdefault(b, []).append(i)
    return list(out.values())


def options(data: Data, groups: list[list[int]], open_set: Sequence[int]) -> list[list[int]]:
    """Each unit's allowed sites among the open ones (rules 1, 2, 3 and 5)."""
    out = []
    for clients in groups:
        b = int(data.client_body[clients[0]])
        own = [j for j in open_set if data.site_host[j] == b]
        candidates = own if own else list(open_set)  # rule 1
        out.append(
            [
                j
                for j in candidates
                if all(allowed(data, b, int(data.client_cat[i]), j) for i in clients)
            ]
        )
    return out


def open_sets(data: Data, level: int | None) -> Iterator[tuple[int, ...]]:
    """Every set of exactly ``level`` sites (every non-empty set when None).

    Each holds every site forced open and none forced closed.
    """
    n = len(data.sites)
    must = sorted(data.must_open)
    free = [j for j in range(n) if j not in data.must_open and j not in data.never_open]
    levels = range(1, n + 1) if level is None else [level]
    for k in levels:
        if k < len(must) or k - len(must) > len(free):
            continue
        for more in itertools.combinations(free, k - len(must)):
            yield tuple(sorted([*must, *more]))


def count(
    instance, level: int | None, keep_open: Sequence[str] = (), keep_closed: Sequence[str] = ()
) -> int:
    """How many assignments :func:`solve` enumerates at ``level``."""
    data = read(instance, keep_open, keep_closed)
    groups = units(data)
    out = 0
    for open_set in open_sets(data, level):
        opts = options(data, groups, open_set)
        out += sum(math.prod(len(opts[u]) for u in part) for part in _parts(data, groups, open_set))
    return out


def _parts(data: Data, groups: list[list[int]], open_set: Sequence[int]) -> list[list[int]]:
    """The units (by position) whose assignments are enumerated together.

    One part per category when categories are split and no open site has a
    capacity (the categories then share nothing but the open set), else one.
    """
    if data.split and np.isinf(data.capacity[list(open_set)]).all():
        by_cat: dict[int, list[int]] = {}
        for u, clients in enumerate(groups):
            by_cat.setdefault(int(data.client_cat[clients[0]]), []).append(u)
        return list(by_cat.values())
    return [list(range(len(groups)))]


def _best_of(
    data: Data, groups: list[list[int]], open_set: tuple[int, ...], opts: list[list[int]]
) -> tuple[float, dict[int, int] | None, int]:
    """The cheapest capacity-feasible assignment of ``groups`` with exactly ``open_set`` open.

    Costs only the clients of ``groups`` and none of the fixed costs; returns
    the cost, each client's site (None when no assignment is feasible) and the
    number of assignments enumerated.
    """
    clients = [i for unit in groups for i in unit]
    if not clients:
        return 0.0, {}, 1
    shape = tuple(len(o) for o in opts)
    total = math.prod(shape)
    sites = np.array(open_set)
    k = len(sites)
    rows = np.array(clients)
    col = {i: n for n, i in enumerate(clients)}
    spend = data.client_spend[rows]
    cat = data.client_cat[rows]
    # distance cost of each client at each open site, (clients, k)
    dcost = (
        data.dist_rate[cat][:, None]
        * spend[:, None]
        / 1e6
        * data.dist[data.client_body[rows]][:, sites]
    )
    # each unit's options as local positions into ``sites``
    local = [np.array([open_set.index(j) for j in o], dtype=np.int64) for o in opts]
    best_cost, best_row = math.inf, None
    for start in range(0, total, CHUNK):
        idx = np.unravel_index(np.arange(start, min(total, start + CHUNK)), shape)
        choice = np.empty((len(idx[0]), len(clients)), dtype=np.int64)
        for u, unit in enumerate(groups):
            for i in unit:
                choice[:, col[i]] = local[u][idx[u]]
        cost = np.take_along_axis(dcost, choice.T, axis=1).sum(axis=0)
        load = np.zeros((len(choice), k))
        for c in range(len(data.cats)):
            mine = np.flatnonzero(cat == c)
            if not len(mine):
                continue
            for a in range(k):
                volume = (choice[:, mine] == a) @ spend[mine]
                load[:, a] += volume
                cost += np.where(volume > 0, data.desk[c], 0.0) + purchase(data, c, volume)
        cap = data.capacity[sites]
        ok = (load <= cap * (1 + 1e-12) + 1e-9).all(axis=1)  # rule 4
        if not ok.any():
            continue
        cost = np.where(ok, cost, np.inf)
        r = int(np.argmin(cost))
        if cost[r] < best_cost:
            best_cost, best_row = float(cost[r]), sites[choice[r]]
    if best_row is None:
        return math.inf, None, total
    return best_cost, dict(zip(clients, best_row.tolist(), strict=True)), total


def _cheapest(
    data: Data, groups: list[list[int]], open_set: tuple[int, ...]
) -> tuple[float, dict[int, int] | None, int]:
    """The cheapest grouping with exactly ``open_set`` open: cost, each client's site, count."""
    opts = options(data, groups, open_set)
    if any(not o for o in opts):
        return math.inf, None, 0
    cost, site, enumerated = float(data.fixed[list(open_set)].sum()), {}, 0
    for part in _parts(data, groups, open_set):
        more, chosen, n = _best_of(
            data, [groups[u] for u in part], open_set, [opts[u] for u in part]
        )
        enumerated += n
        if chosen is None:
            return math.inf, None, enumerated
        cost += more
        site.update(chosen)
    return cost, site, enumerated


def solve(
    instance, level: int | None, keep_open: Sequence[str] = (), keep_closed: Sequence[str] = ()
) -> Solution | None:
    """The cheapest grouping with exactly ``level`` open sites, or None if there is none.

    ``level=None`` lets the number of open sites free (at least one).
    ``keep_open`` and ``keep_closed`` force sites open or closed on top of
    ``sites.csv``'s ``status``.
    """
    data = read(instance, keep_open, keep_closed)
    groups = units(data)
    best: tuple[float, tuple[int, ...], dict[int, int]] | None = None
    enumerated = 0
    for open_set in open_sets(data, level):
        cost, site, n = _cheapest(data, groups, open_set)
        enumerated += n
        if site is not None and (best is None or cost < best[0]):
            best = (cost, open_set, site)
    if best is None:
        return None
    cost, open_set, site = best
    assignment = {
        (data.bodies[int(data.client_body[i])], data.cats[int(data.client_cat[i])]): data.sites[j]
        for i, j in site.items()
    }
    opened = tuple(data.sites[j] for j in open_set)
    problems = check(instance, assignment, opened, keep_open, keep_closed)
    assert not problems, problems
    again = cost_of(instance, assignment, opened)
    assert math.isclose(again, cost, rel_tol=1e-9, abs_tol=1e-6), (again, cost)
    return Solution(again, opened, assignment, enumerated)


def _spend_by_pair(data) -> dict[tuple[str, str], float]:
    """Spend of every (body, category) pair with spend, keyed by ids."""
    return {
        (data.bodies[b], data.cats[c]): s
        for b, c, s in zip(
            data.client_body.tolist(),
            data.client_cat.tolist(),
            data.client_spend.tolist(),
            strict=True,
        )
    }


def check(
    instance,
    assignment: dict[tuple[str, str], str],
    opened: Sequence[str],
    keep_open: Sequence[str] = (),
    keep_closed: Sequence[str] = (),
) -> list[str]:
    """The rules of MODEL.md a grouping breaks (plain Python, one pair at a time).

    Also the sites forced open or closed (``status``, ``keep_open``,
    ``keep_closed``) that are not so in ``opened``.
    """
    data = read(instance, keep_open, keep_closed)
    sites = {s: j for j, s in enumerate(data.sites)}
    bodies = {b: i for i, b in enumerate(data.bodies)}
    cats = {c: i for i, c in enumerate(data.cats)}
    opened_set = set(opened)
    problems = []
    pairs = _spend_by_pair(data)
    if set(assignment) != set(pairs):
        problems.append("the grouping does not cover exactly the pairs with spend")
    load: dict[str, float] = {}
    agencies: dict[str, set[str]] = {}
    for (body, cat), site in assignment.items():
        b, c, j = bodies[body], cats[cat], sites[site]
        if site not in opened_set:
            problems.append(f"{body}/{cat}: site {site} is not open")
        for h in opened:
            if data.site_host[sites[h]] == b and h != site:
                problems.append(f"rule 1: {body} hosts open {h} but buys {cat} at {site}")
        if not data.dist[b, j] <= data.radius[c] + RADIUS_TOL:
            problems.append(f"rule 2: {body}/{cat} at {site} is {data.dist[b, j]} km away")
        if data.same_nation and data.body_nation[b] != data.site_nation[j]:
            problems.append(f"rule 3: {body}/{cat} at {site} in another nation")
        load[site] = load.get(site, 0.0) + pairs.get((body, cat), 0.0)
        agencies.setdefault(body, set()).add(site)
    for site, v in load.items():
        if v > data.capacity[sites[site]] * (1 + 1e-9) + 1e-6:
            problems.append(f"rule 4: {site} buys {v} > {data.capacity[sites[site]]}")
    for j in data.must_open - {sites[s] for s in opened_set}:
        problems.append(f"site {data.sites[j]} is forced open but is not open")
    for j in data.never_open & {sites[s] for s in opened_set}:
        problems.append(f"site {data.sites[j]} is forced closed but is open")
    if not data.split:
        problems += [
            f"rule 5: {b} split over {sorted(s)}" for b, s in agencies.items() if len(s) > 1
        ]
    return problems


def cost_of(instance, assignment: dict[tuple[str, str], str], opened: Sequence[str]) -> float:
    """MODEL.md's total of a grouping (plain Python, one term at a time)."""
    data = read(instance)
    sites = {s: j for j, s in enumerate(data.sites)}
    bodies = {b: i for i, b in enumerate(data.bodies)}
    cats = {c: i for i, c in enumerate(data.cats)}
    spend = _spend_by_pair(data)
    all_open = set(opened) | set(assignment.values())
    agencies = sum(float(data.fixed[sites[s]]) for s in all_open)
    volume: dict[tuple[str, int], float] = {}
    distance = 0.0
    for (body, cat), site in assignment.items():
        s, c = spend[(body, cat)], cats[cat]
        volume[(site, c)] = volume.get((site, c), 0.0) + s
        distance += data.dist_rate[c] * s / 1e6 * data.dist[bodies[body], sites[site]]
    desks = sum(float(data.desk[c]) for (_, c), v in volume.items() if v > 0)
    purchases = 0.0
    for (_, c), v in volume.items():
        saving = sum(rate * max(0.0, min(v, upper) - lower) for lower, upper, rate in data.bands[c])
        purchases += v - saving
    return agencies + desks + purchases + distance
