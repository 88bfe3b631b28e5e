"""Gemini stream translation: each SSE event is a full GenerateContentResponse; EOF ends the stream."""
from __future__ import annotations

from typing import Any, Mapping

from app.errors import UpstreamError
from app.providers import gemini_translate as wire
from app.schemas import shapes


class StreamTranslator:
    """Turns each streamed GenerateContentResponse into unified chunks; knows when all candidates ended."""

    def __init__(self, model: str, chat: bool) -> None:
        self.model, self.chat = model, chat
        self.id = shapes.new_id("chatcmpl" if chat else "cmpl")
        self.created = shapes.now()
        self.started: set[int] = set()
        self.open: set[int] = set()
        self.ended = False
        self.calls: dict[int, int] = {}
        self.usage: dict | None = None

    def _chunk(self, index: int, text: str | None, calls: list[dict], reason: str | None) -> dict:
        base = {"id": self.id, "model": self.model, "created": self.created, "index": index, "finish_reason": reason}
        if not self.chat:
            return shapes.completions_chunk(**base, text=text or "")
        delta: dict[str, Any] = {}
        if index not in self.started:
            self.started.add(index)
            delta["role"] = "assistant"
        if text:
            delta["content"] = text
        if calls:
            first = self.calls.get(index, 0)
            self.calls[index] = first + len(calls)
            delta["tool_calls"] = [{"index": first + k, **c} for k, c in enumerate(calls)]
        return shapes.chat_chunk(**base, delta=delta)

    def feed(self, event: Mapping[str, Any]) -> list[dict]:
        """`data: {"candidates":[{"content":{"parts"},"finishReason"?,"index"}],"usageMetadata"}` -> chunks."""
        if event.get("usageMetadata"):
            self.usage = wire.usage(event["usageMetadata"])  # cumulative: the last one wins
        if event.get("responseId") and not self.started and not self.open:
            self.id = event["responseId"]
        if not event.get("candidates"):
            if (event.get("promptFeedback") or {}).get("blockReason"):
                self.ended = True
                return [self._chunk(0, None, [], "content_filter")]
            return []  # e.g. a usage-only event; the EOF check still catches a missing finish
        out = []
        for i, cand in enumerate(event.get("candidates") or ()):
            index = cand.get("index", i)
            text, calls = wire.read_candidate(cand)
            raw = cand.get("finishReason")
            if raw is None:
                self.open.add(index)
            else:
                self.open.discard(index)
                self.ended = True
            out.append(self._chunk(index, text, calls, wire.finish_reason(raw, bool(calls) or self.calls.get(index, 0) > 0)))
        return out

    def finish(self, label: str) -> dict | None:
        """At EOF: error if no candidate finished (truncated), else the usage chunk (`choices: []`)."""
        if not self.ended or self.open:
            raise UpstreamError(f"The {label} provider's stream ended before a finishReason.")
        if self.usage is None:
            return None
        make = shapes.chat_chunk if self.chat else shapes.completions_chunk
        extra = {"delta": {}} if self.chat else {"text": ""}
        return {**make(id=self.id, model=self.model, created=self.created, **extra), "choices": [], "usage": self.usage}
