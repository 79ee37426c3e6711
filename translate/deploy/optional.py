"""The optional packages of the ``deploy`` extra, imported only when asked for."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from ..errors import ConfigError

EXTRA = "pip install 'i2i-translate[deploy]'"


def is_installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def require(module: str, purpose: str) -> ModuleType:
    """``module`` imported, or an error naming the extra that brings it."""
    if not is_installed(module):
        raise ConfigError(f"{purpose} needs the '{module}' package, which is not installed: {EXTRA}")
    return importlib.import_module(module)
