"""Grouping files, atomic writes, strict JSON and the output folders commands write.

A grouping file is CSV with the columns ``body_id,category,site_id``: for
every body and category with spend, the agency (site) that buys it. JSON is
written strict (non-finite numbers as ``null``). A command's output folder
is new, empty or its own kind, and locked while it writes
(:func:`output_folder`).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from optimizer.errors import DataValidationError
from optimizer.evaluate import GROUPING_COLUMNS
from optimizer.schema import Problems, read_csv, require_columns


def read_groupings(path: Path | str) -> pd.DataFrame:
    """Read a grouping CSV; raise a validation error naming what is wrong."""
    path = Path(path)
    problems = Problems()
    frame = read_csv(path, problems)
    if frame is not None:
        require_columns(frame, path.name, GROUPING_COLUMNS, problems)
    problems.raise_if_any()
    assert frame is not None
    for column in GROUPING_COLUMNS:
        for i in (frame[column] == "").to_numpy().nonzero()[0]:
            problems.add(path.name, int(i) + 2, column, f"blank {column}")
    problems.raise_if_any()
    return frame[GROUPING_COLUMNS]


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; results are for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's file-creation mask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_groupings(path: Path, groupings: pd.DataFrame) -> None:
    """Write a grouping table atomically, sorted by body and category."""
    table = groupings[GROUPING_COLUMNS].sort_values(["body_id", "category"])
    atomic_write_text(path, table.to_csv(index=False, lineterminator="\n"))


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write strict JSON atomically, indented, keys in insertion order.

    NaN and infinite numbers, which JSON has no words for, are written as
    ``null`` (:func:`strict`).
    """
    atomic_write_text(path, json.dumps(strict(payload), indent=2, allow_nan=False) + "\n")


def strict(value: Any) -> Any:
    """``value`` as plain JSON data: numpy scalars as Python ones, NaN and infinities as None.

    Examples
    --------
    >>> strict({"gap": float("inf"), "bound": [1.5, float("nan")]})
    {'gap': None, 'bound': [1.5, None]}
    """
    if isinstance(value, dict):
        return {str(k): strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float):
        return value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_row(text: str) -> dict[str, Any]:
    """A row written by :func:`write_json`, its nulls read back as NaN.

    Examples
    --------
    >>> read_row('{"level": 2, "total": null, "status": "infeasible"}')
    {'level': 2, 'total': nan, 'status': 'infeasible'}
    """
    row: dict[str, Any] = json.loads(text)
    return {k: math.nan if v is None else v for k, v in row.items()}


def claim_folder(
    record: Path, stamp: dict[str, Any], resume: bool, kind: str, compared: str
) -> bool:
    """Start a run in ``record``'s folder, or check that it may be resumed there.

    A new folder is claimed by writing nothing yet: the caller writes the
    record. An existing ``record`` is refused without ``resume``, and with it
    unless its ``stamp`` keys equal ``stamp`` (``compared`` names them in the
    message; ``kind`` is "run" or "sweep").

    Returns
    -------
    bool
        True when ``record`` is new and the caller should write it.
    """
    if not record.exists():
        return True
    if not resume:
        raise DataValidationError(
            [
                f"({record.parent}) | holds a {kind} already: add --resume to continue it,"
                " or choose another --out"
            ]
        )
    before = json.loads(record.read_text(encoding="utf-8"))
    if {k: before.get(k) for k in stamp} != strict(stamp):
        raise DataValidationError(
            [
                f"({record}) | {compared} differ from the {kind} recorded here;"
                " resume with the same ones, or use another --out"
            ]
        )
    return False


# ------------------------------------------------------------------ output folders

LOCK = ".consolidate.lock"
RECORDS = {"curve": "run.json", "sweep": "sweep.json"}  # the file that marks each kind
SOLVE_FILES = frozenset({"groupings.csv", "summary.json"})  # all a solve folder holds
KIND_NAMES = {"curve": "a curve run", "sweep": "a sweep", "solve": "a solve's output"}


def folder_kind(folder: Path) -> str | None:
    """What ``folder`` holds: ``empty``, ``curve``, ``sweep``, ``solve``, or None (other files).

    A missing folder is ``empty``; the lock file (:func:`output_folder`) does not count.
    """
    if not folder.is_dir():
        return "empty"
    names = {p.name for p in folder.iterdir()} - {LOCK}
    if not names:
        return "empty"
    for kind, record in RECORDS.items():
        if record in names:
            return kind
    return "solve" if names <= SOLVE_FILES else None


def writable_folder(folder: Path, option: str) -> Path:
    """Create ``folder`` (and its parents) and check that files can be made in it.

    Raises
    ------
    DataValidationError
        Naming ``option`` and the folder, when it is a file or cannot be written.
    """
    if folder.exists() and not folder.is_dir():
        raise DataValidationError([f"({option}) | {folder} is a file, not a folder"])
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".probe.", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise DataValidationError(
            [f"({option}) | cannot write in {folder}: {err.strerror or err}"]
        ) from None
    return folder


def writable_file(path: Path, option: str) -> Path:
    """Check that ``path`` can be written (its folder is created), naming ``option`` if not."""
    if path.is_dir():
        raise DataValidationError([f"({option}) | {path} is a folder, not a file"])
    writable_folder(path.parent, option)
    return path


@contextmanager
def output_folder(folder: Path, kind: str, option: str = "--out") -> Iterator[Path]:
    """Hold ``folder`` for one writer of ``kind`` (``curve``, ``sweep`` or ``solve``).

    The folder must be new, empty, or hold the output of the same kind
    (whether that may be continued or replaced is the caller's rule:
    :func:`claim_folder`); anything else, a user's own files or another
    command's output, is refused untouched. While the block runs the folder
    is locked (``fcntl.flock`` on ``.consolidate.lock`` in it): a second
    writer is refused at once. The kernel drops the lock when the process
    ends however it ends, so a lock file left by a crash blocks nobody; the
    file is removed on leaving the block.

    Raises
    ------
    DataValidationError
        Naming the folder.
    """
    found = folder_kind(folder)
    if found not in ("empty", kind):
        held = f"other files ({_some(folder)})" if found is None else KIND_NAMES[found]
        raise DataValidationError(
            [
                f"({folder}) | holds {held}, not {KIND_NAMES[kind]}: nothing was written;"
                f" give {option} a new or empty folder"
            ]
        )
    writable_folder(folder, option)
    handle = _lock(folder / LOCK)
    try:
        yield folder
    finally:
        (folder / LOCK).unlink(missing_ok=True)
        os.close(handle)  # closing the last descriptor releases the lock


def _some(folder: Path, shown: int = 3) -> str:
    """A few of the names in ``folder``, sorted: ``a.txt, b.csv, ... (5 in all)``."""
    names = sorted(p.name for p in folder.iterdir() if p.name != LOCK)
    more = f", ... ({len(names)} in all)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _lock(path: Path) -> int:
    """An open descriptor of ``path`` holding its exclusive lock; refuse if another holds it."""
    while True:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(handle)
            raise DataValidationError(
                [f"({path.parent}) | another run is writing to this folder; wait for it to finish"]
            ) from None
        if _same_file(handle, path):
            return handle
        os.close(handle)  # the holder removed the file as we locked it: lock the new one


def _same_file(handle: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(handle), os.stat(path))
    except FileNotFoundError:
        return False
