"""Fields and parameters shared by the unified request schemas, and error flattening."""
from __future__ import annotations

from typing import Any, Mapping

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema


class StringOrStringList(fields.Field):
    """A string, or a non-empty list of strings (OpenAI's `stop`, `prompt`, `input`)."""

    def __init__(self, *, allow_empty_string: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allow_empty_string = allow_empty_string

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            if not value and not self.allow_empty_string:
                raise ValidationError("Must not be empty.")
            return value
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            if not self.allow_empty_string and any(not v for v in value):
                raise ValidationError("Must not contain empty strings.")
            return value
        raise ValidationError("Must be a string or a non-empty list of strings.")


class Strict:
    """Number fields that reject booleans and numeric strings (JSON types are part of the API)."""

    class Integer(fields.Integer):
        def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationError("Must be an integer.")
            return value

    class Float(fields.Float):
        def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValidationError("Must be a number.")
            return float(value)

    class Boolean(fields.Boolean):
        def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
            if not isinstance(value, bool):
                raise ValidationError("Must be true or false.")
            return value


class GenerationParams(Schema):
    """The standard sampling parameters; anything else passes through to the provider."""

    class Meta:
        unknown = INCLUDE

    temperature = Strict.Float(validate=validate.Range(0, 2))
    top_p = Strict.Float(validate=validate.Range(0, 1))
    n = Strict.Integer(validate=validate.Range(min=1, max=128))
    max_tokens = Strict.Integer(validate=validate.Range(min=1))
    max_completion_tokens = Strict.Integer(validate=validate.Range(min=1))
    stop = StringOrStringList(allow_empty_string=False)
    stream = Strict.Boolean()
    stream_options = fields.Dict(allow_none=True)

    @validates_schema
    def _stream_options_need_stream(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if data.get("stream_options") and not data.get("stream"):
            raise ValidationError("Only allowed when stream is true.", "stream_options")


def flatten_errors(messages: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Turn marshmallow's nested error dict into (dotted.field, message) pairs."""
    if isinstance(messages, dict):
        out: list[tuple[str, str]] = []
        for key, value in messages.items():
            name = str(key) if key != "_schema" else ""
            path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            out.extend(flatten_errors(value, path))
        return out
    if isinstance(messages, list):
        return [(prefix, str(m)) for m in messages]
    return [(prefix, str(messages))]
