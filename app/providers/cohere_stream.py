"""Cohere chat reply pieces: finish reasons, usage, and streamed events → unified chunks."""
from __future__ import annotations

from typing import Any, Callable, Mapping

from app.errors import UpstreamError, UpstreamTimeout
from app.providers.translate import StreamChunks
from app.schemas import shapes

LABEL = "Cohere"

# docs.cohere.com/reference/chat, `finish_reason` (v2), plus the v1-only values.
FINISH_REASONS = {
    "COMPLETE": "stop", "STOP_SEQUENCE": "stop", "USER_CANCEL": "stop",
    "MAX_TOKENS": "length", "ERROR_LIMIT": "length",
    "TOOL_CALL": "tool_calls", "ERROR_TOXIC": "content_filter",
}
FAILED = {"ERROR", "TIMEOUT"}


def chat_finish(reason: Any, has_output: bool, error: str | None = None) -> str | None:
    """Map a finish reason; ERROR/TIMEOUT with nothing generated is an upstream failure."""
    if reason in FAILED:
        if has_output and error is None:
            return "stop"
        detail = f": {error}" if error else ""
        if reason == "TIMEOUT":
            raise UpstreamTimeout(f"The {LABEL} provider timed out while generating{detail}.")
        raise UpstreamError(f"The {LABEL} provider failed while generating{detail}.")
    return FINISH_REASONS.get(reason, "stop") if reason else None


def to_usage(usage: Mapping[str, Any] | None) -> dict | None:
    """`{"tokens":{"input_tokens","output_tokens"},"billed_units":{…}}`: tokens, else billed units."""
    if not isinstance(usage, Mapping):
        return None
    counts = usage.get("tokens") or usage.get("billed_units") or {}
    if counts.get("input_tokens") is None and counts.get("output_tokens") is None:
        return None
    return shapes.usage(int(counts.get("input_tokens") or 0), int(counts.get("output_tokens") or 0))


def _message(data: Mapping[str, Any]) -> Mapping[str, Any]:
    return ((data.get("delta") or {}).get("message")) or {}


class StreamTranslator(StreamChunks):
    """v2 chat stream events (by `type`) → unified chat or completions chunks.

    Shapes (docs.cohere.com/docs/streaming):
      message-start    {"id","delta":{"message":{"role":"assistant"}}}
      content-delta    {"index","delta":{"message":{"content":{"text"}}}}
      tool-call-start  {"index","delta":{"message":{"tool_calls":{"id","type":"function",
                                                               "function":{"name","arguments"}}}}}
      tool-call-delta  {"index","delta":{"message":{"tool_calls":{"function":{"arguments"}}}}}
      message-end      {"delta":{"finish_reason","usage":{…},"error"?}} (terminal)
    plus content-start/end, tool-plan-delta, citation-*, debug (nothing to forward). The v1
    NDJSON events `text-generation` {"text"} and `stream-end` {"finish_reason","response":
    {"meta":{"tokens"}}} are read too.
    """

    def __init__(self, model: str, kind: str = "chat", include_usage: bool = False) -> None:
        super().__init__(model, kind, include_usage)
        self.started = False
        self.has_output = False
        self.tools = 0
        self.done = False

    def _start(self) -> list[dict]:
        if self.started or self.kind != "chat":
            self.started = True
            return []
        self.started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def _text(self, text: Any) -> list[dict]:
        if not isinstance(text, str) or not text:
            return []
        self.has_output = True
        return self._start() + [self._chunk({"content": text})]

    def feed(self, name: str | None, data: Mapping[str, Any],
             redact: Callable[[str], str] = lambda s: s) -> list[dict]:
        """The unified chunks for one event (often none)."""
        if name == "message-start":
            if data.get("id"):
                self.base["id"] = data["id"]
            return self._start()
        if name == "content-delta":
            return self._text((_message(data).get("content") or {}).get("text"))
        if name == "text-generation":
            return self._text(data.get("text"))
        if name in ("tool-call-start", "tool-call-delta") and self.kind == "chat":
            return self._tool(name, data)
        if name == "message-end":
            end = data.get("delta") or {}
            return self._finish(end.get("finish_reason"), end.get("usage"), end.get("error"), redact)
        if name == "stream-end":
            meta = (data.get("response") or {}).get("meta")
            return self._finish(data.get("finish_reason"), meta, None, redact)
        return []

    def _tool(self, name: str, data: Mapping[str, Any]) -> list[dict]:
        call = _message(data).get("tool_calls") or {}
        fn = call.get("function") or {}
        self.has_output = True
        if name == "tool-call-start":
            index = self.tools
            self.tools += 1
            out = {"index": index, **shapes.tool_call(call.get("id", ""), fn.get("name", ""), fn.get("arguments") or "")}
            return self._start() + [self._chunk({"tool_calls": [out]})]
        if not fn.get("arguments"):
            return []
        index = max(self.tools - 1, 0)
        return [self._chunk({"tool_calls": [{"index": index, "function": {"arguments": fn["arguments"]}}]})]

    def _finish(self, reason: Any, usage: Any, error: Any, redact: Callable[[str], str]) -> list[dict]:
        error_text = redact(str(error)) if error else None
        if reason in FAILED:
            # A stream that failed is never passed off as a finished answer.
            chat_finish(reason, False, error_text)
        self.done = True
        chunks = self._start() + [self._chunk({}, chat_finish(reason, self.has_output) or "stop")]
        if self.include_usage:
            chunks.append(self._usage_chunk(to_usage(usage)))
        return chunks
