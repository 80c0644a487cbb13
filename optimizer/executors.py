"""Where independent tasks run: this process, local worker processes, or a Dask cluster.

A caller hands over one function, one shared payload (sent to each worker
once: the instance and the options) and a list of tasks (levels of a curve,
scenarios of a sweep), and gets each task's result back as soon as it
finishes, so it can write it at once. Nothing here schedules work itself:

* ``serial`` runs the tasks one after another in this process;
* ``processes`` (the default) uses :class:`concurrent.futures.ProcessPoolExecutor`
  with fresh worker interpreters (forked from a server process that has
  imported this package once, where the platform allows, else spawned);
  workers leave Ctrl-C to the parent, which stops them, and exit if it dies;
* ``dask`` uses a :class:`distributed.Client`, on a new ``LocalCluster`` or on
  a running scheduler (``scheduler="tcp://HOST:PORT"``). Dask re-runs the
  task of a lost worker elsewhere; the workers of an existing cluster need
  this package installed.

The executor delivers results and never changes them: a task must be a
pure function of the shared payload and the task itself.

Examples
--------
>>> with completed(pow, 2, [3, 5], ExecutorOptions("serial")) as results:
...     sorted(results)
[(0, 8), (1, 32)]
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sized
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from optimizer.errors import DataValidationError

EXECUTORS = ("serial", "processes", "dask")
CONNECT_SECONDS = 10
WORKERS_PER_CORE = 4  # the most worker processes started here, per CPU core

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")
Results = Iterator[tuple[int, R]]


@dataclass(frozen=True)
class ExecutorOptions:
    """Where tasks run.

    Attributes
    ----------
    kind : str
        ``serial``, ``processes`` (default) or ``dask``.
    workers : int, optional
        Worker processes (``processes``, or a new Dask ``LocalCluster``);
        default: one per CPU, never more than there are tasks. At most
        :data:`WORKERS_PER_CORE` per CPU core when they are started here
        (no ``scheduler``).
    scheduler : str, optional
        The address of a running Dask scheduler (``tcp://HOST:PORT``); only
        with ``kind="dask"``. Without it, ``dask`` starts a ``LocalCluster``.
    """

    kind: str = "processes"
    workers: int | None = None
    scheduler: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise DataValidationError(
                [f"(--executor) | expected one of {list(EXECUTORS)}, got {self.kind!r}"]
            )
        if self.workers is not None and self.workers < 1:
            raise DataValidationError([f"(--workers) | must be at least 1, got {self.workers}"])
        most = WORKERS_PER_CORE * (os.cpu_count() or 1)
        if self.workers is not None and self.scheduler is None and self.workers > most:
            raise DataValidationError(
                [
                    f"(--workers) | at most {most} worker processes on this machine"
                    f" ({WORKERS_PER_CORE} per CPU core), got {self.workers}"
                ]
            )
        if self.scheduler is not None and self.kind != "dask":
            raise DataValidationError(
                [f"(--scheduler) | a scheduler address needs --executor dask, not {self.kind!r}"]
            )


def executor_options(
    kind: str | None, scheduler: str | None = None, workers: int | None = None
) -> ExecutorOptions:
    """Options from the command line: ``--scheduler`` alone means ``dask``.

    Examples
    --------
    >>> executor_options(None, "tcp://10.0.0.5:8786").kind
    'dask'
    >>> executor_options(None).kind
    'processes'
    """
    chosen = kind if kind is not None else ("dask" if scheduler else "processes")
    return ExecutorOptions(chosen, workers=workers, scheduler=scheduler or None)


@contextmanager
def completed(
    fn: Callable[[S, T], R],
    shared: S,
    tasks: Iterable[T],
    options: ExecutorOptions,
    size: int | None = None,
    then: Callable[[], Iterable[T]] | None = None,
) -> Iterator[Results[R]]:
    """Run ``fn(shared, task)`` for every task; iterate ``(index, result)`` as each finishes.

    Leaving the ``with`` block early (Ctrl-C, an error) cancels what has not
    run and stops the workers this call started; results already received
    are the caller's. A task's exception is raised when its result is reached.

    Parameters
    ----------
    fn : callable
        A module-level function (workers import it by name).
    shared : object
        Picklable; sent to each worker once.
    tasks : iterable
        Picklable, independent tasks. Each is handed over as soon as it is
        drawn, so a generator that computes them lets the workers start on
        the first while it makes the next; results are read once all are.
    options : ExecutorOptions
        Where to run them.
    size : int, optional
        How many tasks there are, when ``tasks`` has no length (a generator).
    then : callable, optional
        A second round: called once every task's result has been read, its
        tasks run next on the same workers (which keep what the first round
        left in them), their indices following the first round's.
    """
    count = len(tasks) if size is None and isinstance(tasks, Sized) else size
    if options.kind == "serial" or count == 0:
        tasks = itertools.chain.from_iterable(_batches(tasks, then))
        yield ((i, fn(shared, task)) for i, task in enumerate(tasks))
    elif options.kind == "processes":
        with _processes(fn, shared, tasks, worker_count(options, count), then) as results:
            yield results
    else:
        with _dask(fn, shared, tasks, options, count, then) as results:
            yield results


def _batches(tasks: Iterable[T], then: Callable[[], Iterable[T]] | None) -> Iterator[Iterable[T]]:
    """The tasks, then (only once asked for, after them) those of ``then()``."""
    yield tasks
    if then is not None:
        yield then()


def _rounds(
    submit: Callable[[T], Any],
    done: Callable[[list[Any]], Iterable[Any]],
    key: Callable[[Any], Any],
    batches: Iterator[Iterable[T]],
) -> Results[Any]:
    """Submit each batch once the one before has finished; yield results as they come."""
    first = 0
    for batch in batches:
        futures = [submit(task) for task in batch]
        index = {key(f): first + i for i, f in enumerate(futures)}
        first += len(futures)
        yield from ((index[key(f)], f.result()) for f in done(futures))


def worker_count(options: ExecutorOptions, n_tasks: int | None = None) -> int:
    """How many workers run ``n_tasks`` tasks: one in series, else ``workers`` or one per CPU.

    Never more than there are tasks. For a running Dask scheduler without
    ``workers``, this machine's CPU count stands in for the cluster's.

    Examples
    --------
    >>> worker_count(ExecutorOptions("processes", workers=4), n_tasks=3)
    3
    >>> worker_count(ExecutorOptions("serial"))
    1
    """
    if options.kind == "serial":
        return 1
    wanted = options.workers or os.cpu_count() or 1
    return max(1, wanted if n_tasks is None else min(wanted, n_tasks))


# -------------------------------------------------------------- local processes

_SHARED: dict[str, Any] = {}


@contextmanager
def _processes(
    fn: Callable[[S, T], R],
    shared: S,
    tasks: Iterable[T],
    workers: int,
    then: Callable[[], Iterable[T]] | None = None,
) -> Iterator[Results[R]]:
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_context(),
        initializer=_start_worker,
        initargs=(shared,),
    )
    finished = False
    try:

        def submit(task: T) -> Future[R]:
            return pool.submit(_run_task, fn, task)

        yield _rounds(submit, as_completed, lambda f: f, _batches(tasks, then))
        finished = True
    finally:
        if not finished:
            _stop_workers(pool)
        pool.shutdown(wait=finished, cancel_futures=True)


def _context() -> multiprocessing.context.BaseContext:
    """Fresh interpreters, forked from a server that has imported this package once."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["optimizer"])
    return context


def _start_worker(shared: Any) -> None:
    """In a worker: keep the payload, leave Ctrl-C to the parent, exit when it dies."""
    _SHARED["payload"] = shared
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def _run_task(fn: Callable[[Any, T], R], task: T) -> R:
    return fn(_SHARED["payload"], task)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's workers: a task in progress is abandoned, not waited for."""
    for process in list(pool._processes.values()):  # the pool offers no public way before 3.14
        process.terminate()


# ------------------------------------------------------------------------ dask


@contextmanager
def _dask(
    fn: Callable[[S, T], R],
    shared: S,
    tasks: Iterable[T],
    options: ExecutorOptions,
    size: int | None,
    then: Callable[[], Iterable[T]] | None = None,
) -> Iterator[Results[R]]:
    from distributed import Client
    from distributed import as_completed as dask_completed

    with ExitStack() as stack:
        target: Any = options.scheduler
        if target is None:
            target = stack.enter_context(local_cluster(worker_count(options, size)))
        client = stack.enter_context(_connect(Client, target))
        futures: list[Any] = []
        try:
            payload = client.submit(_shared, shared, pure=False)

            def submit(task: T) -> Any:
                futures.append(client.submit(fn, payload, task, pure=False))
                return futures[-1]

            yield _rounds(submit, dask_completed, lambda f: f.key, _batches(tasks, then))
        finally:
            client.cancel(futures)


def _shared(shared: S) -> S:
    """The tasks' shared input as a task of its own.

    Scattered data lives only on the workers that hold it: when they die,
    every task that needs it is cancelled. A task's result is recomputed
    from its spec, which the scheduler keeps, on a worker still alive.
    """
    return shared


@contextmanager
def local_cluster(workers: int) -> Iterator[Any]:
    """A Dask ``LocalCluster`` of single-threaded worker processes, closed on exit.

    Its workers run without Dask's default ``MALLOC_TRIM_THRESHOLD_``: setting
    it stops glibc adapting its mmap threshold, and the solver's many
    mid-sized arrays then cost about twice the time. The nannies set their
    variables in this process's environment too; it is restored on exit.
    """
    import dask
    from distributed import LocalCluster

    saved = dict(os.environ)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
        with cluster:
            yield cluster
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _connect(client_type: Any, target: Any) -> Any:
    try:
        return client_type(target, timeout=CONNECT_SECONDS)
    except (OSError, TimeoutError) as err:
        raise DataValidationError(
            [f"(--scheduler) | cannot reach the Dask scheduler {target!r}: {err}"]
        ) from None
