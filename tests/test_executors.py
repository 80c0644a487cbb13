"""Executors: the same results in this process, in local processes and on Dask; clean stops."""

from __future__ import annotations

import operator
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psutil
import pytest
from distributed import LocalCluster

import optimizer
from optimizer import executors
from optimizer.curve import CurveOptions, consolidation_curve
from optimizer.errors import DataValidationError
from optimizer.executors import ExecutorOptions, completed, executor_options, local_cluster
from optimizer.solve import SolverOptions
from tests.conftest import CLI_CODE, CliRunner
from tests.synthetic import write_synthetic

STABLE = ["level", "total", "agencies", "desks", "purchases", "distance", "savings", "status"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """A 2-worker Dask cluster shared by this module's tests."""
    with local_cluster(2) as running:
        yield running


def two_workers(kind: str, cluster: LocalCluster) -> ExecutorOptions:
    """Two workers of ``kind``; for dask, those of the module's cluster."""
    address = cluster.scheduler_address if kind == "dask" else None
    return ExecutorOptions(kind, workers=2, scheduler=address)


@pytest.mark.parametrize(
    ("kind", "workers", "scheduler", "message"),
    [
        ("threads", None, None, "(--executor) | expected one of"),
        ("processes", 0, None, "(--workers) | must be at least 1"),
        ("processes", None, "tcp://127.0.0.1:8786", "(--scheduler) | a scheduler address needs"),
    ],
)
def test_bad_executor_options_are_bad_input(
    kind: str, workers: int | None, scheduler: str | None, message: str
) -> None:
    with pytest.raises(DataValidationError) as caught:
        ExecutorOptions(kind, workers=workers, scheduler=scheduler)
    assert message in str(caught.value)


def test_a_scheduler_address_alone_means_dask() -> None:
    assert executor_options(None, "tcp://10.0.0.5:8786") == ExecutorOptions(
        "dask", scheduler="tcp://10.0.0.5:8786"
    )
    assert executor_options(None).kind == "processes"
    assert executor_options("serial").kind == "serial"


@pytest.mark.parametrize("kind", ["serial", "processes", "dask"])
def test_every_task_returns_once_with_its_index(kind: str, cluster: LocalCluster) -> None:
    options = two_workers(kind, cluster)
    with completed(operator.pow, 3, list(range(7)), options) as results:
        got = dict(results)
    assert got == {i: 3**i for i in range(7)}


@pytest.mark.parametrize("kind", ["serial", "processes", "dask"])
def test_tasks_may_come_from_a_generator(kind: str, cluster: LocalCluster) -> None:
    options = two_workers(kind, cluster)
    drawn: list[int] = []

    def tasks() -> Iterator[int]:
        for i in range(7):
            drawn.append(i)
            yield i

    with completed(operator.pow, 3, tasks(), options, size=7) as results:
        got = dict(results)
    assert got == {i: 3**i for i in range(7)} and drawn == list(range(7))


@pytest.mark.parametrize("kind", ["serial", "processes", "dask"])
def test_a_second_round_is_drawn_once_the_first_is_read(kind: str, cluster: LocalCluster) -> None:
    options = two_workers(kind, cluster)
    read: list[int] = []

    def then() -> list[int]:
        assert sorted(read) == [3**i for i in range(5)]
        return [10 + i for i in range(3)]

    with completed(operator.pow, 3, list(range(5)), options, then=then) as results:
        got = {}
        for i, value in results:
            read.append(value)
            got[i] = value
    assert got == {**{i: 3**i for i in range(5)}, **{5 + i: 3 ** (10 + i) for i in range(3)}}


@pytest.mark.parametrize("kind", ["processes", "dask"])
def test_a_task_error_reaches_the_caller(kind: str, cluster: LocalCluster) -> None:
    options = two_workers(kind, cluster)
    with (
        pytest.raises(ZeroDivisionError),
        completed(operator.truediv, 1.0, [2.0, 0.0], options) as results,
    ):
        list(results)


def test_curve_rows_are_the_same_on_every_executor(cluster: LocalCluster) -> None:
    toy = optimizer.load("toy")
    options = CurveOptions(levels=(6, 5, 4, 3, 2), solver=SolverOptions(gap=1e-9))
    frames = [
        consolidation_curve(toy, options, executor=executor).to_frame()[STABLE]
        for executor in (
            None,
            ExecutorOptions("serial"),
            ExecutorOptions("processes", workers=2),
            ExecutorOptions("dask", scheduler=cluster.scheduler_address),
        )
    ]
    assert frames[0]["status"].tolist() == ["optimal"] * 4 + ["infeasible"]
    for frame in frames[1:]:
        pd.testing.assert_frame_equal(frames[0], frame)


def test_curve_command_on_a_new_local_cluster(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, _, stderr = cli(
        "curve", "--data", "toy", "--levels", "6..3", "--gap", "1e-9", "--out", out,
        "--executor", "dask", "--workers", "2",
    )  # fmt: skip
    assert code == 0, stderr
    assert sorted(p.name for p in (out / "groupings").iterdir()) == [
        f"level-{k}.csv" for k in (3, 4, 5, 6)
    ]
    here = consolidation_curve(
        optimizer.load("toy"), CurveOptions(levels=(6, 5, 4, 3), solver=SolverOptions(gap=1e-9))
    )
    pd.testing.assert_frame_equal(pd.read_csv(out / "curve.csv")[STABLE], here.to_frame()[STABLE])


def test_an_unreachable_scheduler_is_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executors, "CONNECT_SECONDS", 1)
    options = ExecutorOptions("dask", scheduler="tcp://127.0.0.1:9")
    with (
        pytest.raises(DataValidationError, match=r"\(--scheduler\) \| cannot reach the Dask"),
        completed(operator.pow, 2, [1], options) as results,
    ):
        list(results)


def test_a_bad_executor_exits_2(cli: CliRunner, tmp_path: Path) -> None:
    code, _, stderr = cli("curve", "--data", "toy", "--out", tmp_path / "r", "--executor", "mpi")
    assert code == 2 and "(--executor) | expected one of" in stderr


def _curve(folder: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    args = ["curve", "--data", folder, "--model", folder / "model.toml", "--out", out]
    return subprocess.Popen(
        [sys.executable, "-c", CLI_CODE, *map(str, args), "--levels", "30..12", "--gap", "1e-9",
         "--executor", "processes", "--workers", "2", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def test_ctrl_c_stops_the_workers_and_resume_skips_finished_levels(tmp_path: Path) -> None:
    folder = write_synthetic(tmp_path / "data", n_bodies=30)
    out = tmp_path / "stopped"
    run = _curve(folder, out)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list((out / "levels").glob("*.json"))) < 3:
        time.sleep(0.05)
    workers = psutil.Process(run.pid).children(recursive=True)
    assert workers, "the curve should run in worker processes"
    os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr
    assert "Traceback" not in stderr
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"workers left running: {alive}"
    finished = {p: p.stat().st_mtime_ns for p in (out / "levels").glob("*.json")}
    assert 3 <= len(finished) < 19, "the run should have been stopped part way"
    resumed = _curve(folder, out, "--resume")
    assert resumed.wait(timeout=600) == 0, resumed.communicate()[1]
    assert {p: p.stat().st_mtime_ns for p in finished} == finished
    curve = pd.read_csv(out / "curve.csv")
    assert curve["level"].tolist() == list(range(30, 11, -1))
    assert set(curve["status"]) == {"optimal"}


def test_project_errors_cross_process_boundaries_intact() -> None:
    """Workers return errors pickled: message and fields survive, in a process without Dask.

    (Importing ``distributed`` changes how every exception pickles, so this runs apart.)
    """
    code = (
        "import pickle\n"
        "from optimizer.errors import DataValidationError, NoGroupingError\n"
        "errors = DataValidationError(['(spend.csv, row 3) | bad']), NoGroupingError('m', 2.5)\n"
        "for error in errors:\n"
        "    again = pickle.loads(pickle.dumps(error))\n"
        "    assert type(again) is type(error) and str(again) == str(error), str(again)\n"
        "    assert vars(again) == vars(error), vars(again)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
