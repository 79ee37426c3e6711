"""The ``i2i`` console script, and the check that ``translate``, ``augment`` and ``apps`` are ours.

Those three names are also the names of other distributions on PyPI (``translate``, ``augment``).
Installed in one environment, one package shadows the other (or pip writes both into one folder),
and the toolkit would fail far from the cause, with an ``AttributeError`` deep in an import. This
module has a name no other distribution uses, so it runs even when a foreign package has taken one
of the three names, and turns the clash into one clear error: which file was found, which
distribution it belongs to, and the fix (a separate virtual environment, or uninstalling the other
distribution). ``translate.cli`` (``python -m translate.cli``, torchrun), ``augment`` and ``apps``
run the same check when they start. Where pip wrote i2i's package over another distribution's
of the same name (one folder, i2i installed second), importing ours warns, so that project's
users learn why it broke.

Each of our packages marks its ``__init__.py`` with the line ``__i2i__ = True``. The check reads
that line instead of importing the package, so it never runs a foreign package's code and costs
three small file reads.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import warnings
from importlib import metadata
from pathlib import Path

#: the top-level packages of this project (the folders kept as they are)
PACKAGES = ("translate", "augment", "apps")
#: this project's distribution name, as in pyproject.toml
DISTRIBUTION = "i2i-translate"
_MARKER = re.compile(r"^__i2i__ = True\b", re.MULTILINE)


def check_packages() -> None:
    """Raise ``ImportError`` naming the file, its distribution and the fix when any of
    :data:`PACKAGES` resolves to another project's package."""
    problem = first_foreign_package()
    if problem is not None:
        raise ImportError(problem)


def first_foreign_package() -> str | None:
    """The problem with the first of :data:`PACKAGES` that is not this project's, or None."""
    for name in PACKAGES:
        problem = foreign_package(name)
        if problem is not None:
            return problem
    return None


def foreign_package(name: str) -> str | None:
    """Why ``import name`` would not give this project's package, or None when it would."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as exc:
        return f"the package '{name}' of i2i cannot be found: {exc}; reinstall i2i ({DISTRIBUTION})"
    if spec is None:
        return f"the package '{name}' of i2i is not installed; reinstall i2i ({DISTRIBUTION})"
    origin = spec.origin if spec.origin and spec.origin != "namespace" else None
    if origin is not None and _is_ours(Path(origin)):
        return None
    found = origin or ", ".join(spec.submodule_search_locations or []) or "an unknown place"
    return (
        f"i2i needs its own package '{name}', but Python imports '{name}' from {found}, {_owner(name)}. "
        f"Fix: install i2i in its own virtual environment (python3 -m venv), or {_removal(name)}"
    )


def _owner(name: str) -> str:
    others = other_distributions(name)
    if not others:
        return "which no installed distribution claims (a folder on sys.path)"
    described = " and ".join(f"'{dist}' {_version(dist)}".rstrip() for dist in others)
    return f"which belongs to the distribution {described} (another project of the same name)"


def _removal(name: str) -> str:
    others = other_distributions(name)
    if not others:
        return "take that folder off sys.path (PYTHONPATH, the current directory)"
    return f"`pip uninstall {' '.join(others)}` if you do not need it"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


def _is_ours(init_file: Path) -> bool:
    return bool(_MARKER.search(_read(init_file)))


def other_distributions(name: str) -> list[str]:
    """Each installed distribution but ours that provides the top-level package ``name``."""
    owners = dict.fromkeys(metadata.packages_distributions().get(name, []))
    return [dist for dist in owners if dist.lower().replace("_", "-") != DISTRIBUTION]


def warn_if_installed_over(name: str, init_file: str) -> None:
    """Warn when pip wrote another distribution's package ``name`` into the same folder as ours.

    pip keeps no two distributions' files apart: installed second, i2i replaced the other
    project's ``__init__.py``, so that project cannot be imported in this environment and its
    users see only an ``ImportError`` about a missing name. The warning says why. It costs one
    glob of the folder that holds the package.
    """
    package_dir = Path(init_file).parent
    for info in sorted(package_dir.parent.glob(f"{name}-*.dist-info")):
        if f"{name}/__init__.py," not in _read(info / "RECORD"):
            continue
        other, _, version = info.name.removesuffix(".dist-info").partition("-")
        warnings.warn(
            f"i2i's package '{name}' ({package_dir}) was installed over the package of the same name of the "
            f"distribution '{other}' {version}, which therefore cannot be imported here. Install i2i in its own "
            f"virtual environment (python3 -m venv); here, `pip uninstall {DISTRIBUTION}` and "
            f"`pip install --force-reinstall {other}` restore that project",
            UserWarning,
            stacklevel=2,
        )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    """The ``i2i`` command: the package check, then :func:`translate.cli.main`."""
    problem = first_foreign_package()
    if problem is not None:  # checked here because translate.cli cannot even be found when translate is foreign
        print(f"i2i: error: {problem}", file=sys.stderr)
        return 2
    from translate.cli import main as run_command

    return run_command(argv)


if __name__ == "__main__":
    sys.exit(main())
