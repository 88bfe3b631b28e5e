"""Provider name → class: the built-ins plus plugins from the `ai_gateway.providers` entry points."""
from __future__ import annotations

import importlib
import logging
from functools import lru_cache
from importlib.metadata import entry_points

from app.providers.base import BaseProvider

ENTRY_POINT_GROUP = "ai_gateway.providers"
log = logging.getLogger("ai_gateway")

# Built-ins by import path, so one provider's import cost is paid only where it is used.
BUILTINS: dict[str, str] = {
    "bedrock": "app.providers.bedrock:BedrockProvider",
    "amazon-bedrock": "app.providers.bedrock:BedrockProvider",  # MLflow's alias
    "echo": "app.providers.echo:EchoProvider",
    "openai": "app.providers.openai:OpenAIProvider",
}


class PluginError(Exception):
    """A provider plugin could not be registered (name clash or broken entry point)."""


def _load(path: str) -> type[BaseProvider]:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


@lru_cache(maxsize=1)
def plugins() -> dict[str, object]:
    """Installed plugin entry points by name; a clash with a built-in or another plugin is fatal."""
    found: dict[str, object] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BUILTINS:
            raise PluginError(
                f"Provider plugin {ep.value!r} uses the name {ep.name!r}, which a built-in "
                "provider already has; rename the plugin's entry point."
            )
        if ep.name in found:
            raise PluginError(
                f"Two provider plugins use the name {ep.name!r}: {found[ep.name].value!r} "  # type: ignore[attr-defined]
                f"and {ep.value!r}; uninstall one of them."
            )
        found[ep.name] = ep
    return found


def names() -> list[str]:
    return sorted({*BUILTINS, *plugins()})


@lru_cache(maxsize=None)
def get(name: str) -> type[BaseProvider] | None:
    """The provider class for a YAML `provider:` value, or None if unknown."""
    if name in BUILTINS:
        return _load(BUILTINS[name])
    ep = plugins().get(name)
    if ep is None:
        return None
    try:
        cls = ep.load()  # type: ignore[attr-defined]
    except Exception as exc:  # a plugin's import can fail in any way; report it, do not crash
        raise PluginError(f"Provider plugin {name!r} failed to load: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, BaseProvider)):
        raise PluginError(f"Provider plugin {name!r} does not point at a BaseProvider subclass.")
    return cls
