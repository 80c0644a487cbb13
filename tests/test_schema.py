"""Validation of dataset folders and model files: every problem, where it is, what was found.

Rows are numbered as a spreadsheet shows them: the header is row 1. In the toy
dataset, bodies.csv rows are a1=2, a2=3, a3=4, a4=5, s1=6, s2=7; spend.csv rows
are a1/care=2, a1/ict=3, a2/care=4, a2/ict=5, a3/care=6, a3/ict=7, a4/care=8,
a4/ict=9, s1/care=10, s1/ict=11, s2/care=12; edges.csv rows are a1-a2=2,
a2-a3=3, a2-a4=4, a1-s1=5, s1-s2=6.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import TOY_SITES

from optimizer import DataValidationError, Model, load_instance, load_model
from optimizer.network import CIRCUITY

STATUSES = "['candidate', 'open', 'closed']"


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def append_line(path: Path, line: str) -> None:
    text = path.read_text(encoding="utf-8")
    path.write_text(text.rstrip("\n") + "\n" + line + "\n", encoding="utf-8")


def data_problems(folder: Path, model: Model) -> list[str]:
    with pytest.raises(DataValidationError) as info:
        load_instance(folder, model)
    lines = info.value.problems
    count = len(lines)
    head = f"{count} problem{'s' if count != 1 else ''} in the input:"
    assert str(info.value) == "\n".join([head, *lines])
    return lines


def model_problems(path: Path) -> list[str]:
    with pytest.raises(DataValidationError) as info:
        load_model(path)
    return info.value.problems


# ----------------------------------------------------------------- dataset folders

# (id, file, old text or None to append, new text, expected problem lines)
DATA_CASES = [
    ("spend-negative", "spend.csv", "a1,ict,30000", "a1,ict,-5",
     ["(spend.csv, row 3, column 'spend') | must be in [0, 1e+13], got '-5'"]),
    ("spend-nan-text", "spend.csv", "a1,ict,30000", "a1,ict,nan",
     ["(spend.csv, row 3, column 'spend') | expected a number, got 'nan'"]),
    ("spend-blank", "spend.csv", "a3,care,50000", "a3,care,",
     ["(spend.csv, row 6, column 'spend') | expected a number, got ''"]),
    ("spend-non-numeric", "spend.csv", "s2,care,30000", "s2,care,lots",
     ["(spend.csv, row 12, column 'spend') | expected a number, got 'lots'"]),
    ("spend-infinite", "spend.csv", "a1,ict,30000", "a1,ict,inf",
     ["(spend.csv, row 3, column 'spend') | must be in [0, 1e+13], got 'inf'"]),
    ("spend-missing-column", "spend.csv", "body_id,category,spend", "body_id,category,amount",
     ["(spend.csv, column 'spend') | missing column; found ['body_id', 'category', 'amount']"]),
    ("bodies-missing-column", "bodies.csv", "body_id,name,nation,", "body_id,name,region,",
     ["(bodies.csv, column 'nation') | missing column; "
      "found ['body_id', 'name', 'region', 'x_km', 'y_km']"]),
    ("bodies-duplicate-id", "bodies.csv", None, "a1,Copy,Northland,5,5",
     ["(bodies.csv, row 8, column 'body_id') | duplicate id 'a1'"]),
    ("bodies-blank-nation", "bodies.csv", "a3,Cresting,Northland,", "a3,Cresting,,",
     ["(bodies.csv, row 4, column 'nation') | blank nation"]),
    ("bodies-x-out-of-range", "bodies.csv", "a3,Cresting,Northland,20,0",
     "a3,Cresting,Northland,200000,0",
     ["(bodies.csv, row 4, column 'x_km') | must be in [-100000, 100000], got '200000'"]),
    ("bodies-y-non-numeric", "bodies.csv", "s2,Fallow,Southland,12,-40",
     "s2,Fallow,Southland,12,south",
     ["(bodies.csv, row 7, column 'y_km') | expected a number, got 'south'"]),
    ("spend-unknown-body", "spend.csv", None, "zz,care,5",
     ["(spend.csv, row 13, column 'body_id') | unknown body 'zz'"]),
    ("spend-category-not-in-model", "spend.csv", "s2,care,30000", "s2,food,30000",
     ["(spend.csv, row 12, column 'category') | unknown category (not in the model) 'food'"]),
    ("spend-duplicate-row", "spend.csv", None, "s2,care,5",
     ["(spend.csv, row 13, column 'category') | duplicate row for body 's2' and category 'care'"]),
    ("edges-unknown-source", "edges.csv", "a1,s1,40", "zz,s1,40",
     ["(edges.csv, row 5, column 'source') | unknown body or site id 'zz'"]),
    ("edges-unknown-target", "edges.csv", "a2,a4,15", "a2,a9,15",
     ["(edges.csv, row 4, column 'target') | unknown body or site id 'a9'"]),
    ("edges-negative-km", "edges.csv", "s1,s2,12", "s1,s2,-12",
     ["(edges.csv, row 6, column 'km') | must be in [0, inf], got '-12'"]),
    ("edges-missing-column", "edges.csv", "source,target,km", "source,target,miles",
     ["(edges.csv, column 'km') | missing column; found ['source', 'target', 'miles']"]),
    ("edges-disconnected", "edges.csv", "a1,s1,40\n", "",
     ["(edges.csv) | the network is not connected: 2 components",
      "(edges.csv) | component 1: a1, a2, a3, a4",
      "(edges.csv) | component 2: s1, s2"]),
]


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in DATA_CASES],
)
def test_broken_dataset_is_reported_with_file_row_column_and_value(
    toy_folder: Path, toy_model: Model, file: str, old: str | None, new: str, expected: list[str]
) -> None:
    if old is None:
        append_line(toy_folder / file, new)
    else:
        replace_in(toy_folder / file, old, new)
    assert data_problems(toy_folder, toy_model) == expected


@pytest.mark.parametrize("file", ["bodies.csv", "spend.csv"])
def test_missing_required_file(toy_folder: Path, toy_model: Model, file: str) -> None:
    (toy_folder / file).unlink()
    assert data_problems(toy_folder, toy_model) == [
        f"({file}) | file not found: {toy_folder / file}"
    ]


def test_missing_dataset_folder(tmp_path: Path, toy_model: Model) -> None:
    folder = tmp_path / "nowhere"
    assert data_problems(folder, toy_model) == [f"({folder}) | dataset folder not found"]


def test_empty_spend_file(toy_folder: Path, toy_model: Model) -> None:
    (toy_folder / "spend.csv").write_text("", encoding="utf-8")
    assert data_problems(toy_folder, toy_model) == [
        "(spend.csv) | cannot be read as CSV: No columns to parse from file"
    ]


def test_unreadable_csv_is_a_validation_error_not_a_crash(
    toy_folder: Path, toy_model: Model
) -> None:
    (toy_folder / "bodies.csv").unlink()
    (toy_folder / "bodies.csv").mkdir()
    [line] = data_problems(toy_folder, toy_model)
    assert line.startswith("(bodies.csv) | cannot be opened: ")
    assert "Is a directory" in line


# -------------------------------------------------------------------- sites.csv

SITES_CASES = [
    ("duplicate-site-id", "a4,Dunmere", "a3,Dunmere",
     ["(sites.csv, row 5, column 'site_id') | duplicate id 'a3'"]),
    ("unknown-host-body", "Fallow,Southland,12,-40,,,candidate,s2",
     "Fallow,Southland,12,-40,,,candidate,zz",
     ["(sites.csv, row 7, column 'body_id') | unknown body 'zz'"]),
    ("bad-status", ",closed,a3", ",shut,a3",
     [f"(sites.csv, row 4, column 'status') | expected one of {STATUSES}, got 'shut'"]),
    ("negative-capacity", "7000,150000", "7000,-1",
     ["(sites.csv, row 3, column 'capacity') | must be in [0, 1e+13], got '-1'"]),
    ("non-numeric-fixed-cost", "7000,150000", "lots,150000",
     ["(sites.csv, row 3, column 'fixed_cost') | expected a number, got 'lots'"]),
]


@pytest.mark.parametrize(
    ("old", "new", "expected"), [pytest.param(*case[1:], id=case[0]) for case in SITES_CASES]
)
def test_broken_sites_csv(
    toy_folder: Path, toy_model: Model, old: str, new: str, expected: list[str]
) -> None:
    assert old in TOY_SITES
    (toy_folder / "sites.csv").write_text(TOY_SITES.replace(old, new, 1), encoding="utf-8")
    assert data_problems(toy_folder, toy_model) == expected


def test_sites_in_lat_lon_but_bodies_in_km(toy_folder: Path, toy_model: Model) -> None:
    (toy_folder / "sites.csv").write_text(
        "site_id,name,nation,lat,lon\na1,Alderley,Northland,51.5,-0.1\n", encoding="utf-8"
    )
    assert data_problems(toy_folder, toy_model) == [
        "(sites.csv) | sites use latlon coordinates but bodies use km"
    ]


def test_bodies_in_lat_lon_but_sites_in_km(toy_folder: Path, toy_model: Model) -> None:
    (toy_folder / "bodies.csv").write_text(
        "body_id,name,nation,lat,lon\na1,A,Northland,51.5,0\n", encoding="utf-8"
    )
    (toy_folder / "spend.csv").write_text("body_id,category,spend\na1,care,5\n", encoding="utf-8")
    (toy_folder / "edges.csv").unlink()
    (toy_folder / "sites.csv").write_text(
        "site_id,name,nation,x_km,y_km\na1,A,Northland,0,0\n", encoding="utf-8"
    )
    assert data_problems(toy_folder, toy_model) == [
        "(sites.csv) | sites use km coordinates but bodies use latlon"
    ]


def test_sites_without_coordinates_give_one_message(toy_folder: Path, toy_model: Model) -> None:
    # Only the missing coordinates: no second, spurious "km vs latlon" line.
    (toy_folder / "bodies.csv").write_text(
        "body_id,name,nation,lat,lon\na1,A,Northland,51.5,0\n", encoding="utf-8"
    )
    (toy_folder / "spend.csv").write_text("body_id,category,spend\na1,care,5\n", encoding="utf-8")
    (toy_folder / "sites.csv").write_text("site_id,name,nation\na1,A,Northland\n", encoding="utf-8")
    assert data_problems(toy_folder, toy_model) == [
        "(sites.csv, column 'x_km') | missing coordinates: give x_km,y_km or lat,lon"
    ]


def test_sites_csv_with_every_optional_column_loads(toy_folder: Path, toy_model: Model) -> None:
    (toy_folder / "sites.csv").write_text(TOY_SITES, encoding="utf-8")
    inst = load_instance(toy_folder, toy_model)
    assert list(inst.sites.index) == ["a1", "a2", "a3", "a4", "s1", "s2"]
    # blank fixed_cost -> the model's agency_fixed_cost (5000); a2 has its own 7000
    assert inst.fixed_costs.tolist() == [5000.0, 7000.0, 5000.0, 5000.0, 5000.0, 5000.0]
    assert inst.sites.loc["a2", "capacity"] == 150000.0
    assert int(inst.sites["capacity"].isna().sum()) == 5
    # blank status -> candidate
    assert inst.sites["status"].tolist() == [
        "candidate", "candidate", "closed", "candidate", "open", "candidate"
    ]
    assert inst.sites["body_id"].tolist() == ["a1", "a2", "a3", "a4", "s1", "s2"]
    assert inst.host_of_site.tolist() == [0, 1, 2, 3, 4, 5]
    # same ids as the bodies: same nodes, so edges.csv distances are unchanged
    assert inst.distances[3, 1] == 15.0  # a4 -> a2
    assert inst.distances[5, 0] == 52.0  # s2 -> s1 -> a1


def test_fixed_costs_follow_the_model_when_sites_csv_has_no_fixed_cost(
    toy_folder: Path, toy_model: Model
) -> None:
    (toy_folder / "sites.csv").write_text(
        "site_id,name,nation,x_km,y_km\na2,Brackwell,Northland,10,0\ns1,Eastwick,Southland,0,-40\n",
        encoding="utf-8",
    )
    inst = load_instance(toy_folder, toy_model)
    assert inst.fixed_costs.tolist() == [5000.0, 5000.0]
    cheaper = inst.with_model(toy_model.with_scenario(agency_fixed_cost=123.0))
    assert cheaper.fixed_costs.tolist() == [123.0, 123.0]
    assert inst.sites["body_id"].tolist() == ["", ""]  # no host column: no hosts
    assert inst.host_of_site.tolist() == [-1, -1]


# ------------------------------------------------------------------------ lat/lon

LATLON_BODIES = """\
body_id,name,nation,lat,lon
a1,Greenwich,Northland,51.5,0.0
a2,East,Northland,51.5,1.0
a3,North,Northland,52.5,0.0
"""


def test_lat_lon_bodies_load_and_project_to_plausible_km(
    toy_folder: Path, toy_model: Model
) -> None:
    (toy_folder / "bodies.csv").write_text(LATLON_BODIES, encoding="utf-8")
    (toy_folder / "spend.csv").write_text(
        "body_id,category,spend\na1,care,10\na2,ict,20\na3,care,30\n", encoding="utf-8"
    )
    (toy_folder / "edges.csv").unlink()  # the generated network joins every pair
    inst = load_instance(toy_folder, toy_model)
    x = inst.bodies["x_km"]
    y = inst.bodies["y_km"]
    # one degree of latitude is ~111.2 km; one of longitude at the mean
    # latitude 51.83 N is 111.2 * cos(51.83 deg) ~ 68.7 km
    assert y["a3"] - y["a1"] == pytest.approx(111.2, abs=0.1)
    assert x["a2"] - x["a1"] == pytest.approx(68.7, abs=0.1)
    assert x["a3"] == pytest.approx(x["a1"])
    # network km = straight line times the circuity factor
    assert CIRCUITY == 1.3
    assert inst.distances[0, 2] == pytest.approx(111.195 * CIRCUITY, abs=0.01)
    assert inst.distances[0, 1] == pytest.approx(68.713 * CIRCUITY, abs=0.01)
    assert np.allclose(inst.distances, inst.distances.T)


def test_lat_lon_out_of_range(toy_folder: Path, toy_model: Model) -> None:
    (toy_folder / "bodies.csv").write_text(
        "body_id,name,nation,lat,lon\na1,A,N,91,0\na2,B,N,51,-181\na3,C,N,51,-180\n",
        encoding="utf-8",
    )
    (toy_folder / "spend.csv").write_text("body_id,category,spend\na1,care,5\n", encoding="utf-8")
    (toy_folder / "edges.csv").unlink()
    assert data_problems(toy_folder, toy_model) == [
        "(bodies.csv, row 2, column 'lat') | must be in [-90, 90], got '91'",
        "(bodies.csv, row 3, column 'lon') | must be in [-180, 180], got '-181'",
    ]


def test_bodies_without_coordinates(toy_folder: Path, toy_model: Model) -> None:
    (toy_folder / "bodies.csv").write_text(
        "body_id,name,nation,easting\na1,A,N,5\n", encoding="utf-8"
    )
    (toy_folder / "spend.csv").write_text("body_id,category,spend\na1,care,5\n", encoding="utf-8")
    assert data_problems(toy_folder, toy_model) == [
        "(bodies.csv, column 'x_km') | missing coordinates: give x_km,y_km or lat,lon"
    ]


# ------------------------------------------------------------------ collect-all


def test_many_problems_in_several_files_are_reported_in_one_error(
    toy_folder: Path, toy_model: Model
) -> None:
    append_line(toy_folder / "bodies.csv", "a1,Copy,Northland,5,5")
    replace_in(toy_folder / "bodies.csv", "Cresting,Northland,20,0", "Cresting,Northland,20,up")
    replace_in(toy_folder / "spend.csv", "a1,ict,30000", "a1,ict,-5")
    replace_in(toy_folder / "spend.csv", "s2,care,30000", "s2,food,30000")
    append_line(toy_folder / "spend.csv", "zz,ict,1")
    (toy_folder / "sites.csv").write_text(
        TOY_SITES.replace(",closed,a3", ",shut,a3").replace(",candidate,s2", ",candidate,qq"),
        encoding="utf-8",
    )
    with pytest.raises(DataValidationError) as info:
        load_instance(toy_folder, toy_model)
    expected = [
        "(bodies.csv, row 8, column 'body_id') | duplicate id 'a1'",
        "(bodies.csv, row 4, column 'y_km') | expected a number, got 'up'",
        "(spend.csv, row 3, column 'spend') | must be in [0, 1e+13], got '-5'",
        "(spend.csv, row 13, column 'body_id') | unknown body 'zz'",
        "(spend.csv, row 12, column 'category') | unknown category (not in the model) 'food'",
        "(sites.csv, row 7, column 'body_id') | unknown body 'qq'",
        f"(sites.csv, row 4, column 'status') | expected one of {STATUSES}, got 'shut'",
    ]
    assert info.value.problems == expected
    assert str(info.value).splitlines()[0] == "7 problems in the input:"


# ------------------------------------------------------------------- model files

CARE_BANDS = "[[0, 100000, 0.0], [100000, inf, 0.1]]"
BANDS_AT = "(model.toml, column 'categories.care.bands[{}]') | "

# (id, old text of models/toy.toml, new text, expected problem lines)
MODEL_CASES = [
    ("bands-not-from-zero", CARE_BANDS, "[[10, 100000, 0.0], [100000, inf, 0.1]]",
     [BANDS_AT.format(1) + "bands must start at 0, got 10"]),
    ("bands-overlap", CARE_BANDS, "[[0, 100000, 0.0], [90000, inf, 0.1]]",
     [BANDS_AT.format(2) + "overlaps the band before: lower 90000 < 100000"]),
    ("bands-gap", CARE_BANDS, "[[0, 100000, 0.0], [110000, inf, 0.1]]",
     [BANDS_AT.format(2) + "leaves a gap: lower 110000 > 100000"]),
    ("bands-rate-one", CARE_BANDS, "[[0, 100000, 0.0], [100000, inf, 1.0]]",
     [BANDS_AT.format(2) + "rate must be in [0, 1), got 1"]),
    ("bands-rate-negative", CARE_BANDS, "[[0, 100000, -0.1], [100000, inf, 0.1]]",
     [BANDS_AT.format(1) + "rate must be in [0, 1), got -0.1"]),
    ("bands-rate-falls", CARE_BANDS, "[[0, 100000, 0.2], [100000, inf, 0.1]]",
     [BANDS_AT.format(2) + "rate 0.1 falls below 0.2; rates must not fall as volume rises"]),
    ("bands-last-not-inf", CARE_BANDS, "[[0, 100000, 0.0], [100000, 500000, 0.1]]",
     [BANDS_AT.format(2) + "the last band must end at inf, got 500000"]),
    ("bands-empty-width", CARE_BANDS, "[[0, 0, 0.0], [0, inf, 0.1]]",
     [BANDS_AT.format(1) + "upper 0 must exceed lower 0"]),
    ("bands-malformed-triple", CARE_BANDS, "[[0, 100000], [100000, inf, 0.1]]",
     [BANDS_AT.format(1) + "expected [lower, upper, rate], got [0, 100000]"]),
    ("bands-empty", CARE_BANDS, "[]",
     ["(model.toml, column 'categories.care.bands') | "
      "expected a list of [lower, upper, rate] triples"]),
    ("unknown-top-level-key", "[scenario]", "solver = 'highs'\n[scenario]",
     ["(model.toml, column 'solver') | unknown key; "
      "expected one of ['categories', 'scenario', 'spend_model']"]),
    ("unknown-scenario-key", "same_nation = true", "same_nations = true",
     ["(model.toml, column 'scenario.same_nations') | unknown key; "
      "expected ['agency_fixed_cost', 'description', 'same_nation', 'split_categories']"]),
    ("category-key-typo", "desk_cost = 1000", "desk_cots = 1000",
     ["(model.toml, column 'categories.care.desk_cots') | unknown key; "
      "expected ['bands', 'description', 'desk_cost', 'distance_cost', 'radius_km']"]),
    ("flag-not-boolean", "split_categories = true", "split_categories = 'yes'",
     ["(model.toml, column 'scenario.split_categories') | expected true or false, got 'yes'"]),
    ("negative-cost", "desk_cost = 2000", "desk_cost = -2000",
     ["(model.toml, column 'categories.ict.desk_cost') | must be >= 0, got -2000"]),
    ("cost-as-text", "agency_fixed_cost = 5000", "agency_fixed_cost = '5000'",
     ["(model.toml, column 'scenario.agency_fixed_cost') | expected a number, got '5000'"]),
    ("cost-nan", "distance_cost = 100", "distance_cost = nan",
     ["(model.toml, column 'categories.care.distance_cost') | expected a number, got nan"]),
    ("cost-infinite", "desk_cost = 1000", "desk_cost = inf",
     ["(model.toml, column 'categories.care.desk_cost') | expected a finite number, got inf"]),
    ("negative-radius", "radius_km = 12", "radius_km = -12",
     ["(model.toml, column 'categories.care.radius_km') | must be >= 0, got -12"]),
]


@pytest.mark.parametrize(
    ("old", "new", "expected"), [pytest.param(*case[1:], id=case[0]) for case in MODEL_CASES]
)
def test_broken_model_is_reported_with_key_and_value(
    tmp_path: Path, toy_model_path: Path, old: str, new: str, expected: list[str]
) -> None:
    text = toy_model_path.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "model.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    assert model_problems(path) == expected


def test_bad_toml_syntax(tmp_path: Path, toy_model_path: Path) -> None:
    text = toy_model_path.read_text(encoding="utf-8")
    text = text.replace("desk_cost = 1000", "desk_cost = = 1000")
    path = tmp_path / "model.toml"
    path.write_text(text, encoding="utf-8")
    [line] = model_problems(path)
    assert line.startswith("(model.toml) | not valid TOML: ")
    assert "line 10" in line


def test_missing_model_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    assert model_problems(path) == [f"(absent.toml) | model file not found: {path}"]


def test_model_path_that_is_a_folder(tmp_path: Path) -> None:
    [line] = model_problems(tmp_path)
    assert line.startswith(f"({tmp_path.name}) | cannot read the model file: ")
    assert "Is a directory" in line


def test_model_without_categories(tmp_path: Path) -> None:
    path = tmp_path / "model.toml"
    path.write_text("[scenario]\nagency_fixed_cost = 1\n", encoding="utf-8")
    assert model_problems(path) == [
        "(model.toml, column 'categories') | expected at least one [categories.NAME] table"
    ]


def test_many_model_problems_are_reported_in_one_error(
    tmp_path: Path, toy_model_path: Path
) -> None:
    text = (
        toy_model_path.read_text(encoding="utf-8")
        .replace("same_nation = true", "same_nations = true")
        .replace("desk_cost = 1000", "desk_cots = 1000")
        .replace("[[0, 50000, 0.0], [50000, inf, 0.2]]", "[[0, 50000, 0.3], [60000, inf, 0.2]]")
    )
    path = tmp_path / "model.toml"
    path.write_text(text, encoding="utf-8")
    problems = model_problems(path)
    assert [line.split(" | ")[0] for line in problems] == [
        "(model.toml, column 'scenario.same_nations')",
        "(model.toml, column 'categories.care.desk_cots')",
        "(model.toml, column 'categories.ict.bands[2]')",
        "(model.toml, column 'categories.ict.bands[2]')",
    ]
    assert problems[2].endswith("leaves a gap: lower 60000 > 50000")
    assert problems[3].endswith("rate 0.2 falls below 0.3; rates must not fall as volume rises")


def test_toy_model_loads_with_its_values(toy_model_path: Path) -> None:
    model = load_model(toy_model_path)
    assert model.scenario.agency_fixed_cost == 5000.0
    assert model.scenario.same_nation is True
    assert model.scenario.split_categories is True
    care, ict = model.categories["care"], model.categories["ict"]
    assert (care.desk_cost, care.distance_cost, care.radius_km) == (1000.0, 100.0, 12.0)
    assert (ict.desk_cost, ict.distance_cost, ict.radius_km) == (2000.0, 0.0, None)
    assert care.saving(190000.0) == pytest.approx(9000.0)
    assert ict.saving(90000.0) == pytest.approx(8000.0)
    assert ict.saving(50000.0) == 0.0


def test_infinite_radius_means_unlimited(tmp_path: Path, toy_model_path: Path) -> None:
    text = toy_model_path.read_text(encoding="utf-8").replace("radius_km = 12", "radius_km = inf")
    path = tmp_path / "model.toml"
    path.write_text(text, encoding="utf-8")
    assert load_model(path).categories["care"].radius_km == math.inf


def test_a_body_hosting_two_sites_is_rejected(toy_folder, toy_model) -> None:
    (toy_folder / "sites.csv").write_text(
        "site_id,name,nation,x_km,y_km,body_id\n"
        "a1,Alderley,Northland,0,0,a1\n"
        "a1b,Alderley annex,Northland,1,0,a1\n"
        "s1,Eastwick,Southland,0,-40,s1\n"
    )
    with pytest.raises(DataValidationError) as err:
        load_instance(toy_folder, toy_model)
    assert (
        "(sites.csv, row 3, column 'body_id') | body 'a1' hosts another site already;"
        " a body hosts at most one"
    ) in str(err.value)
