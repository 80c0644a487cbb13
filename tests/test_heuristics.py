"""The swap local search and its estimates, on real instances."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import optimizer
from optimizer import heuristics, orlib
from optimizer.formulation import never_open, structure
from optimizer.heuristics import Assigner, Assignment, copy_search, swap_search
from optimizer.instance import Instance
from optimizer.synthetic import write_dataset

PMED1 = Path(__file__).resolve().parents[1].parent / "shared/benchmarks/orlib/pmed/pmed1.txt"


def assigner_of(instance: Instance) -> Assigner:
    n = len(instance.sites)
    return Assigner(instance, structure(instance, np.zeros(n, bool), np.zeros(n, bool)))


def start(assigner: Assigner, sites: list[int]) -> Assignment:
    mask = np.zeros(assigner.st.n_sites, dtype=bool)
    mask[sites] = True
    found = assigner.assign(mask)
    assert found is not None
    return found


def test_swap_estimates_are_exact_without_bands_or_desks() -> None:
    """On a p-median instance (linear costs) every estimate is the exact change."""
    instance, _ = orlib.read_pmed(PMED1)
    assigner = assigner_of(instance)
    current = start(assigner, [3, 17, 40, 61, 88])
    mask = np.isin(np.arange(assigner.st.n_sites), current.open_sites)
    none = np.zeros_like(mask)
    delta = assigner.swap_deltas(current, mask, none, none)
    assert delta.shape == (100, 5)
    assert np.isinf(delta[current.open_sites]).all()
    rng = np.random.default_rng(7)
    for opening in rng.choice(np.flatnonzero(~mask), 12, replace=False):
        for column, closing in enumerate(current.open_sites):
            trial = mask.copy()
            trial[opening], trial[closing] = True, False
            found = assigner.assign(trial)
            assert found is not None
            assert abs(delta[opening, column] - (found.cost - current.cost)) < 1e-6


def test_opening_estimates_are_exact_without_bands_or_desks() -> None:
    instance, _ = orlib.read_pmed(PMED1)
    assigner = assigner_of(instance)
    current = start(assigner, [3, 17, 40, 61, 88])
    mask = current.mask(assigner.st.n_sites)
    banned = np.zeros_like(mask)
    banned[50] = True
    delta = assigner.opening_deltas(current, mask, banned)
    assert np.isinf(delta[mask | banned]).all()
    for opening in np.flatnonzero(~mask & ~banned):
        trial = mask.copy()
        trial[opening] = True
        found = assigner.assign(trial)
        assert found is not None
        assert abs(delta[opening] - (found.cost - current.cost)) < 1e-6


def test_add_site_keeps_the_cheapest_of_the_best_estimated_openings() -> None:
    """uk-councils at 190 sites (bands and desks: the estimates are not exact)."""
    instance = optimizer.load("uk-councils")
    assigner = assigner_of(instance)
    st = assigner.st
    banned = never_open(st)
    current = assigner.assign(~banned)
    assert current is not None
    mask = current.mask(st.n_sites)
    while mask.sum() > 190:
        step = heuristics.drop_site(assigner, current, mask, st.must_open)
        assert step is not None
        current, mask = step
    added = heuristics.add_site(assigner, current, mask, banned)
    assert added is not None
    grouping, opened = added
    assert opened.sum() == 191 and (opened >= mask).all()
    costs = []
    deltas = assigner.opening_deltas(current, mask, banned)
    for site in np.argsort(deltas, kind="stable")[: heuristics.DROP_TRIES]:
        assert np.isfinite(deltas[site])
        trial = mask.copy()
        trial[site] = True
        found = assigner.assign(trial, current.site)
        assert found is not None
        costs.append(found.cost)
    assert grouping.cost == min(costs) and min(costs) < costs[0]


def test_locked_and_banned_sites_never_move() -> None:
    instance, _ = orlib.read_pmed(PMED1)
    assigner = assigner_of(instance)
    current = start(assigner, [0, 1, 2, 3, 4])
    locked = np.zeros(100, dtype=bool)
    locked[[0, 1]] = True
    banned = np.ones(100, dtype=bool)
    banned[50:] = False
    found = swap_search(assigner, current, locked, banned)
    assert {0, 1} <= set(found.open_sites.tolist())
    assert not (set(found.open_sites.tolist()) - {0, 1, 2, 3, 4}) & set(range(50))
    assert found.cost < current.cost


def test_swaps_stop_once_the_target_is_reached() -> None:
    instance, _ = orlib.read_pmed(PMED1)
    assigner = assigner_of(instance)
    current = start(assigner, [0, 1, 2, 3, 4])
    none = np.zeros(100, dtype=bool)
    one = swap_search(assigner, current, none, none, moves=1)
    free = swap_search(assigner, current, none, none)
    stopped = swap_search(assigner, current, none, none, target=one.cost)
    assert free.cost < one.cost < current.cost
    assert stopped.cost == one.cost


def test_swaps_reach_a_local_optimum_of_the_exact_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the toy data (bands, desks, host rule): after the widened search no swap improves.

    With no quick scan at all, only the widened one can find the moves.
    """
    monkeypatch.setattr(heuristics, "TRIES", 0)
    instance = optimizer.load("toy")
    assigner = assigner_of(instance)
    st = assigner.st
    banned = never_open(st)
    current = start(assigner, [0, 1, 3, 4])
    found = swap_search(assigner, current, st.must_open, banned, widen=True)
    assert found.cost == 473110.0  # the level-4 optimum (test_curve's toy curve)
    mask = np.isin(np.arange(st.n_sites), found.open_sites)
    for opening, closing in itertools.product(np.flatnonzero(~mask & ~banned), found.open_sites):
        trial = mask.copy()
        trial[opening], trial[closing] = True, False
        other = assigner.assign(trial, found.site)
        assert other is None or other.cost >= found.cost - 1e-6


@pytest.mark.parametrize(("name", "level"), [("pmed1", 10), ("toy", 4), ("uk-councils", 300)])
def test_one_swap_reprices_as_a_full_assignment_does(name: str, level: int) -> None:
    """Nearest.after gives, for every swap, exactly the sites Assigner.cheapest gives.

    pmed1's integer distances tie often (the lower site must win); on the
    toy data and uk-councils the host rule moves clients, and some swaps
    close a client's last reach (both must then say None).
    """
    instance = orlib.read_pmed(PMED1)[0] if name == "pmed1" else optimizer.load(name)
    assigner = assigner_of(instance)
    st = assigner.st
    current = assigner.assign(~never_open(st))
    assert current is not None
    mask = current.mask(st.n_sites)
    while mask.sum() > level:
        step = heuristics.drop_site(assigner, current, mask, st.must_open)
        assert step is not None
        current, mask = step
    near = heuristics.Nearest(assigner, current, mask)
    pairs = list(itertools.product(np.flatnonzero(~mask & ~never_open(st)), current.open_sites))
    unreachable = 0
    for k in np.random.default_rng(5).permutation(len(pairs))[:400]:
        opening, closing = pairs[k]
        trial = mask.copy()
        trial[opening], trial[closing] = True, False
        want = assigner.cheapest(trial, near.rates)
        got = near.after(int(opening), int(closing), trial)
        assert (got is None) == (want is None)
        unreachable += want is None
        if want is not None and got is not None:
            assert np.array_equal(got, want)
    print(name, unreachable)


def ufl_cost(price: np.ndarray, fixed: np.ndarray, open_: np.ndarray) -> float:
    if not open_.any():
        return np.inf
    return float(fixed[open_].sum() + price[:, open_].min(axis=1).sum())


def test_copy_search_ends_where_no_add_drop_or_swap_helps() -> None:
    """Checked by enumerating every neighbour of the result, on random instances."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        price = rng.uniform(1.0, 10.0, (9, 6))
        price[rng.random(price.shape) < 0.2] = np.inf
        price[:, 0] = rng.uniform(1.0, 10.0, 9)  # every client reaches facility 0
        fixed = rng.uniform(0.0, 8.0, 6)
        start_open = rng.random(6) < 0.5
        start_open[0] = True
        chosen = copy_search(price, fixed, start_open)
        open_ = np.zeros(6, dtype=bool)
        open_[chosen] = True
        cost = ufl_cost(price, fixed, open_)
        assert cost <= ufl_cost(price, fixed, start_open) + 1e-9
        assert np.allclose(price[np.arange(9), chosen], price[:, open_].min(axis=1))
        swaps = itertools.product(np.flatnonzero(open_), np.flatnonzero(~open_))
        for flip in itertools.chain(([j] for j in range(6)), swaps):
            other = open_.copy()
            other[list(flip)] = ~other[list(flip)]
            assert ufl_cost(price, fixed, other) >= cost - 1e-9


def test_refine_finds_the_large_agencies_marginal_rates_miss() -> None:
    """uk-councils, the sites of a level-282 grouping: cheaper, and the evaluator agrees."""
    instance = optimizer.load("uk-councils")
    assigner = assigner_of(instance)
    mask = np.ones(assigner.st.n_sites, dtype=bool)
    full_price = np.zeros((len(mask), assigner.n_cats))
    for site in np.random.default_rng(0).permutation(assigner.st.n_sites):
        mask[site] = False
        if mask.sum() < 282 or assigner.cheapest(mask, full_price) is None:
            mask[site] = True
    plain = assigner.assign(mask)
    assert plain is not None and len(plain.open_sites) == 282
    refined = assigner.refine(plain)
    assert refined.cost < plain.cost - 1e7  # GBP 62m a year on this grouping
    table = pd.DataFrame(
        {
            "body_id": instance.bodies.index.to_numpy()[assigner.st.client_body],
            "category": np.array(instance.categories)[assigner.st.client_cat],
            "site_id": instance.sites.index.to_numpy()[refined.site],
        }
    )
    sites = instance.sites.index.to_numpy()[refined.open_sites].tolist()
    check = optimizer.evaluate(instance, table, open_sites=sites)
    assert check.feasible
    assert abs(check.total - refined.cost) <= 1e-6 * check.total


def test_closed_sites_act_as_if_absent(tmp_path: Path) -> None:
    """With sites closed, the heuristics keep rows for the others only and move as without them.

    The same instance with its closed sites deleted from ``sites.csv`` must
    give the same groupings (by site id) through a greedy drop, a swap
    search and the estimates of openings.
    """
    folder = write_dataset(tmp_path / "synth", 300, seed=2, sites=15)
    full = optimizer.load(folder, folder / "model.toml")
    kept = (full.sites["status"] != "closed").to_numpy()
    absent = dataclasses.replace(full, sites=full.sites[kept], distances=full.distances[:, kept])
    runs = []
    for instance in (full, absent):
        st = structure(instance)
        assigner = Assigner(instance, st)
        assert assigner.by_site.shape == (int(kept.sum()), st.n_clients)
        ids = instance.sites.index.to_numpy()
        mask, locked, banned = ~never_open(st), st.must_open, never_open(st)
        current = assigner.assign(mask)
        assert current is not None
        seen = [(ids[current.site], current.cost)]
        for _ in range(4):
            step = heuristics.drop_site(assigner, current, mask, locked)
            assert step is not None
            current, mask = step
            seen.append((ids[current.site], current.cost))
        opening = assigner.opening_deltas(current, mask, banned)
        seen.append((ids[np.isfinite(opening)], float(opening[np.isfinite(opening)].sum())))
        found = swap_search(assigner, current, locked, banned, moves=3)
        seen.append((ids[found.site], found.cost))
        runs.append(seen)
    for (sites, cost), (other_sites, other_cost) in zip(*runs, strict=True):
        assert sites.tolist() == other_sites.tolist()
        assert cost == pytest.approx(other_cost, rel=1e-12)
