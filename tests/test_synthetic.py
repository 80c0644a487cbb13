"""Synthetic instances: seeded, in the data contract, UK-shaped, heavy-tailed, solvable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import optimizer
from optimizer.curve import CurveOptions, consolidation_curve
from optimizer.engine import LevelSolver
from optimizer.errors import DataValidationError
from optimizer.evaluate import evaluate
from optimizer.results import read_groupings
from optimizer.solve import SolverOptions
from optimizer.synthetic import NATION_SHARES, TIERS, generate, write_dataset
from tests.conftest import CliRunner

FILES = ("bodies.csv", "spend.csv", "model.toml", "README.md")


def test_the_same_seed_writes_the_same_files(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a", 300, seed=4)
    b = write_dataset(tmp_path / "b", 300, seed=4)
    c = write_dataset(tmp_path / "c", 300, seed=5)
    for name in ("bodies.csv", "spend.csv", "model.toml"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "bodies.csv").read_bytes() != (c / "bodies.csv").read_bytes()
    assert (a / "spend.csv").read_bytes() != (c / "spend.csv").read_bytes()


def test_bodies_spread_over_the_four_nations_on_the_grid() -> None:
    bodies, _ = generate(2000, seed=1)
    assert len(bodies) == 2000 and bodies["body_id"].is_unique
    shares = bodies["nation"].value_counts(normalize=True)
    for nation, share in NATION_SHARES.items():
        assert shares[nation] == pytest.approx(share, abs=0.01)
    assert bodies["x_km"].between(-100, 750).all() and bodies["y_km"].between(-50, 1050).all()
    by_nation = bodies.groupby("nation")[["x_km", "y_km"]].median()
    assert by_nation.loc["Scotland", "y_km"] > by_nation.loc["England", "y_km"] + 300
    assert by_nation.loc["Northern Ireland", "x_km"] < by_nation.loc["Wales", "x_km"] - 100
    assert set(bodies["tier"]) == set(TIERS)


def test_sizes_are_heavy_tailed_and_tiers_differ() -> None:
    bodies, spend = generate(3000, seed=2)
    total = spend.groupby("body_id")["spend"].sum()
    assert total.max() / total.median() > 100
    assert total.nlargest(len(total) // 10).sum() > 0.5 * total.sum()  # top 10% buy most
    tier = total.groupby(bodies.set_index("body_id")["tier"]).median()
    assert tier["nhs_trust"] > 50 * tier["school"]
    assert (spend["spend"] > 0).all() and not spend.duplicated(["body_id", "category"]).any()


def test_a_small_instance_loads_and_solves(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "synth", 60, seed=3)
    instance = optimizer.load(folder, folder / "model.toml")
    assert len(instance.bodies) == 60 and "tier" in instance.bodies.columns
    out = tmp_path / "run"
    curve = consolidation_curve(
        instance, CurveOptions(levels=(60, 40, 25), solver=SolverOptions(gap=1e-6)), out
    )
    frame = curve.to_frame()
    assert frame["status"].tolist() == ["optimal"] * 3
    assert frame["total"].is_monotonic_decreasing
    check = evaluate(instance, read_groupings(out / "groupings" / "level-25.csv"))
    assert check.feasible and check.total == pytest.approx(frame["total"].iloc[-1], rel=1e-9)


def test_datasets_synth_command(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "synth"
    code, _, stderr = cli("datasets", "synth", "--bodies", "50", "--seed", "7", out)
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert len(pd.read_csv(out / "bodies.csv")) == 50
    assert "50 bodies" in (out / "README.md").read_text()
    code, _, stderr = cli("datasets", "synth", "--bodies", "3", tmp_path / "tiny")
    assert code == 2 and "(--bodies) | at least 4" in stderr


def test_too_few_bodies_is_bad_input() -> None:
    with pytest.raises(DataValidationError, match="one per nation"):
        generate(3)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # closed host sites once gave inf - inf
def test_candidate_sites_are_the_largest_bodies_and_reach_every_body(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "synth", 400, seed=2, sites=20)
    bodies, spend = generate(400, seed=2)
    sites = pd.read_csv(folder / "sites.csv")
    assert (sites["site_id"] == bodies["body_id"]).all()
    assert (sites["body_id"] == sites["site_id"]).all()
    candidate = sites.loc[sites["status"] == "candidate", "site_id"]
    largest = spend.groupby("body_id")["spend"].sum().nlargest(20).index
    assert set(largest) <= set(candidate) and 20 < len(candidate) < 400  # some far bodies added
    assert set(sites["status"]) == {"candidate", "closed"}
    instance = optimizer.load(folder, folder / "model.toml")
    radius = min(c.radius_km for c in instance.model.categories.values())
    at = instance.sites.index.get_indexer(candidate)
    same = instance.bodies["nation"].to_numpy()[:, None] == instance.sites["nation"].to_numpy()[at]
    nearest = np.where(same, instance.distances[:, at], np.inf).min(axis=1)
    assert (nearest <= radius).all()
    fewest = LevelSolver(instance).smallest_level()
    levels = CurveOptions(levels=(len(candidate), fewest), solver=SolverOptions(gap=1e-3))
    curve = consolidation_curve(instance, levels, tmp_path / "run")
    frame = curve.to_frame()
    assert frame["status"].tolist() == ["optimal"] * 2 and frame["savings"].iloc[-1] > 0
    assert set(curve.groupings[fewest]["site_id"]) <= set(candidate)


def test_too_many_or_too_few_candidate_sites_are_refused(tmp_path: Path) -> None:
    for count in (0, 51):
        with pytest.raises(DataValidationError, match=r"\(--sites\) \| between 1 and"):
            write_dataset(tmp_path / f"synth-{count}", 50, seed=1, sites=count)


def test_datasets_synth_command_with_sites(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "synth"
    code, _, stderr = cli("datasets", "synth", "--bodies", "80", "--sites", "10", out)
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES, "sites.csv"])
    assert (pd.read_csv(out / "sites.csv")["status"] == "candidate").sum() >= 10
    assert "Candidate sites:" in (out / "README.md").read_text()
