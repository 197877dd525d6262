"""Where Shoebox's own data files are: the tag vocabulary, the calibrations, the icons, the desktop entry.

They live in ``resources/`` at the top of the source tree.  A wheel installs the same
files as ``engine/resources/`` inside the package (``pyproject.toml`` maps the folder
there), so a ``pip install`` or ``pipx install`` finds them without the source tree.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resources_dir() -> Path:
    """The folder of bundled files: inside the installed package, else the source tree's ``resources/``."""
    installed = _PACKAGE / "resources"
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / "resources"


RESOURCES = resources_dir()


def resource_path(*parts: str) -> Path:
    """A bundled file, e.g. ``resource_path("icons", "shoebox.svg")`` (it may not exist; the caller checks)."""
    return RESOURCES.joinpath(*parts)


def version() -> str:
    """Shoebox's version: the installed distribution's, else the source tree's ``engine.__version__``."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version("shoebox")
    except PackageNotFoundError:
        from . import __version__

        return __version__
