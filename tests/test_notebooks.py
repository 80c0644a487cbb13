"""The notebooks: committed without outputs, importing only the package and the
scientific stack, and run top to bottom in a real Jupyter kernel."""

from __future__ import annotations

import ast
import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ORLIB = ROOT.parent / "shared" / "benchmarks" / "orlib"
EXPECTED = ["01-quickstart", "02-scenarios", "03-your-own-data", "04-benchmarks"]
ALLOWED_IMPORTS = {
    "optimizer",
    "pandas",
    "numpy",
    "matplotlib",
    "scipy",
    "math",
    "pathlib",
    "tempfile",
    "time",
}
KERNEL = "optimizer-notebooks"
CELL_TIMEOUT = 600


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def outputs_left(nb: nbformat.NotebookNode) -> list[int]:
    """Indices of code cells that hold outputs or an execution count."""
    return [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]


def imported_modules(nb: nbformat.NotebookNode) -> set[str]:
    """Top-level names of every module a notebook's code cells import."""
    names: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code = "\n".join(line for line in cell.source.splitlines() if not line.startswith("%"))
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module.split(".")[0])
    return names


def kernel_manager(folder: Path) -> KernelManager:
    """A kernel running this interpreter, whatever kernels the machine has installed."""
    spec = folder / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    payload = {"argv": argv, "display_name": "optimizer tests", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(payload), encoding="utf-8")
    specs = KernelSpecManager(kernel_dirs=[str(spec.parent)])
    return KernelManager(
        kernel_name=KERNEL, kernel_spec_manager=specs, transport="ipc", ip=str(folder / "ipc")
    )


def images(nb: nbformat.NotebookNode) -> int:
    return sum(
        "image/png" in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )


def test_the_four_notebooks_are_there() -> None:
    assert [p.stem for p in notebook_paths()] == EXPECTED


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = outputs_left(nb)
    assert not dirty, (
        f"{path.name}: code cells {dirty} hold outputs or execution counts;"
        " clear them with: jupyter nbconvert --clear-output --inplace notebooks/*.ipynb"
    )


def test_outputs_left_finds_outputs_and_counts() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# x"), nbformat.v4.new_code_cell("1 + 1")]
    assert outputs_left(nb) == []
    nb.cells[1].execution_count = 1
    assert outputs_left(nb) == [1]
    nb.cells[1].execution_count = None
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="2")]
    assert outputs_left(nb) == [1]


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_notebook_imports_only_the_package_and_the_scientific_stack(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    modules = imported_modules(nb)
    assert "optimizer" in modules
    assert modules <= ALLOWED_IMPORTS, sorted(modules - ALLOWED_IMPORTS)


def test_imported_modules_reads_every_import_form() -> None:
    nb = nbformat.v4.new_notebook()
    source = "%matplotlib inline\nimport os.path\nfrom optimizer import orlib\nimport numpy as np"
    nb.cells = [nbformat.v4.new_code_cell(source)]
    assert imported_modules(nb) == {"os", "optimizer", "numpy"}


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        km=kernel_manager(tmp_path),
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    client.execute(env={**os.environ, "TMPDIR": str(scratch)})  # raises on any cell's error
    assert len(outputs_left(nb)) > 0
    if path.stem != "04-benchmarks" or ORLIB.is_dir():
        assert images(nb) > 0, f"{path.name} drew no figure"
