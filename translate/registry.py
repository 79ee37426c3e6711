"""Name-based registries: a config string picks a class or function.

One registry per family (networks, objectives, models, datasets). Adding a generator means adding
one decorated class; nothing else is edited. Registries are filled by the explicit imports in each
family's ``__init__`` so that a missing import fails loudly instead of silently hiding an entry.
A name no built-in entry holds may be a plugin's: the first such miss imports the modules of the
``i2i.plugins`` entry points (:mod:`translate.plugins`), then looks again.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from . import plugins
from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """``required``: (attribute, what it is) pairs every entry must define, checked as it registers."""

    def __init__(self, family: str, required: tuple[tuple[str, str], ...] = ()) -> None:
        self.family = family
        self.required = required
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.family} '{name}' is registered twice")
            for attribute, meaning in self.required:
                if not callable(getattr(obj, attribute, None)):
                    raise ConfigError(
                        f"{self.family} '{name}' ({getattr(obj, '__qualname__', obj)}) does not declare "
                        f"{attribute}: {meaning}"
                    )
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        if name not in self:
            known = ", ".join(sorted(self._entries))
            raise ConfigError(f"unknown {self.family} '{name}'; known: {known}; {plugins.HOW_TO_REGISTER}")
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        if name not in self._entries:
            plugins.ENTRY_POINTS.load()  # a name no built-in holds may be a plugin's (once per process)
        return name in self._entries

    def build(self, spec: Mapping[str, Any], **extra: Any) -> Any:
        """Build ``spec['name']`` with the rest of ``spec`` (plus ``extra``) as keyword arguments.

        Keys the constructor does not accept are rejected by name, so a typo in a YAML file is an
        error instead of a silently ignored option.
        """
        spec = dict(spec)
        if "name" not in spec:
            raise ConfigError(f"{self.family} spec {spec} has no 'name'; known: {', '.join(self.names())}")
        name = spec.pop("name")
        factory = self.get(name)
        kwargs = {**spec, **extra}
        check_kwargs(factory, kwargs, what=f"{self.family} '{name}'")
        return factory(**kwargs)


def resolved_spec(registry: Registry, spec: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` with every constructor default filled in: a complete, self-contained record of an
    architecture that stays valid if a default changes in a later version."""
    spec = dict(spec)
    factory = registry.get(spec["name"])
    check_kwargs(factory, {k: v for k, v in spec.items() if k != "name"}, what=f"{registry.family} '{spec['name']}'")
    full = {"name": spec["name"]}
    for p in inspect.signature(factory).parameters.values():
        if p.default is not inspect.Parameter.empty:
            full[p.name] = p.default
    full.update(spec)
    return full


def accepted_kwargs(factory: Callable[..., Any]) -> set[str] | None:
    """Names ``factory`` accepts as keywords, or None when it takes ``**kwargs``."""
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY) and p.name != "self"
    }


def check_kwargs(factory: Callable[..., Any], kwargs: Mapping[str, Any], what: str) -> None:
    accepted = accepted_kwargs(factory)
    if accepted is None:
        return
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(repr(u) for u in unknown)} for {what}; "
            f"accepted: {', '.join(sorted(accepted))}"
        )
