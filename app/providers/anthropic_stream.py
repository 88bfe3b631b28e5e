"""Anthropic Messages reply pieces: stop reasons, usage, and streamed events → unified chunks."""
from __future__ import annotations

from typing import Any, Mapping

from app.providers.translate import StreamChunks
from app.schemas import shapes

# docs.anthropic.com/en/api/messages, `stop_reason` → OpenAI `finish_reason`.
FINISH_REASONS = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
    "max_tokens": "length", "model_context_window_exceeded": "length",
    "tool_use": "tool_calls", "refusal": "content_filter",
}


def finish_reason(stop_reason: Any) -> str | None:
    """Known reasons per the table; an unknown future reason still ends the turn (`stop`)."""
    return FINISH_REASONS.get(stop_reason, "stop") if stop_reason else None


def to_usage(usage: Mapping[str, Any] | None) -> dict | None:
    """`{"input_tokens","output_tokens","cache_creation_input_tokens","cache_read_input_tokens"}`.

    `input_tokens` excludes cached tokens, so the prompt is the sum of all three inputs.
    """
    if not usage:
        return None
    prompt = sum(
        usage.get(k) or 0
        for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return shapes.usage(prompt, usage.get("output_tokens") or 0)


class StreamTranslator(StreamChunks):
    """Turns the named SSE events of a Messages stream into unified chat or completions chunks.

    Event order (docs.anthropic.com/en/docs/build-with-claude/streaming):
      message_start        {"message":{"id","model","usage":{"input_tokens",…}}}
      content_block_start  {"index","content_block":{"type":"text","text":""}
                                                   | {"type":"tool_use","id","name","input":{}}}
      content_block_delta  {"index","delta":{"type":"text_delta","text"}
                                           | {"type":"input_json_delta","partial_json"}}
      content_block_stop   {"index"}
      message_delta        {"delta":{"stop_reason","stop_sequence"},"usage":{"output_tokens"}}
      message_stop         {} (terminal)
    plus `ping` anywhere. `error` events are handled by the caller (they need the provider).
    """

    def __init__(self, model: str, kind: str = "chat", include_usage: bool = False) -> None:
        super().__init__(model, kind, include_usage)
        self.usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.tool_index: dict[int, int] = {}  # content block index → OpenAI tool_calls index
        self.done = False

    def feed(self, name: str | None, data: Mapping[str, Any]) -> list[dict]:
        """The unified chunks for one event (often none)."""
        handler = getattr(self, "_on_" + (name or ""), None)
        return handler(data) if handler else []  # ping and unknown future events: nothing

    def _on_message_start(self, data: Mapping[str, Any]) -> list[dict]:
        message = data.get("message") or {}
        if message.get("id"):
            self.base["id"] = message["id"]
        if message.get("model"):
            self.base["model"] = message["model"]
        self.usage.update(message.get("usage") or {})
        return [self._chunk({"role": "assistant", "content": ""})] if self.kind == "chat" else []

    def _on_content_block_start(self, data: Mapping[str, Any]) -> list[dict]:
        block = data.get("content_block") or {}
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if block.get("type") == "tool_use" and self.kind == "chat":
            index = self.tool_index.setdefault(data.get("index", 0), len(self.tool_index))
            call = {"index": index, **shapes.tool_call(block.get("id", ""), block.get("name", ""), "")}
            return [self._chunk({"tool_calls": [call]})]
        return []

    def _on_content_block_delta(self, data: Mapping[str, Any]) -> list[dict]:
        delta = data.get("delta") or {}
        if delta.get("type") == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if delta.get("type") == "input_json_delta" and data.get("index") in self.tool_index:
            call = {"index": self.tool_index[data["index"]], "function": {"arguments": delta.get("partial_json", "")}}
            return [self._chunk({"tool_calls": [call]})]
        return []  # thinking_delta, signature_delta, citations_delta: no OpenAI field

    def _on_message_delta(self, data: Mapping[str, Any]) -> list[dict]:
        self.stop_reason = (data.get("delta") or {}).get("stop_reason") or self.stop_reason
        # output_tokens here is cumulative: the last value wins, never a sum.
        self.usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
        return []

    def _on_message_stop(self, data: Mapping[str, Any]) -> list[dict]:
        self.done = True
        chunks = [self._chunk({}, finish_reason(self.stop_reason) or "stop")]
        if self.include_usage:
            chunks.append(self._usage_chunk(to_usage(self.usage)))
        return chunks
