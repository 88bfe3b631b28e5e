"""Pure helpers shared by the providers' translation functions (no transport, no vendor state)."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from app.errors import InvalidRequest
from app.schemas import shapes

# Keys of the unified request that are routing or framing, never sent as vendor parameters.
FRAMING = frozenset({"model", "stream", "stream_options"})


# ----- refusing what a provider cannot honour ----------------------------------------------
# Two wordings exist because tests and clients already rely on each provider's messages:
# "'{param}' {why} with the X provider." and "The parameter '{key}' is not supported by X.".


def invalid(param: str, why: str, label: str) -> InvalidRequest:
    """`'{param}' {why} with the {label} provider.` as a 4xx naming the parameter."""
    return InvalidRequest(f"'{param}' {why} with the {label} provider.", param=param)


def check_keys(request: Mapping[str, Any], allowed: Iterable[str], label: str) -> None:
    """Refuse, by name, the first request key outside `allowed` (`'key' is not supported ...`)."""
    allowed = set(allowed)
    for key in request:
        if key not in allowed:
            raise invalid(key, "is not supported", label)


def reject_unknown(request: Mapping[str, Any], allowed: Iterable[str], label: str) -> None:
    """Refuse any key outside `allowed` and the framing keys (`The parameter 'key' is not supported ...`)."""
    allowed = set(allowed) | FRAMING
    for key in request:
        if key not in allowed:
            raise InvalidRequest(
                f"The parameter '{key}' is not supported by the {label} provider.", param=key
            )


def one_candidate(request: Mapping[str, Any], label: str, why: str) -> None:
    """Refuse `n` other than 1 on a provider that returns one candidate (`why` is its message)."""
    if request.get("n", 1) != 1:
        raise invalid("n", why, label)


def one_prompt(request: Mapping[str, Any], label: str, why: str) -> str:
    """The only prompt of a completions request; a list of several is `invalid("prompt", why)`."""
    prompt = request["prompt"]
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise invalid("prompt", why, label)
        return prompt[0]
    return prompt


def single_prompt(request: Mapping[str, Any], label: str) -> str:
    """The one prompt of a completions request; several prompts cannot go in one upstream call."""
    prompt = request["prompt"]
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise InvalidRequest(
                f"The {label} provider takes one prompt per request; 'prompt' has {len(prompt)}.",
                param="prompt",
            )
        return prompt[0]
    return prompt


# ----- reading the unified request ---------------------------------------------------------


def max_tokens(request: Mapping[str, Any]) -> int | None:
    """OpenAI's `max_completion_tokens` (current) wins over the deprecated `max_tokens`."""
    return request.get("max_completion_tokens") or request.get("max_tokens")


def as_list(value: Any) -> list:
    """A `prompt`, `input` or `stop` that may be one value or a list, as a list."""
    return list(value) if isinstance(value, list) else [value]


def include_usage(request: Mapping[str, Any]) -> bool:
    """Whether the client asked for a final usage chunk (`stream_options.include_usage`)."""
    return bool((request.get("stream_options") or {}).get("include_usage"))


def text_of(content: Any) -> str:
    """A message's text: the string, or its text parts joined (other parts rejected by callers)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def parameters_of(function: Mapping[str, Any]) -> dict:
    """An OpenAI tool function's JSON schema; vendors that require one get an empty object schema."""
    return function.get("parameters") or {"type": "object", "properties": {}}


def tool_names(messages: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Tool-call id -> function name, from the assistant turns (tool results need the name)."""
    names: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or ():
            names[call["id"]] = call["function"]["name"]
    return names


def tool_name(names: Mapping[str, str], message: Mapping[str, Any], index: int, label: str) -> str:
    """The function name a tool result answers; the vendor needs it, OpenAI's shape only has the id."""
    call_id = message["tool_call_id"]
    if call_id not in names:
        raise InvalidRequest(
            f"messages[{index}].tool_call_id '{call_id}' matches no earlier assistant tool call; the "
            f"{label} provider needs that call's function name.",
            param=f"messages[{index}].tool_call_id",
        )
    return names[call_id]


# ----- building unified replies ------------------------------------------------------------


def plain_chat(model: str, text: str) -> dict:
    """One-choice chat reply for backends that report neither a finish reason nor token counts."""
    return shapes.chat_response(
        model=model, choices=[shapes.chat_choice(0, shapes.chat_message(text), None)], usage=None,
    )


def chat_as_completions(chat: Mapping[str, Any]) -> dict:
    """A unified chat response read back as completions: each `message.content` is a `text`."""
    return shapes.completions_response(
        model=chat["model"], id=chat["id"], usage=chat["usage"],
        choices=[shapes.completions_choice(c["index"], c["message"]["content"] or "", c["finish_reason"])
                 for c in chat["choices"]],
    )


def plain_completions(model: str, texts: list[str]) -> dict:
    """One choice per text, for backends that report neither a finish reason nor token counts."""
    return shapes.completions_response(
        model=model, choices=[shapes.completions_choice(i, t, None) for i, t in enumerate(texts)], usage=None,
    )


class StreamChunks:
    """Unified chat or completions chunks of one stream: one id, model and created time.

    Base of the event-by-event stream translators (Anthropic, Cohere); `kind` is "chat" or
    "completions" and `include_usage` is the client's `stream_options.include_usage`.
    """

    def __init__(self, model: str, kind: str = "chat", include_usage: bool = False) -> None:
        self.kind = kind
        self.include_usage = include_usage
        self.base = {"id": shapes.new_id("chatcmpl" if kind == "chat" else "cmpl"), "model": model,
                     "created": shapes.now()}

    def _chunk(self, delta: dict, finish: str | None = None) -> dict:
        """A chat chunk with this delta, or a completions chunk whose `text` is the delta's content."""
        if self.kind == "chat":
            return shapes.chat_chunk(**self.base, delta=delta, finish_reason=finish)
        return shapes.completions_chunk(**self.base, text=delta.get("content") or "", finish_reason=finish)

    def _usage_chunk(self, usage: dict | None) -> dict:
        """The final `choices: []` chunk that carries the usage (sent only when asked for)."""
        return {**self._chunk({}), "choices": [], "usage": usage}
