"""Which Bedrock model family a model id belongs to, and how that family's InvokeModel body is made."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from app.errors import InvalidRequest
from app.providers import bedrock_native as native
from app.providers.bedrock_converse import LABEL
from app.providers.bedrock_native import Piece

# Cross-region inference profiles prefix the base model id with a geography (`us.anthropic...`).
REGION_PREFIXES = {"us", "eu", "apac", "us-gov", "global", "jp", "au", "ca"}
COMPLETION_KEYS = {
    "prompt", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "stop", "n",
    "stream", "stream_options",
}


def base_model_id(model: str) -> str:
    """`arn:...:foundation-model/us.meta.llama3...` or `us.meta.llama3...` → `meta.llama3...`."""
    if model.startswith("arn:"):
        model = model.rsplit("/", 1)[-1]
    head, _, rest = model.partition(".")
    return rest if head in REGION_PREFIXES and "." in rest else model


def vendor(model: str) -> str:
    """The provider prefix of a model id; Nova is told apart from Titan (their bodies differ)."""
    base = base_model_id(model)
    return "nova" if base.startswith("amazon.nova") else base.split(".", 1)[0]


@dataclass(frozen=True)
class Family:
    """How one model family's InvokeModel body is written and read."""

    name: str
    params: frozenset[str]  # unified sampling parameters the family can honour
    body: Callable[[str, Mapping[str, Any]], dict]
    reply: Callable[[Mapping[str, Any]], Piece]
    chunk: Callable[[Mapping[str, Any]], Piece] | None  # None: no InvokeModelWithResponseStream

    def to_upstream(self, prompt: str, request: Mapping[str, Any], stream: bool = False) -> dict:
        """Unified completions request (one prompt) → this family's native body."""
        for key in ("temperature", "top_p", "top_k", "stop"):
            if request.get(key) is not None and key not in self.params:
                raise InvalidRequest(
                    f"The parameter '{key}' is not supported by {LABEL} {self.name} models.", param=key
                )
        top_k = request.get("top_k")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise InvalidRequest("top_k must be a whole number of at least 1.", param="top_k")
        if stream and self.chunk is None:
            raise InvalidRequest(f"{LABEL} {self.name} models cannot stream.", param="stream")
        body = self.body(prompt, request)
        if stream and self.name == "cohere-command":
            body["stream"] = True  # Cohere's generate body names streaming itself
        return {k: v for k, v in body.items() if v is not None}


def _family(name: str, params: str, body: Callable, reply: Callable, chunk: Callable | None) -> Family:
    return Family(name, frozenset(params.split()), body, reply, chunk)


ALL = "temperature top_p top_k stop"
FAMILIES = {
    "anthropic": _family("anthropic", ALL, native.claude_body, native.claude_reply, native.claude_chunk),
    "anthropic-text": _family("anthropic-text", ALL, native.claude_text_body, native.claude_text_piece, native.claude_text_piece),
    "titan": _family("titan", "temperature top_p stop", native.titan_body, native.titan_reply, native.titan_chunk),
    "nova": _family("nova", ALL, native.nova_body, native.nova_reply, native.nova_chunk),
    "cohere-command": _family("cohere-command", ALL, native.cohere_body, native.cohere_reply, native.cohere_chunk),
    "cohere-command-r": _family("cohere-command-r", ALL, native.command_r_body, native.command_r_reply, native.command_r_chunk),
    "ai21-jamba": _family("ai21-jamba", "temperature top_p stop", native.jamba_body, native.jamba_reply, native.jamba_chunk),
    "ai21-jurassic": _family("ai21-jurassic", "temperature top_p stop", native.j2_body, native.j2_reply, None),
    "meta": _family("meta", "temperature top_p", native.llama_body, native.llama_piece, native.llama_piece),
    "mistral": _family("mistral", ALL, native.mistral_body, native.mistral_piece, native.mistral_piece),
}

_RULES: list[tuple[str, str]] = [  # (pattern on the base model id, family), first match wins
    (r"^anthropic\.claude-(v2|instant)", "anthropic-text"),
    (r"^anthropic\.", "anthropic"),
    (r"^amazon\.titan-text", "titan"),
    (r"^amazon\.nova", "nova"),
    (r"^cohere\.command-r", "cohere-command-r"),
    (r"^cohere\.command", "cohere-command"),
    (r"^ai21\.j2", "ai21-jurassic"),
    (r"^ai21\.jamba", "ai21-jamba"),
    (r"^meta\.llama", "meta"),
    (r"^mistral\.", "mistral"),
]


def completion_family(model: str) -> Family | None:
    base = base_model_id(model)
    if "embed" in base:
        return None
    for pattern, name in _RULES:
        if re.match(pattern, base):
            return FAMILIES[name]
    return None
