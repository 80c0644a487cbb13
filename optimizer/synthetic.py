"""Seeded synthetic instances of any size, in the public data contract.

For benchmarks and trials at scale (thousands of schools, NHS trusts,
police and fire services, councils and colleges), not for conclusions: the
places are real, the bodies and their spend are made up.

* Location: each nation gets its share of the bodies (England 84%, Scotland
  8%, Wales 5%, Northern Ireland 3%, about as its population); each body
  sits near one of the nation's towns (:data:`TOWNS`, British National Grid
  km, Northern Ireland's towns on the same grid), picked in proportion to the
  town's weight, with a normal offset of the town's spread.
* Kind and size: a tier is drawn for each body (:data:`TIERS`: share of
  bodies, median spend, log-normal sigma), so sizes are heavy-tailed: a
  median school buys under GBP 1m a year, a large NHS trust GBP 1bn.
* Spend: the body's total is split over categories by its tier's shares,
  each times a log-normal factor (sigma :data:`MIX_SIGMA`), renormalised.
* Model: :data:`MODEL` (seven categories; finite radii everywhere, 70 to
  200 km), written as ``model.toml``. The radii are fixed in km, so each
  body reaches more sites as the bodies grow denser: the allowed
  body-agency-band pairs grow with the square of the bodies (2.8m at 1,000
  bodies, 11.4m at 2,000, 72.8m at 5,000).
* Sites: every body's, open to agencies; or, with ``sites``, only the
  largest bodies' and those of any body they leave out of reach, the rest
  ``closed`` (:func:`candidate_sites`), as when agencies may sit at councils
  and trusts but not at every school. At 5,000 bodies and 400 such sites,
  412 are candidates and the pairs number 6.1m.

The same ``(bodies, seed)`` gives the same files on every machine.

Examples
--------
>>> bodies, spend = generate(40, seed=1)
>>> len(bodies), sorted(bodies["nation"].unique())
(40, ['England', 'Northern Ireland', 'Scotland', 'Wales'])
>>> bool((spend["spend"] > 0).all())
True
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import dijkstra

from optimizer.errors import DataValidationError
from optimizer.network import proximity_edges
from optimizer.results import atomic_write_text

NATION_SHARES = {"England": 0.84, "Scotland": 0.08, "Wales": 0.05, "Northern Ireland": 0.03}

# nation, town, x_km, y_km (British National Grid), weight, spread_km
TOWNS: tuple[tuple[str, str, float, float, float, float], ...] = (
    ("England", "London", 530, 180, 9.0, 18),
    ("England", "Birmingham", 407, 287, 3.0, 14),
    ("England", "Manchester", 384, 398, 3.0, 14),
    ("England", "Leeds", 430, 433, 2.2, 14),
    ("England", "Liverpool", 335, 390, 1.5, 10),
    ("England", "Sheffield", 435, 387, 1.4, 10),
    ("England", "Newcastle", 425, 564, 1.5, 14),
    ("England", "Middlesbrough", 450, 518, 0.7, 12),
    ("England", "Bristol", 359, 173, 1.4, 14),
    ("England", "Nottingham", 457, 340, 1.3, 14),
    ("England", "Leicester", 458, 304, 1.0, 14),
    ("England", "Stoke-on-Trent", 388, 347, 0.8, 14),
    ("England", "Preston", 354, 429, 1.0, 18),
    ("England", "Hull", 509, 429, 0.7, 16),
    ("England", "York", 460, 452, 0.7, 22),
    ("England", "Lincoln", 497, 371, 0.7, 30),
    ("England", "Norwich", 623, 308, 1.0, 28),
    ("England", "Ipswich", 616, 244, 0.7, 22),
    ("England", "Cambridge", 545, 258, 1.0, 22),
    ("England", "Northampton", 475, 260, 0.9, 18),
    ("England", "Oxford", 451, 206, 1.0, 22),
    ("England", "Reading", 471, 173, 1.1, 14),
    ("England", "Maidstone", 576, 155, 1.6, 24),
    ("England", "Brighton", 531, 105, 1.1, 16),
    ("England", "Southampton", 442, 112, 1.6, 18),
    ("England", "Gloucester", 383, 218, 0.8, 22),
    ("England", "Shrewsbury", 349, 312, 0.6, 26),
    ("England", "Exeter", 292, 92, 1.0, 30),
    ("England", "Plymouth", 248, 56, 0.7, 20),
    ("England", "Truro", 183, 45, 0.5, 22),
    ("England", "Carlisle", 340, 556, 0.5, 30),
    ("Scotland", "Glasgow", 259, 665, 3.0, 14),
    ("Scotland", "Edinburgh", 325, 673, 2.0, 12),
    ("Scotland", "Stirling", 279, 693, 0.6, 14),
    ("Scotland", "Dundee", 340, 730, 0.8, 14),
    ("Scotland", "Perth", 311, 723, 0.5, 22),
    ("Scotland", "Aberdeen", 394, 806, 1.0, 18),
    ("Scotland", "Inverness", 266, 845, 0.6, 30),
    ("Scotland", "Dumfries", 297, 576, 0.4, 24),
    ("Scotland", "Ayr", 234, 622, 0.6, 14),
    ("Wales", "Cardiff", 318, 176, 2.0, 12),
    ("Wales", "Newport", 331, 188, 0.7, 10),
    ("Wales", "Swansea", 265, 193, 1.1, 14),
    ("Wales", "Carmarthen", 241, 220, 0.4, 20),
    ("Wales", "Aberystwyth", 258, 281, 0.3, 22),
    ("Wales", "Bangor", 258, 372, 0.5, 20),
    ("Wales", "Wrexham", 333, 350, 0.7, 16),
    ("Northern Ireland", "Belfast", 146, 530, 3.0, 12),
    ("Northern Ireland", "Ballymena", 126, 561, 0.6, 14),
    ("Northern Ireland", "Newry", 117, 484, 0.6, 14),
    ("Northern Ireland", "Armagh", 98, 505, 0.5, 14),
    ("Northern Ireland", "Derry", 61, 580, 0.8, 14),
    ("Northern Ireland", "Omagh", 58, 536, 0.4, 16),
    ("Northern Ireland", "Enniskillen", 34, 509, 0.3, 16),
)

CATEGORIES = (
    "care",
    "clinical_supplies",
    "construction",
    "facilities_energy",
    "ict",
    "professional_services",
    "transport_fleet",
)

# tier: share of bodies, median spend GBP/yr, log-normal sigma, category shares (CATEGORIES order)
TIERS: dict[str, tuple[float, float, float, tuple[float, ...]]] = {
    "school": (0.55, 0.8e6, 0.6, (0, 0, 0.20, 0.40, 0.20, 0.15, 0.05)),
    "college": (0.10, 6e6, 0.7, (0, 0, 0.25, 0.30, 0.25, 0.20, 0)),
    "council": (0.15, 40e6, 0.9, (0.45, 0, 0.20, 0.08, 0.05, 0.07, 0.15)),
    "nhs_trust": (0.10, 120e6, 0.7, (0.05, 0.45, 0.10, 0.15, 0.12, 0.13, 0)),
    "police": (0.05, 40e6, 0.6, (0, 0, 0.10, 0.20, 0.30, 0.20, 0.20)),
    "fire": (0.05, 8e6, 0.5, (0, 0, 0.15, 0.20, 0.15, 0.15, 0.35)),
}
MIX_SIGMA = 0.25

MODEL = """\
# The model of a synthetic instance (optimizer/synthetic.py): illustrative
# figures for bodies from schools to NHS trusts, not a calibrated model.
# Every category has a finite radius (regional frameworks even for ICT): a
# body may buy only from agencies within it.

[scenario]
agency_fixed_cost = 600000
same_nation = true
split_categories = true
description = "{description}"

[categories.care]
desk_cost = 200000
distance_cost = 50.0
radius_km = 70.0
bands = [[0, 50e6, 0.0], [50e6, 250e6, 0.01], [250e6, inf, 0.02]]

[categories.clinical_supplies]
desk_cost = 250000
distance_cost = 5.0
radius_km = 150.0
bands = [[0, 20e6, 0.0], [20e6, 200e6, 0.04], [200e6, inf, 0.07]]

[categories.construction]
desk_cost = 150000
distance_cost = 20.0
radius_km = 100.0
bands = [[0, 20e6, 0.0], [20e6, 200e6, 0.03], [200e6, inf, 0.05]]

[categories.facilities_energy]
desk_cost = 100000
distance_cost = 5.0
radius_km = 150.0
bands = [[0, 5e6, 0.0], [5e6, 50e6, 0.05], [50e6, inf, 0.08]]

[categories.ict]
desk_cost = 150000
distance_cost = 0.0
radius_km = 200.0
bands = [[0, 5e6, 0.0], [5e6, 50e6, 0.05], [50e6, inf, 0.10]]

[categories.professional_services]
desk_cost = 100000
distance_cost = 0.0
radius_km = 200.0
bands = [[0, 2e6, 0.0], [2e6, 20e6, 0.05], [20e6, inf, 0.10]]

[categories.transport_fleet]
desk_cost = 100000
distance_cost = 20.0
radius_km = 100.0
bands = [[0, 5e6, 0.0], [5e6, 50e6, 0.04], [50e6, inf, 0.06]]
"""


def check_request(n_bodies: int, seed: int, sites: int | None = None) -> None:
    """Refuse a size, seed or number of sites no instance can be made of.

    Raises
    ------
    DataValidationError
        Naming the option: fewer bodies than nations, a negative seed, or
        sites outside 1 to the number of bodies.
    """
    problems = []
    if n_bodies < len(NATION_SHARES):
        problems.append(
            f"(--bodies) | at least {len(NATION_SHARES)} (one per nation), got {n_bodies}"
        )
    if seed < 0:
        problems.append(f"(--seed) | must be a whole number >= 0, got {seed}")
    if sites is not None and not 1 <= sites <= n_bodies:
        problems.append(f"(--sites) | between 1 and the number of bodies ({n_bodies}), got {sites}")
    if problems:
        raise DataValidationError(problems)


def generate(n_bodies: int, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``bodies.csv`` and ``spend.csv`` tables of a synthetic instance.

    Parameters
    ----------
    n_bodies : int
        At least one per nation (4).
    seed : int
        The generator's seed.

    Returns
    -------
    bodies, spend : DataFrame
        ``body_id,name,nation,x_km,y_km,tier`` and ``body_id,category,spend``.
    """
    check_request(n_bodies, seed)
    rng = np.random.default_rng(seed)
    towns = pd.DataFrame(TOWNS, columns=["nation", "town", "x", "y", "weight", "spread"])
    picked = np.concatenate(
        [
            _towns(rng, towns[towns["nation"] == nation], count)
            for nation, count in _counts(n_bodies)
        ]
    )
    chosen = towns.iloc[picked].reset_index(drop=True)
    offset = rng.standard_normal((n_bodies, 2)) * chosen[["spread"]].to_numpy()
    names = list(TIERS)
    tier = np.array(names)[rng.choice(len(names), n_bodies, p=[TIERS[t][0] for t in names])]
    ids = [f"SYN{i:05d}" for i in range(1, n_bodies + 1)]
    bodies = pd.DataFrame(
        {
            "body_id": ids,
            "name": [
                f"{t.replace('_', ' ')} {i}, {town}"
                for i, t, town in zip(range(1, n_bodies + 1), tier, chosen["town"], strict=True)
            ],
            "nation": chosen["nation"],
            "x_km": (chosen["x"] + offset[:, 0]).round(3),
            "y_km": (chosen["y"] + offset[:, 1]).round(3),
            "tier": tier,
        }
    )
    return bodies, _spend(rng, bodies)


def _counts(n_bodies: int) -> list[tuple[str, int]]:
    """Bodies per nation by largest remainder, at least one each."""
    exact = {k: 1 + v * (n_bodies - len(NATION_SHARES)) for k, v in NATION_SHARES.items()}
    counts = {k: int(v) for k, v in exact.items()}
    short = n_bodies - sum(counts.values())
    for nation in sorted(exact, key=lambda k: counts[k] - exact[k])[:short]:
        counts[nation] += 1
    return list(counts.items())


def _towns(rng: np.random.Generator, towns: pd.DataFrame, count: int) -> np.ndarray:
    weight = towns["weight"].to_numpy(dtype=float)
    return np.asarray(
        towns.index.to_numpy()[rng.choice(len(towns), count, p=weight / weight.sum())]
    )


def _spend(rng: np.random.Generator, bodies: pd.DataFrame) -> pd.DataFrame:
    """Each body's total (log-normal about its tier's median) split over categories."""
    tiers = bodies["tier"].to_numpy()
    median = np.array([TIERS[t][1] for t in tiers])
    sigma = np.array([TIERS[t][2] for t in tiers])
    total = median * np.exp(sigma * rng.standard_normal(len(bodies)))
    shares = np.array([TIERS[t][3] for t in tiers])
    mix = shares * np.exp(MIX_SIGMA * rng.standard_normal(shares.shape))
    amounts = (total[:, None] * mix / mix.sum(axis=1, keepdims=True)).round(0)
    body, cat = np.nonzero(amounts > 0)
    return pd.DataFrame(
        {
            "body_id": bodies["body_id"].to_numpy()[body],
            "category": np.array(CATEGORIES)[cat],
            "spend": amounts[body, cat].astype(np.int64),
        }
    )


def candidate_sites(bodies: pd.DataFrame, spend: pd.DataFrame, count: int) -> pd.DataFrame:
    """A ``sites.csv`` table: every body's site, open to agencies at the largest bodies only.

    Each body hosts a site (``site_id`` and ``body_id`` the body's id), so
    the status quo, every body buying alone, stays defined. The sites of the
    ``count`` bodies of most spend are candidates; then, while some body lies
    beyond the smallest radius of :data:`MODEL` from every candidate of its
    nation, the site of the body of most spend among them becomes one too,
    so that every body can buy every category. The rest are ``closed``.
    Distances are shortest paths on the network the loader generates over
    the bodies (:func:`optimizer.network.proximity_edges`).
    """
    if not 1 <= count <= len(bodies):
        raise DataValidationError(
            [f"(--sites) | between 1 and the number of bodies ({len(bodies)}), got {count}"]
        )
    total = spend.groupby("body_id")["spend"].sum().reindex(bodies["body_id"]).fillna(0.0)
    rank = np.argsort(-total.to_numpy(), kind="stable")  # most spend first
    chosen = np.zeros(len(bodies), dtype=bool)
    chosen[rank[:count]] = True
    network, radius = _network(bodies), _smallest_radius()
    nation = bodies["nation"].to_numpy()
    for name in NATION_SHARES:
        mine = nation == name
        reach = _nearest(network, np.flatnonzero(mine & chosen), len(bodies))
        while (far := mine & (reach > radius)).any():
            body = next(b for b in rank if far[b])
            chosen[body] = True
            reach = np.minimum(reach, _nearest(network, np.array([body]), len(bodies)))
    return pd.DataFrame(
        {
            "site_id": bodies["body_id"],
            "name": bodies["name"],
            "nation": bodies["nation"],
            "x_km": bodies["x_km"],
            "y_km": bodies["y_km"],
            "body_id": bodies["body_id"],
            "status": np.where(chosen, "candidate", "closed"),
        }
    )


def _network(bodies: pd.DataFrame) -> csr_matrix:
    """The loader's generated network over the bodies, as a symmetric sparse matrix of km."""
    edges = proximity_edges(bodies.set_index("body_id")[["x_km", "y_km"]])
    at = pd.Index(bodies["body_id"])
    u, v = at.get_indexer(edges["source"]), at.get_indexer(edges["target"])
    km = edges["km"].to_numpy(dtype=float)
    n = len(bodies)
    return coo_matrix((np.r_[km, km], (np.r_[u, v], np.r_[v, u])), shape=(n, n)).tocsr()


def _nearest(network: csr_matrix, sources: np.ndarray, n: int) -> np.ndarray:
    """Each body's km to the nearest of ``sources`` (inf with none)."""
    if not len(sources):
        return np.full(n, np.inf)
    return np.asarray(dijkstra(network, indices=sources, min_only=True), dtype=float)


def _candidates(sites: pd.DataFrame) -> int:
    """How many sites of a ``sites.csv`` table are candidates."""
    return int((sites["status"] == "candidate").sum())


def _smallest_radius() -> float:
    """The smallest category radius of :data:`MODEL`, in km."""
    model = tomllib.loads(MODEL.format(description=""))
    return float(min(c["radius_km"] for c in model["categories"].values()))


def write_dataset(folder: Path, n_bodies: int, seed: int = 1, sites: int | None = None) -> Path:
    """Write a synthetic dataset folder: ``bodies.csv``, ``spend.csv``, ``model.toml``, README.

    With ``sites``, also ``sites.csv`` (:func:`candidate_sites`): agencies
    may open at the sites of the ``sites`` largest bodies and of any body
    they leave out of reach, the others closed; without, at every body.
    Load it with ``optimizer.load(folder, folder / "model.toml")``.
    """
    check_request(n_bodies, seed, sites)
    bodies, spend = generate(n_bodies, seed)
    table = None if sites is None else candidate_sites(bodies, spend, sites)
    described = f"Synthetic UK public bodies: {n_bodies} bodies, seed {seed}."
    if table is not None:
        described += f" {_candidates(table)} candidate sites."
    atomic_write_text(folder / "bodies.csv", bodies.to_csv(index=False, lineterminator="\n"))
    atomic_write_text(folder / "spend.csv", spend.to_csv(index=False, lineterminator="\n"))
    if table is not None:
        atomic_write_text(folder / "sites.csv", table.to_csv(index=False, lineterminator="\n"))
    atomic_write_text(folder / "model.toml", MODEL.format(description=described))
    atomic_write_text(folder / "README.md", _readme(folder, bodies, spend, seed, table))
    return folder


def _readme(
    folder: Path, bodies: pd.DataFrame, spend: pd.DataFrame, seed: int, sites: pd.DataFrame | None
) -> str:
    tiers = bodies["tier"].value_counts().reindex(list(TIERS)).fillna(0).astype(int)
    nations = bodies["nation"].value_counts().reindex(list(NATION_SHARES)).fillna(0).astype(int)
    listed = ", ".join(f"{k} {v}" for k, v in tiers.items())
    where = ", ".join(f"{k} {v}" for k, v in nations.items())
    return (
        f"# Synthetic instance: {len(bodies)} bodies, seed {seed}\n\n"
        "Made up by `consolidate datasets synth` (optimizer/synthetic.py) for benchmarks and\n"
        "trials at scale: the towns are real, the bodies and their spend are not.\n\n"
        f"* Bodies by tier: {listed}.\n"
        f"* Bodies by nation: {where}.\n"
        f"* Spend: GBP {spend['spend'].sum() / 1e9:,.1f}bn/yr in {spend['category'].nunique()}"
        " categories.\n"
        + (
            "* Candidate sites: every body.\n\n"
            if sites is None
            else f"* Candidate sites: {_candidates(sites)} (`sites.csv`; the others closed): the"
            " largest\n  bodies' and those of every body they leave out of reach.\n\n"
        )
        + f"Run: `consolidate curve --data {folder} --model {folder / 'model.toml'} --out DIR`\n"
    )
