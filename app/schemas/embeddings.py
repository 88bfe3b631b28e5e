"""Unified embeddings request schema (OpenAI's embeddings shape) and response shape."""
from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields, validate

from app.schemas.base import StringOrStringList


class EmbeddingsRequest(Schema):
    class Meta:
        unknown = INCLUDE

    input = StringOrStringList(required=True, allow_empty_string=False)


class EmbeddingsResponse(Schema):
    class Item(Schema):
        class Meta:
            unknown = INCLUDE

        object = fields.String(required=True, validate=validate.Equal("embedding"))
        index = fields.Integer(required=True)
        embedding = fields.List(fields.Float(), required=True)

    class Meta:
        unknown = INCLUDE

    object = fields.String(required=True, validate=validate.Equal("list"))
    data = fields.List(fields.Nested(Item), required=True)
    model = fields.String(required=True)
    usage = fields.Dict(required=True, allow_none=True)
