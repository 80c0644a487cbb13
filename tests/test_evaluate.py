"""The reference evaluator on the toy: hand-worked costs and one test per rule.

Toy network distances (edges.csv): a1-a2 10, a2-a3 10, a2-a4 15, a1-s1 40,
s1-s2 12 km. Grouping rows follow spend.csv: a1/care is row 2, a1/ict row 3,
a2/care 4, a2/ict 5, a3/care 6, a3/ict 7, a4/care 8, a4/ict 9, s1/care 10,
s1/ict 11, s2/care 12.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from conftest import TOY_SITES

from optimizer import (
    DataValidationError,
    Evaluation,
    Instance,
    Model,
    evaluate,
    load_instance,
    read_groupings,
)
from optimizer.evaluate import Violation


def with_site(grouping: pd.DataFrame, body: str, category: str, site: str) -> pd.DataFrame:
    out = grouping.copy()
    mask = (out["body_id"] == body) & (out["category"] == category)
    assert int(mask.sum()) == 1
    out.loc[mask, "site_id"] = site
    return out


def rules(result: Evaluation) -> dict[str, tuple[str, ...]]:
    return {v.rule: v.rows for v in result.violations}


# --------------------------------------------------------------- hand-worked costs


def test_every_body_alone_costs_506000(
    toy_instance: Instance, alone_grouping: pd.DataFrame
) -> None:
    # MODEL.md, k = 6, every body buys for itself:
    #   agencies  = 6 open sites * 5000                               = 30000
    #   desks     = care at 6 agencies * 1000 + ict at 5 * 2000       = 16000  (s2 has no ict)
    #   purchases = all spend 460000; no volume reaches a discounted band
    #               (largest care 80000 < 100000, largest ict 40000 < 50000) = 460000
    #   savings   = 0, distance = 0 (every body at its own site)
    #   total     = 30000 + 16000 + 460000 + 0                        = 506000
    result = evaluate(toy_instance, alone_grouping)
    assert result.feasible
    assert result.violations == []
    assert result.level == 6
    assert result.open_sites == ["a1", "a2", "a3", "a4", "s1", "s2"]
    assert result.breakdown == pytest.approx(
        {"agencies": 30000, "desks": 16000, "purchases": 460000, "savings": 0,
         "distance": 0, "total": 506000}
    )
    assert result.total == pytest.approx(506000)


def test_three_agencies_cost_467146(
    toy_instance: Instance, three_agency_grouping: pd.DataFrame
) -> None:
    # Agencies a2, a4, s1: a1, a2, a3 buy care and ict at a2; a4 at a4; s1, s2 at s1.
    #   agencies  = 3 * 5000                                           = 15000
    #   desks     = care at 3 agencies * 1000 + ict at 3 * 2000        =  9000
    #   a2 care V = 60000 + 80000 + 50000 = 190000 -> 0.1 * (190000 - 100000) = 9000
    #   a2 ict  V = 30000 + 40000 + 20000 =  90000 -> 0.2 * (90000 - 50000)   = 8000
    #   s1 care V = 70000 + 30000 = 100000 -> 0 (band 2 starts at 100000)
    #   a4 care 40000, a4 ict 10000, s1 ict 30000 -> 0
    #   savings   = 9000 + 8000                                        = 17000
    #   purchases = 460000 - 17000                                     = 443000
    #   distance  = care at 100 GBP per GBP 1m per km (ict costs 0):
    #               a1 0.06 * 10 * 100 = 60, a3 0.05 * 10 * 100 = 50, s2 0.03 * 12 * 100 = 36
    #                                                                  = 146
    #   total     = 15000 + 9000 + 443000 + 146                        = 467146
    result = evaluate(toy_instance, three_agency_grouping)
    assert result.feasible
    assert result.level == 3
    assert result.open_sites == ["a2", "a4", "s1"]
    assert result.breakdown == pytest.approx(
        {"agencies": 15000, "desks": 9000, "purchases": 443000, "savings": 17000,
         "distance": 146, "total": 467146}
    )
    volumes = result.volumes.set_index(["site_id", "category"])
    assert volumes.loc[("a2", "care"), "volume"] == pytest.approx(190000)
    assert volumes.loc[("a2", "care"), "saving"] == pytest.approx(9000)
    assert volumes.loc[("a2", "care"), "band"] == 2
    assert volumes.loc[("a2", "ict"), "saving"] == pytest.approx(8000)
    assert volumes.loc[("s1", "care"), "volume"] == pytest.approx(100000)
    assert volumes.loc[("s1", "care"), "saving"] == 0.0
    assert volumes.loc[("s1", "care"), "band"] == 1
    assert len(volumes) == 6


def test_status_quo_minus_three_agencies_is_the_saving(
    toy_instance: Instance, alone_grouping: pd.DataFrame, three_agency_grouping: pd.DataFrame
) -> None:
    # savings at a level = status-quo total - that level's total = 506000 - 467146
    alone = evaluate(toy_instance, alone_grouping).total
    three = evaluate(toy_instance, three_agency_grouping).total
    assert alone - three == pytest.approx(38854)


def test_open_sites_add_their_fixed_cost(
    toy_instance: Instance, three_agency_grouping: pd.DataFrame
) -> None:
    # opening a3 as well, with nothing bought there: +5000 agency, no desk
    result = evaluate(toy_instance, three_agency_grouping, open_sites=["a3"])
    assert result.open_sites == ["a2", "a3", "a4", "s1"]
    assert result.breakdown["agencies"] == pytest.approx(20000)
    assert result.breakdown["desks"] == pytest.approx(9000)
    # a3 hosts an open site but buys at a2: rule 1
    assert rules(result) == {"rule 1 (host)": ("row 6: a3/care", "row 7: a3/ict")}


def test_unknown_open_site_is_a_contract_violation_not_a_crash(
    toy_instance: Instance, alone_grouping: pd.DataFrame
) -> None:
    result = evaluate(toy_instance, alone_grouping, open_sites=["zz"])
    assert rules(result) == {"contract": ("zz",)}
    assert result.violations[0].message == "unknown site id in open_sites"
    assert result.total == pytest.approx(506000)
    assert result.level == 6


# ------------------------------------------------------------------------- rules


def test_rule_1_host(toy_instance: Instance, alone_grouping: pd.DataFrame) -> None:
    # a2's own site is open (it buys ict there) but it buys care at a1
    grouping = with_site(alone_grouping, "a2", "care", "a1")
    result = evaluate(toy_instance, grouping)
    assert not result.feasible
    assert rules(result) == {"rule 1 (host)": ("row 4: a2/care",)}
    assert str(result.violations[0]) == (
        "rule 1 (host): a body hosting an open agency buys elsewhere [row 4: a2/care]"
    )


def test_rule_2_radius(toy_instance: Instance, alone_grouping: pd.DataFrame) -> None:
    # a4 buys everything at a2: care travels 15 km > radius 12; ict has no radius
    grouping = with_site(with_site(alone_grouping, "a4", "care", "a2"), "a4", "ict", "a2")
    result = evaluate(toy_instance, grouping)
    assert rules(result) == {"rule 2 (radius)": ("row 8: 15.0 km",)}
    assert str(result.violations[0]) == (
        "rule 2 (radius): agency beyond the category's radius_km [row 8: 15.0 km]"
    )
    wider = toy_instance.with_model(toy_instance.model.with_category("care", radius_km=15.0))
    assert evaluate(wider, grouping).feasible


def test_rule_3_nation(toy_instance: Instance, alone_grouping: pd.DataFrame) -> None:
    # s2 (Southland) buys care at a1 (Northland), 52 km away: nation and radius
    grouping = with_site(alone_grouping, "s2", "care", "a1")
    result = evaluate(toy_instance, grouping)
    assert rules(result) == {
        "rule 2 (radius)": ("row 12: 52.0 km",),
        "rule 3 (nation)": ("row 12",),
    }
    no_radius = toy_instance.with_model(toy_instance.model.with_category("care", radius_km=None))
    assert rules(evaluate(no_radius, grouping)) == {"rule 3 (nation)": ("row 12",)}
    any_nation = no_radius.with_model(no_radius.model.with_scenario(same_nation=False))
    result = evaluate(any_nation, grouping)
    assert result.feasible
    # s2's care at a1: 0.03 * 52 * 100 = 156 GBP distance
    assert result.breakdown["distance"] == pytest.approx(156)


def test_rule_4_capacity(
    toy_folder: Path, toy_model: Model, three_agency_grouping: pd.DataFrame
) -> None:
    # a2 can buy at most 150000; in grouping 2 it buys 90000 + 120000 + 70000 = 280000
    text = TOY_SITES.replace(",closed,a3", ",candidate,a3").replace(",open,s1", ",,s1")
    (toy_folder / "sites.csv").write_text(text, encoding="utf-8")
    inst = load_instance(toy_folder, toy_model)
    result = evaluate(inst, three_agency_grouping)
    assert rules(result) == {"rule 4 (capacity)": ("a2: 280,000 > 150,000",)}
    # a2's own fixed_cost is 7000: agencies 7000 + 5000 + 5000
    assert result.breakdown["agencies"] == pytest.approx(17000)


def test_rule_5_whole_body(toy_instance: Instance, alone_grouping: pd.DataFrame) -> None:
    # a1 buys care at a2 (10 km) and ict at a3: a1's own site is then closed
    grouping = with_site(with_site(alone_grouping, "a1", "care", "a2"), "a1", "ict", "a3")
    assert evaluate(toy_instance, grouping).feasible  # splitting is allowed by default
    whole = toy_instance.with_model(toy_instance.model.with_scenario(split_categories=False))
    result = evaluate(whole, grouping)
    assert rules(result) == {"rule 5 (whole body)": ("a1",)}
    assert result.violations[0].message == "body split across agencies"


def test_status_closed_and_open(
    toy_folder: Path, toy_model: Model, alone_grouping: pd.DataFrame
) -> None:
    # TOY_SITES: a3 is closed, s1 must be open (a2's capacity lifted here)
    text = TOY_SITES.replace("7000,150000", "7000,")
    (toy_folder / "sites.csv").write_text(text, encoding="utf-8")
    inst = load_instance(toy_folder, toy_model)
    result = evaluate(inst, alone_grouping)
    assert rules(result) == {"status": ("a3",)}
    assert str(result.violations[0]) == "status: site with status 'closed' is open [a3]"
    # a3 buys at a2 (10 km), s1 and s2 buy at s2 (12 km): s1 is not open
    grouping = alone_grouping.copy()
    grouping.loc[grouping["body_id"] == "a3", "site_id"] = "a2"
    grouping.loc[grouping["body_id"].isin(["s1", "s2"]), "site_id"] = "s2"
    result = evaluate(inst, grouping)
    assert rules(result) == {"status": ("s1",)}
    assert result.violations[0].message == "site with status 'open' is not open"


# ---------------------------------------------------------------- contract


def test_contract_missing_row(toy_instance: Instance, alone_grouping: pd.DataFrame) -> None:
    grouping = alone_grouping[alone_grouping["body_id"] != "s2"]
    result = evaluate(toy_instance, grouping)
    assert rules(result) == {"contract": ("s2/care",)}
    assert result.violations[0].message == "body and category with spend but no agency"
    assert result.breakdown["purchases"] == pytest.approx(460000 - 30000)


def test_contract_duplicate_row(toy_instance: Instance, alone_grouping: pd.DataFrame) -> None:
    extra = pd.DataFrame({"body_id": ["a1"], "category": ["care"], "site_id": ["a2"]})
    grouping = pd.concat([alone_grouping, extra], ignore_index=True)
    result = evaluate(toy_instance, grouping)
    assert rules(result) == {"contract": ("row 13",)}
    assert result.violations[0].message == "more than one row for a body and category"
    # the first row counts: the costs are those of grouping 1
    assert result.total == pytest.approx(506000)


def test_contract_unknown_ids(toy_instance: Instance, alone_grouping: pd.DataFrame) -> None:
    grouping = with_site(alone_grouping, "a1", "care", "zz")
    extra = pd.DataFrame({"body_id": ["qq", "a1"], "category": ["care", "food"],
                          "site_id": ["a1", "a1"]})
    result = evaluate(toy_instance, pd.concat([grouping, extra], ignore_index=True))
    assert [(v.rule, v.message, v.rows) for v in result.violations] == [
        ("contract", "unknown body id", ("row 13: qq",)),
        ("contract", "unknown category id", ("row 14: food",)),
        ("contract", "unknown site id", ("row 2: zz",)),
    ]


def test_contract_row_with_no_spend(toy_instance: Instance, alone_grouping: pd.DataFrame) -> None:
    # s2 has no ict spend
    extra = pd.DataFrame({"body_id": ["s2"], "category": ["ict"], "site_id": ["s2"]})
    result = evaluate(toy_instance, pd.concat([alone_grouping, extra], ignore_index=True))
    assert rules(result) == {"contract": ("row 13",)}
    assert result.violations[0].message == "row for a body and category with no spend"
    assert result.total == pytest.approx(506000)


def test_grouping_without_required_column(toy_instance: Instance) -> None:
    with pytest.raises(ValueError, match=r"groupings lack columns \['site_id'\]"):
        evaluate(toy_instance, pd.DataFrame({"body_id": ["a1"], "category": ["care"]}))


def test_long_violation_lists_are_shortened() -> None:
    violation = Violation("contract", "x", tuple(f"row {i}" for i in range(2, 14)))
    assert str(violation) == (
        "contract: x [row 2, row 3, row 4, row 5, row 6, row 7, row 8, row 9, row 10, row 11,"
        " ... (12 in all)]"
    )


# ---------------------------------------------------------------- grouping files


def test_read_groupings_round_trip(
    write_groupings_csv: Callable[[pd.DataFrame, str], Path],
    toy_instance: Instance,
    three_agency_grouping: pd.DataFrame,
) -> None:
    path = write_groupings_csv(three_agency_grouping, "g.csv")
    frame = read_groupings(path)
    assert list(frame.columns) == ["body_id", "category", "site_id"]
    assert len(frame) == 11
    assert evaluate(toy_instance, frame).total == pytest.approx(467146)


def test_read_groupings_names_blank_cells(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_text("body_id,category,site_id\na1,care,a1\na1,ict,\n,care,a2\n", encoding="utf-8")
    with pytest.raises(DataValidationError) as info:
        read_groupings(path)
    assert info.value.problems == [
        "(g.csv, row 4, column 'body_id') | blank body_id",
        "(g.csv, row 3, column 'site_id') | blank site_id",
    ]


def test_read_groupings_missing_column_and_file(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_text("body_id,category,agency\na1,care,a1\n", encoding="utf-8")
    with pytest.raises(DataValidationError) as info:
        read_groupings(path)
    assert info.value.problems == [
        "(g.csv, column 'site_id') | missing column; found ['body_id', 'category', 'agency']"
    ]
    with pytest.raises(DataValidationError) as info:
        read_groupings(tmp_path / "none.csv")
    assert info.value.problems == [f"(none.csv) | file not found: {tmp_path / 'none.csv'}"]
