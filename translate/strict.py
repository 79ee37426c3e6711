"""Strict typed configs: a mapping merged over a dataclass schema, where an unknown key is an
error naming the key (a typo in a YAML file must never be a silent no-op)."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import ConfigError


def strict_merge(schema: Any, *layers: Any, where: str) -> Any:
    """``schema`` (a dataclass type) with ``layers`` merged over it, as a dataclass instance."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), *layers)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{where}: {first_line}" + (f" (key '{key}')" if key else "")) from None
