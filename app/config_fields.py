"""Marshmallow fields for provider config: YAML-aware strings and secrets ($VAR, file, literal)."""
from __future__ import annotations

import datetime
import os
import re
from typing import Any

from marshmallow import ValidationError, fields, validate

_ENV_REF = re.compile(r"^\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))$")


class Text(fields.String):
    """A string that explains the YAML pitfall of unquoted dates and numbers."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, (datetime.date, datetime.datetime)):
            raise ValidationError(
                f"YAML read {value.isoformat()} as a date; quote it so it stays a string: "
                f"'{value.isoformat()}'."
            )
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise ValidationError(f"Must be a string; quote the value in YAML: '{value}'.")
        return super()._deserialize(value, attr, data, **kwargs)


class Url(Text):
    """An http(s) base URL; hosts without a TLD (`localhost`, a compose service) are allowed."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validate", validate.URL(require_tld=False, schemes={"http", "https"}))
        super().__init__(**kwargs)


def resolve_secret(value: str) -> str:
    """`$VAR`/`${VAR}` reads the environment, an existing file path reads the file, else literal."""
    match = _ENV_REF.match(value.strip())
    if match:
        name = match.group("braced") or match.group("bare")
        if name not in os.environ:
            raise ValidationError(f"Environment variable {name} is not set.")
        return os.environ[name]
    if "\n" not in value and len(value) < 4096 and os.path.isfile(value):
        try:
            with open(value, encoding="utf-8") as handle:
                return handle.read().strip()
        except OSError as exc:
            raise ValidationError(f"Cannot read the secret file {value}: {exc.strerror}.") from None
    return value


class Secret(Text):
    """A secret: resolved at load, never echoed in errors (messages name the field, not the value)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("metadata", {})["secret"] = True
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str):
            raise ValidationError("Must be a string ($VAR, a file path or the literal value).")
        resolved = resolve_secret(value)
        if not resolved:
            raise ValidationError("The secret is empty.")
        return resolved
