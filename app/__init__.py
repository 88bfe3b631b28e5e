"""ai-gateway: one HTTP API for chat, completions and embeddings in front of many LLM providers."""
from __future__ import annotations

import logging
import os
import sys
from typing import Any

from flask import Flask

from app.config import Endpoint
from app.errors import ConfigError
from app.gateway import Gateway
from app.redaction import SecretFilter
from app.routing import GatewayFlask

__all__ = ["create_app", "resolve_config_path", "ConfigError"]

CONFIG_ENV_VARS = ("AI_GATEWAY_CONFIG", "MLFLOW_DEPLOYMENTS_CONFIG", "MLFLOW_GATEWAY_CONFIG")
DEFAULTS: dict[str, Any] = {
    "MAX_CONTENT_LENGTH": int(os.environ.get("AI_GATEWAY_MAX_BODY_BYTES", 10 * 1024 * 1024)),
    "AI_GATEWAY_PAGE_SIZE": int(os.environ.get("AI_GATEWAY_PAGE_SIZE", 100)),
    "AI_GATEWAY_RELOAD_INTERVAL": float(os.environ.get("AI_GATEWAY_RELOAD_INTERVAL", 0.5)),
    "AI_GATEWAY_WATCH": True,
}


def resolve_config_path(explicit: str | None = None) -> str:
    """--config-path, else the first of the config environment variables that is set."""
    if explicit:
        return explicit
    for name in CONFIG_ENV_VARS:
        if os.environ.get(name):
            return os.environ[name]
    raise ConfigError(
        "No gateway config: pass --config-path or set one of " + ", ".join(CONFIG_ENV_VARS) + "."
    )


def _setup_logging() -> None:
    log = logging.getLogger("ai_gateway")
    # Our own stderr handler only where nobody configured logging (gunicorn leaves root bare).
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s [%(process)d] %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(os.environ.get("AI_GATEWAY_LOG_LEVEL", "INFO").upper())
        log.propagate = False


def create_app(
    config_path: str | None = None,
    *,
    endpoints: list[Endpoint] | None = None,
    settings: dict[str, Any] | None = None,
) -> Flask:
    """Build the app: settings, then the endpoint table (and its watcher), then the routes."""
    _setup_logging()
    app = GatewayFlask(__name__)
    app.config.update(DEFAULTS)
    app.config.update(settings or {})

    # The gateway YAML stays out of app.config: it is live data that reloads, not settings.
    if endpoints is not None:
        gateway = Gateway(endpoints)
    else:
        gateway = Gateway.from_file(resolve_config_path(config_path))
        if app.config["AI_GATEWAY_WATCH"]:
            gateway.watch(app.config["AI_GATEWAY_RELOAD_INTERVAL"])
    app.extensions["ai_gateway"] = gateway

    # Scrub the keys of the live endpoints from every gateway log line, before and after reloads.
    secret_filter = SecretFilter.on(logging.getLogger("ai_gateway"))
    secret_filter.update(gateway, gateway.secrets())
    gateway.listeners.append(lambda old, new: secret_filter.update(gateway, gateway.secrets()))

    from app import limits

    # Per-endpoint limits: shared counters, settings from app > environment > the file's settings:.
    limits.init_app(app, gateway.path)

    from app.api import chat, completions, docs, embeddings, endpoints as listing, errors, health, invocations

    for module in (health, listing, invocations, chat, completions, embeddings, docs):
        app.register_blueprint(module.bp)
    errors.register(app)
    return app
