"""Plugins: a user's own networks, models and datasets, registered from their own package.

A plugin is a module whose import registers classes into the toolkit's registries (``GENERATORS``,
``DISCRIMINATORS``, ``MODELS``, ``NETWORK_FAMILIES``, ...) with the usual decorators. It is found
in one of two ways:

* an entry point in the group ``i2i.plugins`` of an installed distribution, e.g. in its
  ``pyproject.toml``: ``[project.entry-points."i2i.plugins"] mynet = "mypkg.nets"``. These are
  imported lazily, the first time a registry is asked for a name it does not hold, once per
  process, so every place that loads an export (``translate.load_generator``, ``i2i translate``,
  the app, the study, DataLoader workers) finds a plugin's networks without being told;
* ``--import MODULE`` of the ``i2i`` subcommands (:func:`import_modules`), for a module that is
  not installed as a distribution.

See docs/plugins.md.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from importlib import metadata
from pathlib import Path
from types import ModuleType

from .errors import ConfigError

ENTRY_POINT_GROUP = "i2i.plugins"

#: appended to "unknown name" errors: how a missing name could be registered
HOW_TO_REGISTER = (
    f"a class of your own is registered by importing its module: import it first (--import MODULE on the "
    f"command line) or declare it as an entry point of group '{ENTRY_POINT_GROUP}' (see docs/plugins.md)"
)


class EntryPointPlugins:
    """Imports the modules named by the ``i2i.plugins`` entry points, once.

    A registry asks for them only when a name is missing, so a process that uses only built-in
    names never imports a plugin (a broken one cannot break it) and pays nothing to scan the
    installed distributions.
    """

    def __init__(self, group: str = ENTRY_POINT_GROUP) -> None:
        self.group = group
        self.loaded = False
        self._loading = False
        # another thread (the app serves requests in threads) waits until the plugins are in; the
        # importing thread itself passes (a plugin's import may look a name up)
        self._lock = threading.RLock()

    def load(self) -> None:
        """Import every plugin of the group, the first time only; a plugin that fails to import is
        a ``ConfigError`` naming its entry point and module (and again on the next call)."""
        with self._lock:
            if self.loaded or self._loading:
                return
            self._loading = True
            try:
                for entry_point in metadata.entry_points(group=self.group):
                    load_entry_point(entry_point)
                self.loaded = True
            finally:
                self._loading = False


def load_entry_point(entry_point: metadata.EntryPoint) -> object:
    """Import (and return) what one entry point names; a failure is one clear line."""
    try:
        return entry_point.load()
    except Exception as exc:  # any error raised while importing the plugin's module is the plugin's
        where = entry_point.dist.name if entry_point.dist is not None else "an installed distribution"
        raise ConfigError(
            f"plugin entry point '{entry_point.name}' (group '{entry_point.group}', module '{entry_point.value}', "
            f"from {where}) failed to import: {type(exc).__name__}: {exc}"
        ) from exc


#: the entry-point plugins of this process (a process imports a module once, so their state is its)
ENTRY_POINTS = EntryPointPlugins()


def import_modules(modules: list[str] | None) -> None:
    """Import each module of ``--import MODULE``: a dotted name on ``sys.path`` or a ``.py`` file."""
    for module in modules or []:
        try:
            import_module(module)
        except Exception as exc:  # a missing module or an error inside it: either way the user's module
            raise ConfigError(f"--import {module}: cannot import it: {type(exc).__name__}: {exc}") from exc


def import_module(module: str) -> ModuleType:
    """Import ``module``; a path to a ``.py`` file is imported under its stem (and kept in
    ``sys.modules`` under that name, so pickles and later imports find the same module)."""
    if not module.endswith(".py"):
        return importlib.import_module(module)
    path = Path(module)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    name = path.stem
    if name in sys.modules:
        already = getattr(sys.modules[name], "__file__", None)
        if already is not None and Path(already).resolve() == path.resolve():
            return sys.modules[name]
        raise ImportError(f"a module named '{name}' is already imported (from {already}); rename {path}")
    spec = importlib.util.spec_from_file_location(name, path)
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    try:
        spec.loader.exec_module(loaded)
    except BaseException:
        del sys.modules[name]  # a half-run module must not be found by the next import
        raise
    return loaded
