"""Unified completions request schema (OpenAI's legacy completions shape) and response shapes."""
from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields, validate

from app.schemas.base import GenerationParams, StringOrStringList


class CompletionsRequest(GenerationParams):
    prompt = StringOrStringList(required=True)


class CompletionsResponse(Schema):
    """The unified completions response (`object: text_completion`)."""

    class Choice(Schema):
        class Meta:
            unknown = INCLUDE

        index = fields.Integer(required=True)
        text = fields.String(required=True)
        finish_reason = fields.String(required=True, allow_none=True)

    class Meta:
        unknown = INCLUDE

    id = fields.String(required=True)
    object = fields.String(required=True, validate=validate.Equal("text_completion"))
    created = fields.Integer(required=True)
    model = fields.String(required=True)
    choices = fields.List(fields.Nested(Choice), required=True)
    usage = fields.Dict(required=True, allow_none=True)


class CompletionsChunk(Schema):
    """One streamed completions chunk (same object name as the response, text is the delta)."""

    class Meta:
        unknown = INCLUDE

    id = fields.String(required=True)
    object = fields.String(required=True, validate=validate.Equal("text_completion"))
    created = fields.Integer(required=True)
    model = fields.String(required=True)
    choices = fields.List(fields.Dict(), required=True)
