"""Sweeps: the grid file, scenarios, spend draws, executors, resume and a lost worker."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster

import optimizer
from optimizer.errors import DataValidationError
from optimizer.executors import ExecutorOptions, local_cluster
from optimizer.sweep import Draws, Scenario, load_sweep, run_sweep, variant
from optimizer.synthetic import write_dataset
from tests.conftest import CliRunner

TOY_SWEEP = """\
[sweep]
data = "toy"
levels = "6..2"
gap = 1e-9

[grid]
rate_scale = [0.5, 1.0]

[grid.categories.care]
radius_km = [12, inf]
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """A 2-worker Dask cluster shared by this module's tests."""
    with local_cluster(2) as running:
        yield running


def _file(folder: Path, text: str, name: str = "sweep.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _stable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["seconds"])


def test_grid_random_and_draws_expand_to_seeded_scenarios(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        '[sweep]\ndata = "toy"\n[grid]\nsame_nation = [true, false]\n'
        "[random]\nsamples = 3\nseed = 5\nspend_scale = { low = 0.9, high = 1.1 }\n"
        "desk_cost_scale = [0.5, 2.0]\n[draws]\ncount = 2\n",
    )
    spec = load_sweep(path)
    scenarios = spec.scenarios()
    assert len(scenarios) == 2 * 3 * 2
    assert [s.id for s in scenarios[:3]] == ["s001", "s002", "s003"]
    assert spec.parameters == ["same_nation", "spend_scale", "desk_cost_scale"]
    assert [s.draw for s in scenarios[:4]] == [1, 2, 1, 2]
    points = {(s.parameters["spend_scale"], s.parameters["desk_cost_scale"]) for s in scenarios}
    assert len(points) == 3
    assert all(0.9 <= a <= 1.1 and b in (0.5, 2.0) for a, b in points)
    again = load_sweep(path).scenarios()
    assert [dict(s.parameters) for s in again] == [dict(s.parameters) for s in scenarios]


def test_parameters_change_the_model_the_sites_and_the_spend() -> None:
    toy = optimizer.load("toy")
    values = {
        "agency_fixed_cost": 9000.0,
        "fixed_cost_scale": 2.0,
        "desk_cost_scale": 3.0,
        "radius_scale": 2.0,
        "rate_scale": 0.5,
        "spend_scale": 1.2,
        "same_nation": False,
        "categories.ict.rate_scale": 0.5,
        "categories.care.radius_km": float("inf"),
    }
    changed = variant(toy, Scenario("s1", values, 0), Draws())
    assert changed.model.scenario.agency_fixed_cost == 18000.0
    assert changed.model.scenario.same_nation is False
    assert changed.model.categories["care"].desk_cost == 3000.0
    assert changed.model.categories["care"].radius_km is None
    assert [b.rate for b in changed.model.categories["care"].bands] == [0.0, 0.05]
    assert [b.rate for b in changed.model.categories["ict"].bands] == [0.0, 0.05]
    assert changed.spend["spend"].sum() == pytest.approx(1.2 * toy.spend["spend"].sum())
    assert toy.model.categories["care"].radius_km == 12  # the base is left alone


def test_spend_draws_are_seeded_mean_one_and_shared_across_settings() -> None:
    toy = optimizer.load("toy")
    draws = Draws(count=3, seed=11, sigma_body=0.2, sigma_category=0.1)
    one = variant(toy, Scenario("a", {}, 2), draws)
    same = variant(toy, Scenario("b", {"rate_scale": 0.5}, 2), draws)
    other = variant(toy, Scenario("c", {}, 3), draws)
    assert one.spend["spend"].tolist() == same.spend["spend"].tolist()
    assert one.spend["spend"].tolist() != other.spend["spend"].tolist()
    ratio = one.spend["spend"].to_numpy() / toy.spend["spend"].to_numpy()
    assert (ratio > 0).all() and not np.allclose(ratio, 1.0)
    many = np.stack(
        [variant(toy, Scenario("d", {}, d), Draws(seed=1)).spend["spend"] for d in range(1, 400)]
    )
    assert many.mean(axis=0) / toy.spend["spend"].to_numpy() == pytest.approx(1.0, abs=0.03)


BAD_FILES = [
    ("[sweep]\ndata = 'toy'\n[grids]\nrate_scale = [1.0]\n", "(sweep.toml, column 'grids')"),
    ("[sweep]\ndata = 'toy'\ntimelimit = 3\n", "(sweep.toml, column 'sweep.timelimit')"),
    ("[sweep]\ndata = 'toy'\n[grid]\nrate_scael = [1.0]\n", "column 'grid.rate_scael') | unknown"),
    ("[sweep]\ndata = 'toy'\n[grid]\nrate_scale = 0.5\n", "column 'grid.rate_scale') | expected"),
    ("[sweep]\ndata = 'toy'\n[grid]\nsame_nation = [1]\n", "column 'grid.same_nation')"),
    ("[sweep]\ndata = 'toy'\n[grid]\nspend_scale = [0]\n", "must be > 0"),
    ("[sweep]\ndata = 'toy'\n[grid.categories.cars]\ndesk_cost = [1]\n", "unknown category"),
    (
        "[sweep]\ndata = 'toy'\n[grid]\nrate_scale = [6.0]\n",
        "(sweep.toml) | scenario s001 (rate_scale=6.0) gives an invalid",
    ),
    ("[sweep]\ndata = 'toy'\n[random]\nradius_scale = {low = 2, high = 1}\n", "below low"),
    ("[sweep]\ndata = 'toy'\n[draws]\ncount = -1\n", "column 'draws.count')"),
    ("[sweep]\ndata = 'toy'\nlevels = '6,x'\n", "column 'sweep.levels') | expected a number"),
    ("[sweep\ndata = 'toy'\n", "(sweep.toml) | not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_a_bad_sweep_file_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(DataValidationError) as caught:
        run_sweep(path, tmp_path / "out")
    assert message in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_a_bad_sweep_file_exits_2(cli: CliRunner, tmp_path: Path) -> None:
    path = _file(tmp_path, "[sweep]\ndata = 'toy'\n[grid]\nrate_scael = [1.0]\n")
    code, _, stderr = cli("sweep", "--grid", path, "--out", tmp_path / "out")
    assert code == 2
    assert "(sweep.toml, column 'grid.rate_scael') | unknown key" in stderr
    assert "Traceback" not in stderr


def test_sweep_tables_are_identical_on_every_executor(
    cli: CliRunner, tmp_path: Path, cluster: LocalCluster
) -> None:
    path = _file(tmp_path, TOY_SWEEP)
    tables = {}
    for kind, options in {
        "serial": ExecutorOptions("serial"),
        "processes": ExecutorOptions("processes", workers=2),
        "dask": ExecutorOptions("dask", scheduler=cluster.scheduler_address),
    }.items():
        tables[kind] = run_sweep(path, tmp_path / kind, executor=options)
    frame = tables["serial"]
    assert frame["scenario"].nunique() == 4 and len(frame) == 4 * 5
    assert frame.columns[:5].tolist() == [
        "scenario",
        "rate_scale",
        "categories.care.radius_km",
        "draw",
        "level",
    ]
    assert set(frame["status"]) == {"optimal", "infeasible"}
    for kind in ("processes", "dask"):
        pd.testing.assert_frame_equal(_stable(tables[kind]), _stable(frame), check_exact=True)
        written = pd.read_csv(tmp_path / kind / "sweep.csv")
        pd.testing.assert_frame_equal(
            _stable(written), _stable(pd.read_csv(tmp_path / "serial" / "sweep.csv"))
        )
    assert set(frame["draw"]) == {0}
    grouping = Path("scenarios", "s003", "groupings", "level-3.csv")
    assert (tmp_path / "dask" / grouping).read_text() == (
        tmp_path / "serial" / grouping
    ).read_text()
    assert (tmp_path / "serial" / "sweep.png").stat().st_size > 10_000
    code, stdout, stderr = cli("sweep", "--grid", path, "--out", tmp_path / "serial", "--resume")
    assert code == 0, stderr
    assert "s004" in stdout and "recommended level" in stdout


class _Stop(KeyboardInterrupt):
    """Raised by a listener to stop a sweep part way, as Ctrl-C would."""


def test_an_interrupted_sweep_resumes_without_redoing_finished_scenarios(tmp_path: Path) -> None:
    path = _file(tmp_path, TOY_SWEEP)
    out = tmp_path / "run"

    def stop_after_two(scenario: Scenario | None, done: int, total: int) -> None:
        if done == 2 and scenario is not None:
            raise _Stop

    with pytest.raises(_Stop):
        run_sweep(path, out, on_scenario=stop_after_two)
    finished = sorted(p.parent.name for p in out.glob("scenarios/*/scenario.json"))
    assert finished == ["s001", "s002"]
    stamps = {
        name: (out / "scenarios" / name / "curve.csv").stat().st_mtime_ns for name in finished
    }
    with pytest.raises(DataValidationError, match="holds a sweep already: add --resume"):
        run_sweep(path, out)
    calls: list[tuple[str | None, int, int]] = []
    table = run_sweep(
        path, out, resume=True, on_scenario=lambda s, d, t: calls.append((s and s.id, d, t))
    )
    assert calls == [(None, 2, 4), ("s003", 3, 4), ("s004", 4, 4)]
    assert {n: (out / "scenarios" / n / "curve.csv").stat().st_mtime_ns for n in finished} == stamps
    whole = run_sweep(path, tmp_path / "whole")
    pd.testing.assert_frame_equal(_stable(table), _stable(whole))
    changed = _file(tmp_path / "other", TOY_SWEEP.replace("[0.5, 1.0]", "[0.5, 0.9]"))
    with pytest.raises(DataValidationError, match="the sweep file or its inputs differ"):
        run_sweep(changed, out, resume=True)
    record = json.loads((out / "sweep.json").read_text())
    assert [s["scenario"] for s in record["scenarios"]] == ["s001", "s002", "s003", "s004"]


def _kill_a_busy_worker(address: str, killed: list[int], stop: threading.Event) -> None:
    """Wait until a worker is running a scenario, then kill its process (SIGKILL)."""
    with Client(address, timeout=30) as client:
        pids = client.run(os.getpid)
        while not stop.is_set():
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                time.sleep(0.5)  # well inside the scenario, not at its start
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(pids[busy[0]])
                return
            time.sleep(0.02)


def test_a_worker_killed_mid_sweep_loses_nothing(tmp_path: Path, cluster: LocalCluster) -> None:
    data = write_dataset(tmp_path / "data", 20, seed=2)
    text = (
        f'[sweep]\ndata = "{data}"\nmodel = "{data / "model.toml"}"\nlevels = "all"\n'
        "gap = 1e-6\ntime_limit = 60\n[draws]\ncount = 2\n"
    )
    path = _file(tmp_path, text)
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(
        target=_kill_a_busy_worker, args=(cluster.scheduler_address, killed, stop)
    )
    killer.start()
    try:
        options = ExecutorOptions("dask", scheduler=cluster.scheduler_address)
        table = run_sweep(path, tmp_path / "dask", executor=options)
    finally:
        stop.set()
        killer.join()
    assert killed, "a worker should have been killed while it ran a scenario"
    assert sorted(table["scenario"].unique()) == ["s001", "s002"]
    local = run_sweep(path, tmp_path / "local", executor=ExecutorOptions("processes", workers=2))
    pd.testing.assert_frame_equal(_stable(table), _stable(local), check_exact=True)
