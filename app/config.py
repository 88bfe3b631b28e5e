"""Read a gateway YAML file, resolve its secrets, validate everything, return typed endpoints."""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml
from marshmallow import ValidationError

from app import limits_settings, registry
from app.errors import ConfigError
from app.http import Timeout
from app.schemas import ENDPOINT_TYPES
from app.schemas.base import flatten_errors

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
PERIOD_RE = re.compile(r"^(?:(?P<n>[1-9][0-9]*)\s+)?(?P<unit>second|minute|hour|day|month|year)s?$")
KEY_RE = re.compile(r"^(ip|header:[A-Za-z0-9-]+)$")
ENDPOINT_KEYS = {"name", "endpoint_type", "model", "limit", "timeout"}
# Server settings under the optional top-level `settings:` key (read at startup, not reloaded).
SETTINGS_KEYS = {"limits_storage_uri", "limits_on_storage_error", "trusted_proxy_hops"}
MODEL_KEYS = {"provider", "name", "config"}


@dataclass(frozen=True)
class Limit:
    """`calls` admitted per `renewal_period`, optionally partitioned by `key` (ip or header:X)."""

    calls: int
    renewal_period: str
    key: str | None = None

    def to_dict(self) -> dict:
        return {"calls": self.calls, "key": self.key, "renewal_period": self.renewal_period}


@dataclass(frozen=True)
class Endpoint:
    """One validated endpoint; `config` holds resolved secrets and never leaves the process."""

    name: str
    endpoint_type: str
    provider: str
    model: str
    config: Mapping[str, Any] = field(repr=False)
    limit: Limit | None = None
    timeout: Timeout = Timeout()

    def public(self) -> dict:
        """The MLflow endpoint object: no config, hence no secrets."""
        return {
            "name": self.name,
            "endpoint_type": self.endpoint_type,
            "model": {"name": self.model, "provider": self.provider},
            "endpoint_url": f"/gateway/{self.name}/invocations",
            "limit": self.limit.to_dict() if self.limit else None,
        }

    def same_provider_as(self, other: "Endpoint") -> bool:
        """True when `other` can keep this endpoint's provider object (and its connections)."""
        return (self.endpoint_type, self.provider, self.model, dict(self.config), self.timeout) == (
            other.endpoint_type, other.provider, other.model, dict(other.config), other.timeout,
        )


def _hint(value: Any) -> str:
    if isinstance(value, (datetime.date, datetime.datetime)):
        return f" (YAML read {value.isoformat()} as a date; quote it: '{value.isoformat()}')"
    return ""


def _limit(raw: Any, where: str, problems: list[str]) -> Limit | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(f"{where}: limit: must be a mapping with calls and renewal_period.")
        return None
    extra = set(raw) - {"calls", "renewal_period", "key"}
    if extra:
        problems.append(f"{where}: limit: unknown keys {sorted(extra)}.")
    calls, period, key = raw.get("calls"), raw.get("renewal_period"), raw.get("key")
    ok = True
    if isinstance(calls, bool) or not isinstance(calls, int) or calls < 1:
        problems.append(f"{where}: limit.calls: must be a whole number of at least 1.")
        ok = False
    if not isinstance(period, str) or not PERIOD_RE.match(period.strip().lower()):
        problems.append(
            f"{where}: limit.renewal_period: must be second, minute, hour, day, month or year, "
            f"optionally with a count such as '5 minutes'{_hint(period)}."
        )
        ok = False
    if key is not None and (not isinstance(key, str) or not KEY_RE.match(key)):
        problems.append(f"{where}: limit.key: must be 'ip' or 'header:<Header-Name>'.")
        ok = False
    return Limit(calls, period.strip().lower(), key) if ok else None


def _timeout(raw: Any, where: str, problems: list[str]) -> Timeout:
    if raw is None:
        return Timeout()
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw > 0:
        return Timeout(read=float(raw))
    if isinstance(raw, dict) and not set(raw) - {"connect", "read"}:
        values = {k: v for k, v in raw.items()}
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values.values()):
            return Timeout(**{k: float(v) for k, v in values.items()})
    problems.append(f"{where}: timeout: must be seconds (> 0) or a mapping {{connect, read}} of seconds.")
    return Timeout()


def _endpoint(raw: Any, index: int, source: str, problems: list[str]) -> Endpoint | None:
    if not isinstance(raw, dict):
        problems.append(f"{source}: endpoint #{index + 1}: must be a mapping.")
        return None
    raw = dict(raw)
    if "route_type" in raw and "endpoint_type" not in raw:  # MLflow's older `routes:` files
        raw["endpoint_type"] = raw.pop("route_type")
    name = raw.get("name")
    where = f"{source}: endpoint {name!r}" if isinstance(name, str) else f"{source}: endpoint #{index + 1}"
    before = len(problems)
    extra = set(raw) - ENDPOINT_KEYS
    if extra:
        problems.append(f"{where}: unknown keys {sorted(extra)}.")
    if not isinstance(name, str) or not NAME_RE.match(name):
        problems.append(f"{where}: name: must match ^[A-Za-z0-9_.-]+${_hint(name)}.")
    etype = raw.get("endpoint_type")
    if etype not in ENDPOINT_TYPES:
        problems.append(f"{where}: endpoint_type: must be one of {', '.join(ENDPOINT_TYPES)}{_hint(etype)}.")
    model = raw.get("model")
    if not isinstance(model, dict):
        problems.append(f"{where}: model: must be a mapping with provider, name and config.")
        return None
    extra = set(model) - MODEL_KEYS
    if extra:
        problems.append(f"{where}: model: unknown keys {sorted(extra)}.")
    provider_name, model_name = model.get("provider"), model.get("name")
    if not isinstance(model_name, str) or not model_name:
        problems.append(f"{where}: model.name: must be a non-empty string{_hint(model_name)}.")
    cls = None
    if not isinstance(provider_name, str):
        problems.append(f"{where}: model.provider: must be a string.")
    else:
        try:
            cls = registry.get(provider_name)
        except registry.PluginError as exc:
            problems.append(f"{where}: model.provider: {exc}")
        else:
            if cls is None:
                problems.append(
                    f"{where}: model.provider: unknown provider {provider_name!r}; "
                    f"known: {', '.join(registry.names())}."
                )
    config: dict = {}
    if cls is not None:
        if etype in ENDPOINT_TYPES and etype not in cls.supported_types():
            problems.append(
                f"{where}: endpoint_type: the {provider_name} provider does not support {etype} "
                f"(it supports {', '.join(sorted(cls.supported_types())) or 'nothing'})."
            )
        raw_config = model.get("config") or {}
        if not isinstance(raw_config, dict):
            problems.append(f"{where}: model.config: must be a mapping.")
        else:
            try:
                config = cls.config_schema().load(raw_config)
            except ValidationError as exc:
                for path, message in flatten_errors(exc.messages):
                    message = "unknown key." if message == "Unknown field." else message
                    problems.append(f"{where}: model.config.{path}: {message}")
            else:
                if isinstance(model_name, str) and etype in ENDPOINT_TYPES:
                    reason = cls.check_model(etype, model_name, config)
                    if reason:
                        problems.append(f"{where}: model.name: {reason}")
    limit = _limit(raw.get("limit"), where, problems)
    timeout = _timeout(raw.get("timeout"), where, problems)
    if len(problems) > before:
        return None
    return Endpoint(name, etype, provider_name, model_name, config, limit, timeout)


def _settings(raw: Any, source: str, problems: list[str]) -> dict[str, Any]:
    """The `settings:` mapping, validated; the storage URI may be $VAR or a file holding it."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(f"{source}: settings: must be a mapping.")
        return {}
    extra = set(raw) - SETTINGS_KEYS
    if extra:
        problems.append(f"{source}: settings: unknown keys {sorted(extra)}; known: {sorted(SETTINGS_KEYS)}.")
    out: dict[str, Any] = {}
    for name in sorted(set(raw) & SETTINGS_KEYS):
        try:
            out[name] = limits_settings.check(name, raw[name], from_file=True)
        except ValueError as exc:
            problems.append(f"{source}: settings.{name}: {exc}")
    return out


def parse_settings(text: str, source: str = "<config>") -> dict[str, Any]:
    """The validated `settings:` of a config document ({} when absent)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"{source}: not valid YAML.") from None
    problems: list[str] = []
    settings = _settings(doc.get("settings") if isinstance(doc, dict) else None, source, problems)
    if problems:
        raise ConfigError(problems)
    return settings


def parse(text: str, source: str = "<config>") -> list[Endpoint]:
    """Validate a config document; raise ConfigError listing every problem found."""
    try:  # a plugin name clash is fatal even when no endpoint uses the name
        registry.check_plugins()
    except registry.PluginError as exc:
        raise ConfigError(f"provider plugins: {exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{source}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: must be a mapping with an 'endpoints' list.")
    key = "endpoints" if "endpoints" in doc else "routes" if "routes" in doc else None
    extra = set(doc) - {"endpoints", "routes", "settings"}
    problems: list[str] = [f"{source}: unknown top-level keys {sorted(extra)}."] if extra else []
    _settings(doc.get("settings"), source, problems)
    entries = doc.get(key) if key else None
    if not isinstance(entries, list):
        raise ConfigError(problems + [f"{source}: endpoints: must be a list of endpoints."])
    endpoints, seen = [], set()
    for index, raw in enumerate(entries):
        endpoint = _endpoint(raw, index, source, problems)
        if endpoint is None:
            continue
        if endpoint.name in seen:
            problems.append(f"{source}: endpoint {endpoint.name!r}: name: duplicate endpoint name.")
            continue
        seen.add(endpoint.name)
        endpoints.append(endpoint)
    if problems:
        raise ConfigError(problems)
    return endpoints


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}.") from None


def load(path: str) -> list[Endpoint]:
    """Read and validate the file at path."""
    return parse(_read(path), path)


def load_settings(path: str) -> dict[str, Any]:
    """Read the file's `settings:` (validated)."""
    return parse_settings(_read(path), path)
