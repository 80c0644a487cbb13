import os
import stat
from pathlib import Path

import pytest

from optimizer.results import atomic_write_text


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_atomic_files_get_the_usual_permissions(tmp_path: Path, mask: int) -> None:
    """Results are written like any other file: the umask decides, not mkstemp's 0600."""
    before = os.umask(mask)
    try:
        atomic_write_text(tmp_path / "curve.csv", "level\n4\n")
    finally:
        os.umask(before)
    mode = stat.S_IMODE((tmp_path / "curve.csv").stat().st_mode)
    assert mode == 0o666 & ~mask
    assert (tmp_path / "curve.csv").read_text() == "level\n4\n"
    assert [p.name for p in tmp_path.iterdir()] == ["curve.csv"]
