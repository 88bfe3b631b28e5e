"""Provider name → class: the built-ins plus plugins from the `ai_gateway.providers` entry points."""
from __future__ import annotations

import importlib
import logging
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points

from app.providers.base import BaseProvider

ENTRY_POINT_GROUP = "ai_gateway.providers"
log = logging.getLogger("ai_gateway")

# Built-ins by import path, so one provider's import cost is paid only where it is used.
BUILTINS: dict[str, str] = {
    "anthropic": "app.providers.anthropic:AnthropicProvider",
    "cohere": "app.providers.cohere:CohereProvider",
    "bedrock": "app.providers.bedrock:BedrockProvider",
    "echo": "app.providers.echo:EchoProvider",
    "openai": "app.providers.openai:OpenAIProvider",
    "gemini": "app.providers.gemini:GeminiProvider",
    "palm": "app.providers.gemini:PalmProvider",
    "mistral": "app.providers.mistral:MistralProvider",
    "togetherai": "app.providers.togetherai:TogetherAIProvider",
    "ai21labs": "app.providers.ai21labs:AI21LabsProvider",
    "mosaicml": "app.providers.mosaicml:MosaicMLProvider",
    "huggingface-text-generation-inference": "app.providers.huggingface_tgi:HuggingFaceTGIProvider",
    "mlflow-model-serving": "app.providers.mlflow_serving:MLflowServingProvider",
}

# Other names MLflow configs use for a built-in provider.
ALIASES: dict[str, str] = {"amazon-bedrock": "bedrock"}


class PluginError(Exception):
    """A provider plugin could not be registered (name clash or broken entry point)."""


def _load(path: str) -> type[BaseProvider]:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _where(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    owner = f"{dist.metadata['Name']} {dist.version}" if dist is not None else "an unknown distribution"
    return f"{ep.value!r} from {owner}"


@lru_cache(maxsize=1)
def plugins() -> dict[str, EntryPoint]:
    """Installed plugin entry points by name; a clash with a built-in or another plugin is fatal.

    Called once at config load (so a clash stops start-up even when no endpoint uses the name).
    """
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if not ep.name or ep.name != ep.name.strip():
            raise PluginError(f"Provider plugin {_where(ep)} has an empty or padded entry-point name.")
        if ep.name in BUILTINS or ep.name in ALIASES:
            raise PluginError(
                f"Provider plugin {_where(ep)} uses the name {ep.name!r}, which a built-in "
                "provider already has; rename the plugin's entry point or uninstall it."
            )
        if ep.name in found:
            if found[ep.name].value == ep.value:  # one distribution seen twice on sys.path
                continue
            raise PluginError(
                f"Two provider plugins use the name {ep.name!r}: {_where(found[ep.name])} "
                f"and {_where(ep)}; uninstall one of them."
            )
        found[ep.name] = ep
    return found


def check_plugins() -> None:
    """Raise PluginError when the installed plugins clash (run before serving anything)."""
    plugins()


def reset() -> None:
    """Forget discovered plugins and loaded classes (after installing a plugin at run time)."""
    plugins.cache_clear()
    get.cache_clear()


def names() -> list[str]:
    return sorted({*BUILTINS, *ALIASES, *plugins()})


@lru_cache(maxsize=None)
def get(name: str) -> type[BaseProvider] | None:
    """The provider class for a YAML `provider:` value, or None if unknown."""
    name = ALIASES.get(name, name)
    if name in BUILTINS:
        return _load(BUILTINS[name])
    ep = plugins().get(name)
    if ep is None:
        return None
    try:
        cls = ep.load()
    except Exception as exc:  # a plugin's import can fail in any way; report it, do not crash
        raise PluginError(f"Provider plugin {name!r} failed to load: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, BaseProvider)):
        raise PluginError(f"Provider plugin {name!r} does not point at a BaseProvider subclass.")
    return cls
