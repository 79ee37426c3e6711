"""Strict typed configs: a mapping merged over a dataclass schema, where an unknown key is an
error naming the key (a typo in a YAML file must never be a silent no-op)."""

from __future__ import annotations

from pathlib import Path
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


def config_layers(path: str | Path | None, overrides: list[str] | None = None) -> list[Any]:
    """The layers a strict config is merged from: a YAML file (optional) and ``key=value``
    overrides, each read with errors that name the file or the override."""
    layers = []
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            layers.append(OmegaConf.load(path))
        except Exception as exc:  # yaml errors carry line numbers in their message
            raise ConfigError(f"cannot parse {path}: {exc}") from None
    if overrides:
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise ConfigError(f"overrides must look like key=value, got {bad}")
        layers.append(OmegaConf.from_dotlist(list(overrides)))
    return layers
