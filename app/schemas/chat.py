"""Unified chat request schema (OpenAI's chat.completions shape) and its response shapes."""
from __future__ import annotations

from typing import Any, Mapping

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from app.schemas.base import GenerationParams

ROLES = ("system", "developer", "user", "assistant", "tool")


class Content(fields.Field):
    """Message content: a string, a list of typed parts, or null (assistant tool calls only)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            for i, part in enumerate(value):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise ValidationError(f"Part {i} must be an object with a string 'type'.")
                if part["type"] == "text" and not isinstance(part.get("text"), str):
                    raise ValidationError(f"Part {i} of type 'text' needs a string 'text'.")
            return value
        raise ValidationError("Must be a string or a list of content parts.")


class FunctionCall(Schema):
    class Meta:
        unknown = INCLUDE

    name = fields.String(required=True)
    arguments = fields.String(required=True)


class ToolCall(Schema):
    class Meta:
        unknown = INCLUDE

    id = fields.String(required=True)
    type = fields.String(load_default="function", validate=validate.Equal("function"))
    function = fields.Nested(FunctionCall, required=True)


class Message(Schema):
    class Meta:
        unknown = INCLUDE

    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    content = Content(allow_none=True)
    name = fields.String()
    tool_calls = fields.List(fields.Nested(ToolCall))
    tool_call_id = fields.String()

    @validates_schema
    def _content_rules(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        role = data.get("role")
        if data.get("content") is None and not (role == "assistant" and data.get("tool_calls")):
            raise ValidationError("Required unless an assistant message has tool_calls.", "content")
        if role == "tool" and not data.get("tool_call_id"):
            raise ValidationError("Required on a tool message.", "tool_call_id")


class FunctionDef(Schema):
    class Meta:
        unknown = INCLUDE

    name = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_.-]{1,64}$"))
    description = fields.String()
    parameters = fields.Dict()


class Tool(Schema):
    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True, validate=validate.Equal("function"))
    function = fields.Nested(FunctionDef, required=True)


class ToolChoice(fields.Field):
    """`"none" | "auto" | "required" | {"type": "function", "function": {"name": ...}}`."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if value in ("none", "auto", "required"):
            return value
        if (
            isinstance(value, dict)
            and value.get("type") == "function"
            and isinstance(value.get("function"), dict)
            and isinstance(value["function"].get("name"), str)
        ):
            return value
        raise ValidationError(
            "Must be 'none', 'auto', 'required' or {'type': 'function', 'function': {'name': ...}}."
        )


class ChatRequest(GenerationParams):
    messages = fields.List(
        fields.Nested(Message), required=True, validate=validate.Length(min=1)
    )
    tools = fields.List(fields.Nested(Tool), validate=validate.Length(min=1))
    tool_choice = ToolChoice()

    @validates_schema
    def _tool_choice_needs_tools(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if isinstance(data.get("tool_choice"), dict) and not data.get("tools"):
            raise ValidationError("Naming a function needs tools.", "tool_choice")


class ChatResponse(Schema):
    """The unified chat response; used to check providers' output in tests and in the docs."""

    class Choice(Schema):
        class Meta:
            unknown = INCLUDE

        class Msg(Schema):
            class Meta:
                unknown = INCLUDE

            role = fields.String(required=True, validate=validate.Equal("assistant"))
            content = fields.String(required=True, allow_none=True)
            tool_calls = fields.List(fields.Nested(ToolCall))

        index = fields.Integer(required=True)
        message = fields.Nested(Msg, required=True)
        finish_reason = fields.String(required=True, allow_none=True)

    class Meta:
        unknown = INCLUDE

    id = fields.String(required=True)
    object = fields.String(required=True, validate=validate.Equal("chat.completion"))
    created = fields.Integer(required=True)
    model = fields.String(required=True)
    choices = fields.List(fields.Nested(Choice), required=True)
    usage = fields.Dict(required=True, allow_none=True)


class ChatChunk(Schema):
    """One streamed chat chunk (`object: chat.completion.chunk`)."""

    class Meta:
        unknown = INCLUDE

    id = fields.String(required=True)
    object = fields.String(required=True, validate=validate.Equal("chat.completion.chunk"))
    created = fields.Integer(required=True)
    model = fields.String(required=True)
    choices = fields.List(fields.Dict(), required=True)
