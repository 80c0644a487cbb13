"""Locate the data and model files shipped with the package."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_path(*parts: str) -> Path:
    """Return the path of a shipped file under ``datasets/`` or ``models/``.

    Parameters
    ----------
    *parts : str
        Path components below the project root, e.g. ``("models", "toy.toml")``.

    Returns
    -------
    pathlib.Path
        The bundled copy inside an installed wheel, else the source tree's.
    """
    bundled = _PACKAGE / "_data" / Path(*parts)
    return bundled if bundled.exists() else _PACKAGE.parent / Path(*parts)
