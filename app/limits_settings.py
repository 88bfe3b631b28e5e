"""Rate-limit settings: validation, and precedence (app settings > environment > config file)."""
from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from typing import Any, Mapping

from marshmallow import ValidationError

from app.config_fields import resolve_secret

# Setting name in the config file's `settings:` -> Flask config / environment variable name.
ENV = {
    "limits_storage_uri": "AI_GATEWAY_LIMITS_STORAGE",
    "limits_on_storage_error": "AI_GATEWAY_LIMITS_ON_STORAGE_ERROR",
    "trusted_proxy_hops": "AI_GATEWAY_TRUSTED_PROXY_HOPS",
}
# Stores every worker of every instance can share. `memory://` is refused on purpose: it counts
# per worker process, so N workers would admit N times the limit.
SCHEMES = {
    "local", "redis", "rediss", "redis+unix", "redis+sentinel", "redis+cluster",
    "valkey", "valkeys", "valkey+unix", "valkey+sentinel", "valkey+cluster",
}
POLICIES = ("open", "closed")


@dataclass(frozen=True)
class LimitSettings:
    storage_uri: str | None = None  # None: the host-local store shared by this server's workers
    on_storage_error: str = "open"
    trusted_proxy_hops: int = 0


def check(name: str, value: Any, *, from_file: bool = False) -> Any:
    """The validated value of one setting; ValueError explains a bad one (never echoing a URI)."""
    if name == "limits_storage_uri":
        if not isinstance(value, str) or not value.strip():
            raise ValueError("must be a storage URI such as redis://host:6379 ($VAR and file paths work).")
        try:
            uri = resolve_secret(value) if from_file else value
        except ValidationError as exc:  # an unset $VAR or an unreadable file
            raise ValueError(" ".join(exc.messages)) from None
        scheme = urllib.parse.urlsplit(uri.strip()).scheme
        if scheme == "memory":
            raise ValueError(
                "memory:// counts per worker process and would multiply the limit by the number "
                "of workers; leave it unset for the host-local default, or use redis://."
            )
        if scheme not in SCHEMES:
            raise ValueError(f"unsupported scheme {scheme!r}; use one of {', '.join(sorted(SCHEMES))}.")
        return uri.strip()
    if name == "limits_on_storage_error":
        if value not in POLICIES:
            raise ValueError("must be 'open' (admit and log a warning) or 'closed' (answer 503).")
        return value
    if name == "trusted_proxy_hops":
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError("must be a whole number of proxies in front of the gateway (0 or more).")
        return value
    raise ValueError("unknown setting.")


def resolve(app_config: Mapping[str, Any], file_settings: Mapping[str, Any]) -> LimitSettings:
    """Each setting from the app's config, else the environment, else the file, else the default."""
    values: dict[str, Any] = {}
    for name, env_name in ENV.items():
        for raw in (app_config.get(env_name), os.environ.get(env_name) or None):
            if raw is not None:
                values[name] = check(name, raw)
                break
        else:
            if name in file_settings:
                values[name] = file_settings[name]
    return LimitSettings(
        storage_uri=values.get("limits_storage_uri"),
        on_storage_error=values.get("limits_on_storage_error", "open"),
        trusted_proxy_hops=values.get("trusted_proxy_hops", 0),
    )


def redacted(uri: str | None) -> str:
    """A storage URI safe for logs: scheme, hosts and path, never credentials."""
    if not uri:
        return "host-local store"
    parts = urllib.parse.urlsplit(uri)
    hosts = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{hosts}{parts.path}"
