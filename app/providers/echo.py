"""The built-in `echo` provider: no key, no network; answers with the input, word by word."""
from __future__ import annotations

import hashlib
import math
import time
from typing import Any, Iterator, Mapping

from marshmallow import fields, validate

from app.providers.base import BaseProvider, Chunk, ProviderConfig
from app.schemas import shapes


class EchoConfig(ProviderConfig):
    stream_interval = fields.Float(load_default=0.0, validate=validate.Range(0, 10))
    dimensions = fields.Integer(load_default=8, strict=True, validate=validate.Range(1, 4096))


# ----- translation (pure) ------------------------------------------------------------------
# Tokens are whitespace-separated words: the counts are exact for what this provider does.


def text_of(content: Any) -> str:
    """A message's text: the string itself, or its text parts joined by spaces."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if p.get("type") == "text")
    return ""


def count_tokens(text: str) -> int:
    return len(text.split())


def answer(text: str, request: Mapping[str, Any]) -> tuple[list[str], str]:
    """The words to send back and the finish reason, honouring `stop` and `max_tokens`."""
    stop = request.get("stop")
    for seq in [stop] if isinstance(stop, str) else (stop or []):
        cut = text.find(seq)
        if cut >= 0:
            text = text[:cut]
    words = text.split()
    limit = request.get("max_tokens") or request.get("max_completion_tokens")
    if limit is not None and len(words) > limit:
        return words[:limit], "length"
    return words, "stop"


def chat_input(request: Mapping[str, Any]) -> tuple[str, int]:
    """The text to echo (the last user message) and the prompt's token count (all messages)."""
    messages = request["messages"]
    users = [m for m in messages if m["role"] == "user"]
    last = text_of(users[-1]["content"]) if users else text_of(messages[-1].get("content"))
    return last, sum(count_tokens(text_of(m.get("content"))) for m in messages)


def vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector derived from the text's SHA-256 stream."""
    raw = b""
    counter = 0
    while len(raw) < dimensions * 2:
        raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    values = [int.from_bytes(raw[i * 2 : i * 2 + 2], "big") / 32767.5 - 1.0 for i in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


# ----- transport (none: everything is local) -----------------------------------------------


class EchoProvider(BaseProvider):
    name = "echo"
    display_name = "echo"
    config_schema = EchoConfig

    def _pause(self) -> None:
        if self.config.get("stream_interval"):
            time.sleep(self.config["stream_interval"])

    def chat(self, request: dict) -> dict:
        text, prompt_tokens = chat_input(request)
        words, reason = answer(text, request)
        n = request.get("n", 1)
        message = shapes.chat_message(" ".join(words))
        return shapes.chat_response(
            model=self.model,
            choices=[shapes.chat_choice(i, dict(message), reason) for i in range(n)],
            usage=shapes.usage(prompt_tokens, len(words) * n),
        )

    def chat_stream(self, request: dict) -> Iterator[Chunk]:
        text, prompt_tokens = chat_input(request)
        words, reason = answer(text, request)
        n = request.get("n", 1)
        base = {"id": shapes.new_id("chatcmpl"), "model": self.model, "created": shapes.now()}
        for i in range(n):
            yield shapes.chat_chunk(**base, index=i, delta={"role": "assistant", "content": ""})
        for pos, word in enumerate(words):
            self._pause()
            for i in range(n):
                yield shapes.chat_chunk(**base, index=i, delta={"content": word if pos == 0 else " " + word})
        for i in range(n):
            yield shapes.chat_chunk(**base, index=i, delta={}, finish_reason=reason)
        if (request.get("stream_options") or {}).get("include_usage"):
            yield {
                **shapes.chat_chunk(**base, delta={}),
                "choices": [],
                "usage": shapes.usage(prompt_tokens, len(words) * n),
            }

    def completions(self, request: dict) -> dict:
        prompts = request["prompt"] if isinstance(request["prompt"], list) else [request["prompt"]]
        n = request.get("n", 1)
        choices, completion_tokens = [], 0
        for p_index, prompt in enumerate(prompts):
            words, reason = answer(prompt, request)
            completion_tokens += len(words) * n
            for i in range(n):
                choices.append(shapes.completions_choice(p_index * n + i, " ".join(words), reason))
        prompt_tokens = sum(count_tokens(p) for p in prompts)
        return shapes.completions_response(
            model=self.model, choices=choices, usage=shapes.usage(prompt_tokens, completion_tokens)
        )

    def completions_stream(self, request: dict) -> Iterator[Chunk]:
        prompts = request["prompt"] if isinstance(request["prompt"], list) else [request["prompt"]]
        n = request.get("n", 1)
        base = {"id": shapes.new_id("cmpl"), "model": self.model, "created": shapes.now()}
        completion_tokens = 0
        for p_index, prompt in enumerate(prompts):
            words, reason = answer(prompt, request)
            completion_tokens += len(words) * n
            for pos, word in enumerate(words):
                self._pause()
                for i in range(n):
                    yield shapes.completions_chunk(**base, index=p_index * n + i, text=word if pos == 0 else " " + word)
            for i in range(n):
                yield shapes.completions_chunk(**base, index=p_index * n + i, text="", finish_reason=reason)
        if (request.get("stream_options") or {}).get("include_usage"):
            usage = shapes.usage(sum(count_tokens(p) for p in prompts), completion_tokens)
            yield {**shapes.completions_chunk(**base, text=""), "choices": [], "usage": usage}

    def embeddings(self, request: dict) -> dict:
        inputs = request["input"] if isinstance(request["input"], list) else [request["input"]]
        tokens = sum(count_tokens(t) for t in inputs)
        return shapes.embeddings_response(
            model=self.model,
            vectors=[vector(t, self.config["dimensions"]) for t in inputs],
            usage={"prompt_tokens": tokens, "total_tokens": tokens},
        )
