"""Tests of the uk-councils builder on the real reference packages (no mocks)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from conftest import CliRunner
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from optimizer.curve import status_quo
from optimizer.engine import purchase_floor
from optimizer.instance import load_instance
from optimizer.resources import data_path
from optimizer.schema import load_model
from optimizer.solve import DEFAULT_GAP
from optimizer.uk import (
    CIRCUITY,
    build_uk_councils,
    district_population,
    read_spend_model,
    uk_bodies,
)

MODEL = data_path("models", "uk-default.toml")
COUNTIES = {
    "Cambridgeshire", "Derbyshire", "Devon", "East Sussex", "Essex", "Gloucestershire",
    "Hampshire", "Hertfordshire", "Kent", "Lancashire", "Leicestershire", "Lincolnshire",
    "Norfolk", "Nottinghamshire", "Oxfordshire", "Staffordshire", "Suffolk", "Surrey",
    "Warwickshire", "West Sussex", "Worcestershire",
}
# National totals, GBP bn a year: the ranges documented in datasets/uk-councils/README.md.
TOTAL_RANGES = {
    "England": (35.0, 50.0),
    "Scotland": (3.0, 5.0),
    "Wales": (1.8, 3.0),
    "Northern Ireland": (0.15, 0.4),
}
UK_RANGE = (40.0, 60.0)
KENT = ["E07000105", "E07000106", "E07000107", "E07000108", "E07000109", "E07000110",
        "E07000111", "E07000112", "E07000113", "E07000114", "E07000115", "E07000116"]
# Published mid-2023 population (ONS, NRS, NISRA; ../shared/CONTEXT.md).
POPULATION = {
    "England": 57_690_300,
    "Wales": 3_164_400,
    "Scotland": 5_490_100,
    "Northern Ireland": 1_920_400,
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ukc")
    build_uk_councils(folder, MODEL)
    return folder


@pytest.fixture(scope="module")
def bodies(built: Path) -> pd.DataFrame:
    return pd.read_csv(built / "bodies.csv", dtype={"body_id": str})


@pytest.fixture(scope="module")
def spend(built: Path, bodies: pd.DataFrame) -> pd.DataFrame:
    frame = pd.read_csv(built / "spend.csv")
    return frame.merge(bodies[["body_id", "nation", "tier"]], on="body_id")


@pytest.fixture(scope="module")
def edges(built: Path) -> pd.DataFrame:
    return pd.read_csv(built / "edges.csv")


Km = Callable[[str, str], float]


@pytest.fixture(scope="module")
def distance(bodies: pd.DataFrame, edges: pd.DataFrame) -> Km:
    """Shortest-path km between two bodies over the edges.csv that was written."""
    ids = bodies["body_id"].tolist()
    pos = {body: i for i, body in enumerate(ids)}
    u = edges["source"].map(pos).to_numpy()
    v = edges["target"].map(pos).to_numpy()
    w = edges["km"].to_numpy()
    matrix = coo_matrix((np.r_[w, w], (np.r_[u, v], np.r_[v, u])), shape=(len(ids), len(ids)))
    table = np.asarray(dijkstra(matrix.tocsr(), directed=False))
    return lambda a, b: float(table[pos[a], pos[b]])


def _straight(bodies: pd.DataFrame, a: str, b: str) -> float:
    xy = bodies.set_index("body_id")[["x_km", "y_km"]].to_numpy()
    pos = {body: i for i, body in enumerate(bodies["body_id"])}
    return float(np.hypot(*(xy[pos[a]] - xy[pos[b]])))


# ---------------------------------------------------------------------- bodies


def test_body_count_is_361_districts_and_21_counties(bodies: pd.DataFrame) -> None:
    assert len(bodies) == 382
    assert (bodies["tier"] != "county").sum() == 361
    counties = bodies[bodies["tier"] == "county"]
    assert set(counties["name"]) == COUNTIES
    assert counties["body_id"].str.startswith("E10").all()


def test_bodies_contract(bodies: pd.DataFrame) -> None:
    columns = ["body_id", "name", "nation", "x_km", "y_km", "tier", "postcodes", "population"]
    assert list(bodies.columns) == columns
    assert bodies["body_id"].is_unique
    assert bodies["body_id"].tolist() == sorted(bodies["body_id"])
    assert bodies["name"].str.len().min() > 0
    assert set(bodies["tier"]) == {
        "county", "district", "unitary", "metropolitan", "london_borough",
        "scottish", "welsh", "northern_irish",
    }
    assert (bodies["postcodes"] > 0).all()
    assert bodies["x_km"].between(0, 700).all()
    assert bodies["y_km"].between(0, 1250).all()


def test_all_four_nations(bodies: pd.DataFrame) -> None:
    counts = bodies["nation"].value_counts().to_dict()
    assert counts == {"England": 317, "Scotland": 32, "Wales": 22, "Northern Ireland": 11}


def test_2023_reorganisations(bodies: pd.DataFrame) -> None:
    names = bodies.set_index("body_id")["name"]
    assert names["E06000063"] == "Cumberland"
    assert names["E06000064"] == "Westmorland and Furness"
    assert names["E06000065"] == "North Yorkshire"
    assert names["E06000066"] == "Somerset"
    gone = {"E10000006", "E10000023", "E10000027", "E07000026", "E07000163", "E07000187",
            "E07000246", "E08000016", "E08000019"}
    assert not gone & set(bodies["body_id"])


def test_northern_ireland_is_on_the_british_grid(bodies: pd.DataFrame) -> None:
    belfast = bodies.set_index("body_id").loc["N09000003"]
    # Belfast city centre is at about E 146 km, N 530 km on the British grid.
    assert abs(belfast["x_km"] - 146) < 10
    assert abs(belfast["y_km"] - 530) < 10


def test_county_sits_at_its_districts_weighted_centroid(bodies: pd.DataFrame) -> None:
    kent = bodies.set_index("body_id").loc["E10000016"]
    members = bodies[bodies["body_id"].isin(KENT)]
    assert kent["postcodes"] == members["postcodes"].sum()
    weights = members["postcodes"] / members["postcodes"].sum()
    assert kent["x_km"] == pytest.approx((members["x_km"] * weights).sum(), abs=0.01)
    assert kent["y_km"] == pytest.approx((members["y_km"] * weights).sum(), abs=0.01)


# ------------------------------------------------------------------ population


def test_every_body_has_a_population(bodies: pd.DataFrame) -> None:
    assert bodies["population"].dtype.kind == "i"
    assert (bodies["population"] > 0).all()
    names = bodies.set_index("name")["population"]
    assert 5_000 < names["City of London"] < 20_000
    assert 1_000_000 < names["Birmingham"] < 1_300_000


def test_nation_totals_match_the_published_mid_2023_figures(bodies: pd.DataFrame) -> None:
    totals = bodies[bodies["tier"] != "county"].groupby("nation")["population"].sum()
    assert set(totals.index) == set(POPULATION)
    for nation, published in POPULATION.items():
        assert totals[nation] == pytest.approx(published, rel=0.005), nation


def test_a_county_is_the_sum_of_its_districts(bodies: pd.DataFrame) -> None:
    county_of = uk_bodies().set_index("body_id")["county"]
    population = bodies.set_index("body_id")["population"]
    members = population.groupby(county_of.reindex(population.index)).sum()
    counties = bodies.loc[bodies["tier"] == "county", "body_id"]
    assert len(counties) == 21
    for county in counties:
        assert population[county] == members[county], county
    assert population["E10000016"] == population[KENT].sum()


def test_population_table_gives_every_district_once(bodies: pd.DataFrame) -> None:
    table = pd.read_csv(data_path("datasets", "uk-councils", "population.csv"), comment="#")
    assert list(table.columns) == ["body_id", "name", "nation", "population", "source"]
    assert table["body_id"].is_unique
    districts = bodies[bodies["tier"] != "county"]
    assert sorted(table["body_id"]) == sorted(districts["body_id"])
    assert (table["source"].str.len() > 0).all()
    merged = table.merge(districts, on="body_id", suffixes=("", "_built"))
    assert (merged["population"] == merged["population_built"]).all()
    assert (merged["nation"] == merged["nation_built"]).all()
    ons = table["source"].str.startswith("ONS mid-2023")
    assert set(table.loc[ons, "nation"]) == {"England", "Wales"}
    assert ons.sum() == 318


def test_population_table_rejects_a_missing_district() -> None:
    codes = pd.Series(["E06000001", "E06000099"])
    with pytest.raises(ValueError, match=r"lacks district codes: \['E06000099'\]"):
        district_population(codes)


def test_datasets_export_writes_the_population(cli: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "ukc"
    code, out, err = cli("datasets", "export", "uk-councils", target)
    assert f"wrote uk-councils to {target}" in out
    assert code == 0, err
    exported = pd.read_csv(target / "bodies.csv", dtype={"body_id": str})
    assert "population" in exported.columns
    instance = load_instance(target, load_model(MODEL))
    assert instance.bodies["population"].sum() == exported["population"].sum()
    assert instance.bodies.loc["E09000033", "population"] == exported.set_index("body_id").loc[
        "E09000033", "population"
    ]


# --------------------------------------------------------------------- network


def test_network_is_connected_and_canonical(bodies: pd.DataFrame, edges: pd.DataFrame) -> None:
    assert list(edges.columns) == ["source", "target", "km"]
    graph = nx.from_pandas_edgelist(edges, "source", "target", "km")
    graph.add_nodes_from(bodies["body_id"])
    assert nx.is_connected(graph)
    assert (edges["source"] < edges["target"]).all()
    assert not edges.duplicated(["source", "target"]).any()
    assert edges[["source", "target"]].values.tolist() == sorted(
        edges[["source", "target"]].values.tolist()
    )
    assert (edges["km"] > 0).all()


def test_no_land_edge_leaves_its_land_mass(bodies: pd.DataFrame, edges: pd.DataFrame) -> None:
    landmass = pd.read_csv(data_path("datasets", "uk-councils", "landmass.csv"))
    land = bodies["body_id"].map(landmass.set_index("body_id")["landmass"]).fillna("GB")
    land.index = bodies["body_id"]
    links = pd.read_csv(data_path("datasets", "uk-councils", "links.csv"))
    linked = {frozenset(p) for p in links[["source", "target"]].itertuples(index=False)}
    crossing = edges[edges["source"].map(land) != edges["target"].map(land)]
    assert crossing.shape[0] > 0
    assert all(frozenset((s, t)) in linked for s, t in crossing[["source", "target"]].values)


def test_estuaries_are_not_crossed(edges: pd.DataFrame) -> None:
    pairs = set(map(tuple, edges[["source", "target"]].values.tolist()))
    assert ("E06000033", "E06000035") not in pairs  # Southend - Medway (Thames)
    assert ("E06000010", "E06000012") not in pairs  # Hull - North East Lincolnshire (Humber)
    assert ("E06000024", "W06000015") not in pairs  # North Somerset - Cardiff (Severn)
    assert ("S12000010", "S12000047") not in pairs  # East Lothian - Fife (Forth)


def test_known_distances(distance: Km) -> None:
    assert 55 <= distance("E08000003", "E08000035") <= 90  # Manchester - Leeds
    assert 230 <= distance("W06000015", "E09000033") <= 310  # Cardiff - Westminster
    assert 70 <= distance("S12000049", "S12000036") <= 100  # Glasgow - Edinburgh


def test_glasgow_belfast_goes_by_ferry(
    bodies: pd.DataFrame, edges: pd.DataFrame, distance: Km
) -> None:
    row = (edges["source"] == "N09000003") & (edges["target"] == "S12000006")
    ferry = float(edges.loc[row, "km"].iloc[0])
    sea = CIRCUITY * _straight(bodies, "N09000003", "S12000006")
    assert ferry == pytest.approx(sea + 100, abs=0.01)
    glasgow_belfast = distance("S12000049", "N09000003")
    via_cairnryan = distance("S12000049", "S12000006") + ferry
    assert glasgow_belfast == pytest.approx(via_cairnryan, abs=0.01)
    assert 350 <= glasgow_belfast <= 480


def test_shetland_reaches_the_mainland_by_ferry(
    bodies: pd.DataFrame, distance: Km
) -> None:
    landmass = pd.read_csv(data_path("datasets", "uk-councils", "landmass.csv"))
    mainland = sorted(set(bodies["body_id"]) - set(landmass["body_id"]))
    km, nearest = min((distance("S12000027", body), body) for body in mainland)
    assert nearest == "S12000033"  # Aberdeen City, by the Lerwick - Aberdeen ferry
    sea = CIRCUITY * _straight(bodies, "S12000027", "S12000033")
    assert km == pytest.approx(sea + 100, abs=0.01)
    assert 500 <= km <= 600


# ----------------------------------------------------------------------- spend


def test_spend_contract(built: Path) -> None:
    frame = pd.read_csv(built / "spend.csv")
    assert list(frame.columns) == ["body_id", "category", "spend"]
    assert (frame["spend"] > 0).all()
    assert frame["spend"].dtype.kind == "i"
    keys = frame[["body_id", "category"]].values.tolist()
    assert keys == sorted(keys)
    categories = set(tomllib.loads(MODEL.read_text())["categories"])
    assert set(frame["category"]) == categories
    assert len(categories) == 8


def test_districts_buy_no_care(spend: pd.DataFrame) -> None:
    care = spend["category"].isin(["adult_social_care", "childrens_services"])
    assert not (care & spend["tier"].isin(["district", "northern_irish"])).any()
    carers = set(spend.loc[spend["category"] == "adult_social_care", "body_id"])
    assert len(carers) == 382 - 164 - 11  # every body but districts and NI districts


def test_national_totals_in_documented_ranges(spend: pd.DataFrame) -> None:
    totals = spend.groupby("nation")["spend"].sum() / 1e9
    for nation, (low, high) in TOTAL_RANGES.items():
        assert low <= totals[nation] <= high, nation
    assert UK_RANGE[0] <= totals.sum() <= UK_RANGE[1]


def test_few_dozen_agencies_are_feasible(
    bodies: pd.DataFrame, spend: pd.DataFrame, distance: Km
) -> None:
    """A greedy radius cover per nation opens at most 50 agencies (README)."""
    radius = {
        name: spec.get("radius_km", math.inf)
        for name, spec in tomllib.loads(MODEL.read_text())["categories"].items()
    }
    opened = 0
    for nation, group in spend.groupby("nation"):
        sites = bodies.loc[bodies["nation"] == nation, "body_id"].tolist()
        needs = {(b, radius[c]) for b, c in group[["body_id", "category"]].values}
        reach = {s: {n for n in needs if distance(n[0], s) <= n[1]} for s in sites}
        while needs:
            best = max(sites, key=lambda s: (len(reach[s] & needs), s))
            needs -= reach[best]
            opened += 1
    assert opened <= 50


# --------------------------------------------------------------- determinism etc.


def test_two_builds_are_byte_identical(built: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from optimizer.uk import build_uk_councils; "
        "build_uk_councils(Path(sys.argv[1]), Path(sys.argv[2]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    subprocess.run([sys.executable, "-c", code, str(tmp_path), str(MODEL)], check=True, env=env)
    for name in ("bodies.csv", "spend.csv", "edges.csv"):
        assert (tmp_path / name).read_bytes() == (built / name).read_bytes(), name


def test_spend_model_rejects_unknown_keys(tmp_path: Path) -> None:
    text = MODEL.read_text().replace(
        "[spend_model.per_head]\n", "[spend_model.per_head]\nlibraries = 5\n"
    )
    model = tmp_path / "bad.toml"
    model.write_text(text)
    with pytest.raises(ValueError, match="libraries"):
        read_spend_model(model)
    model.write_text(MODEL.read_text().replace("[spend_model]\n", "[spend_model]\nvat = 0.2\n"))
    with pytest.raises(ValueError, match="vat"):
        read_spend_model(model)


def test_spend_model_rejects_shares_over_one(tmp_path: Path) -> None:
    text = MODEL.read_text().replace(
        "waste_street_cleaning = 0.6     # assumption: collection",
        "waste_street_cleaning = 0.9     # assumption: collection",
    )
    model = tmp_path / "bad.toml"
    model.write_text(text)
    with pytest.raises(ValueError, match="waste_street_cleaning"):
        read_spend_model(model)


def test_the_default_gap_proves_the_status_quo_level_as_tightly_in_gbp_as_1e_4_of_its_total(
    built: Path,
) -> None:
    """The binding level of the default gap (README, "The gap").

    The old gap allowed 1e-4 of a level's total, the new one ``DEFAULT_GAP``
    of its decision cost (total less the purchase floor F). Their ratio,
    ``1e-4 T / (T - F)``, falls as ``T`` rises, so the level of highest
    total binds: the status quo (1.96e-3 on uk-councils; every other level
    of 382 to 41 lies higher).
    """
    instance = load_instance(built, load_model(MODEL))
    quo, floor = status_quo(instance), purchase_floor(instance)
    assert 0.0 < floor < quo
    assert DEFAULT_GAP * (quo - floor) <= 1e-4 * quo
    assert 1e-4 * quo / (quo - floor) < 1.05 * DEFAULT_GAP  # and not needlessly tight
