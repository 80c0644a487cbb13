"""Grouping files and atomic writes.

A grouping file is CSV with the columns ``body_id,category,site_id``: for
every body and category with spend, the agency (site) that buys it.
"""

from __future__ import annotations

import json
import os
import tempfile
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
    """Write JSON atomically, indented, keys in insertion order."""
    atomic_write_text(path, json.dumps(payload, indent=2, default=_plain) + "\n")


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


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
    if {k: before.get(k) for k in stamp} != json.loads(json.dumps(stamp, default=str)):
        raise DataValidationError(
            [
                f"({record}) | {compared} differ from the {kind} recorded here;"
                " resume with the same ones, or use another --out"
            ]
        )
    return False
