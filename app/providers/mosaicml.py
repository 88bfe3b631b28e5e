"""MosaicML hosted inference (retired): `/{model}/v1/predict` for text, templated chat, embeddings."""
from __future__ import annotations

from functools import partial
from typing import Any, Iterator, Mapping

from app.config_fields import Secret, Url
from app.errors import GatewayError, UpstreamError
from app.providers.base import BaseProvider, Chunk, ProviderConfig
from app.providers.translate import (
    as_list, check_keys, invalid, max_tokens, one_candidate, plain_chat, plain_completions,
)
from app.schemas import shapes

MOSAICML_BASE = "https://models.hosted-on.mosaicml.hosting"
LABEL = "MosaicML"
TEXT_KEYS = {"temperature", "top_p", "top_k", "max_tokens", "max_completion_tokens", "n", "stream"}
CHAT_KEYS = TEXT_KEYS | {"messages"}
COMPLETION_KEYS = TEXT_KEYS | {"prompt"}
EMBEDDING_KEYS = {"input", "encoding_format"}
# MosaicML reported token-limit violations as HTTP 500 with these messages: the client's fault.
CLIENT_FAULTS = ("Error: max output tokens", "Error: prompt token count")


class MosaicMLConfig(ProviderConfig):
    mosaicml_api_key = Secret(required=True)
    mosaicml_api_base = Url()


reject = partial(invalid, label=LABEL)


def check_request(request: Mapping[str, Any], allowed: set[str]) -> None:
    """Unknown keys, `n` other than 1 and `stream` are refused: the predict API has no such options."""
    check_keys(request, allowed, LABEL)
    one_candidate(request, LABEL, "must be 1 (MosaicML returns one output per input)")
    if request.get("stream"):
        raise reject("stream", "is not supported (MosaicML has no streaming API)")


# ----- translation (pure) ------------------------------------------------------------------


def text_of(index: int, content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(part.get("type") == "text" for part in content):
        return "".join(part["text"] for part in content)
    raise reject(f"messages[{index}].content", "accepts only text")


def llama2_prompt(messages: list[Mapping[str, Any]]) -> str:
    """Render a conversation in the Llama-2 chat template MosaicML's chat models were tuned on.

    `<s>[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user} [/INST] {assistant} </s><s>[INST] {user} [/INST]`
    System (and developer) messages must come first; then user and assistant turns alternate,
    starting and ending with a user turn.
    """
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    for i, message in enumerate(messages):
        role = message["role"]
        if role in ("tool",) or message.get("tool_calls"):
            raise reject(f"messages[{i}]", "cannot carry tool calls or tool results")
        text = text_of(i, message.get("content"))
        if role in ("system", "developer"):
            if turns:
                raise reject(f"messages[{i}].role", "system messages must come before the conversation")
            system.append(text)
            continue
        expected = "user" if len(turns) % 2 == 0 else "assistant"
        if role != expected:
            raise reject(f"messages[{i}].role", f"must be {expected} (turns alternate, starting with user)")
        turns.append((role, text))
    if not turns or turns[-1][0] != "user":
        raise reject("messages", "must end with a user message")
    prompt = ""
    for pos in range(0, len(turns), 2):
        user = turns[pos][1]
        if pos == 0 and system:
            user = "<<SYS>>\n" + "\n".join(system) + "\n<</SYS>>\n\n" + user
        prompt += f"<s>[INST] {user} [/INST]"
        if pos + 1 < len(turns):
            prompt += f" {turns[pos + 1][1]} </s>"
    return prompt


def parameters(request: Mapping[str, Any]) -> dict:
    """`{"temperature","top_p","top_k","max_new_tokens"}`: the predict API's sampling block."""
    params: dict[str, Any] = {}
    for key in ("temperature", "top_p"):
        if key in request:
            params[key] = request[key]
    if "top_k" in request:
        if isinstance(request["top_k"], bool) or not isinstance(request["top_k"], int) or request["top_k"] < 1:
            raise reject("top_k", "must be a whole number of at least 1")
        params["top_k"] = request["top_k"]
    if max_tokens(request) is not None:
        params["max_new_tokens"] = max_tokens(request)
    return params


def predict_body(inputs: list[str], params: Mapping[str, Any]) -> dict:
    """`{"inputs": ["<prompt>", ...], "parameters": {...}}` (parameters omitted when empty)."""
    body: dict[str, Any] = {"inputs": inputs}
    if params:
        body["parameters"] = dict(params)
    return body


def chat_to_upstream(request: Mapping[str, Any]) -> dict:
    check_request(request, CHAT_KEYS)
    return predict_body([llama2_prompt(request["messages"])], parameters(request))


def completions_to_upstream(request: Mapping[str, Any]) -> dict:
    check_request(request, COMPLETION_KEYS)
    return predict_body(as_list(request["prompt"]), parameters(request))


def embeddings_to_upstream(request: Mapping[str, Any]) -> dict:
    check_keys(request, EMBEDDING_KEYS, LABEL)
    if request.get("encoding_format", "float") != "float":
        raise reject("encoding_format", "must be 'float'")
    return {"inputs": as_list(request["input"])}


def outputs(body: Any, count: int) -> list:
    """`{"outputs": [...]}` with one entry per input, or a clean 502."""
    out = body.get("outputs") if isinstance(body, dict) else None
    if not isinstance(out, list) or len(out) != count:
        raise UpstreamError(f"The {LABEL} provider returned an unexpected reply (no outputs for every input).")
    return out


def texts_from_upstream(body: Any, count: int) -> list[str]:
    out = outputs(body, count)
    if not all(isinstance(t, str) for t in out):
        raise UpstreamError(f"The {LABEL} provider returned outputs that are not text.")
    return out


def vectors_from_upstream(body: Any, count: int) -> list[list[float]]:
    out = outputs(body, count)
    for vec in out:
        if not isinstance(vec, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vec):
            raise UpstreamError(f"The {LABEL} provider returned an embedding that is not a list of numbers.")
    return out


# ----- transport ---------------------------------------------------------------------------


class MosaicMLProvider(BaseProvider):
    name = "mosaicml"
    display_name = LABEL
    config_schema = MosaicMLConfig
    base_url_key = "mosaicml_api_base"
    default_base_url = MOSAICML_BASE

    def headers(self) -> dict[str, str]:
        return {"Authorization": self.config["mosaicml_api_key"]}  # the raw key: no "Bearer"

    def upstream_error(self, resp: Any) -> GatewayError:
        err = super().upstream_error(resp)
        if resp.status_code == 500 and any(f in err.message for f in CLIENT_FAULTS):
            detail = err.message.split(": ", 1)[-1] if err.message.startswith("The ") else err.message
            return UpstreamError(detail, status=400, type="invalid_request_error")
        return err

    def _predict(self, body: dict) -> Any:
        return self.post_json(f"{self.base_url(self.config)}/{self.model}/v1/predict", body)

    def chat(self, request: dict) -> dict:
        # The predict API reports neither a finish reason nor token counts.
        return plain_chat(self.model, texts_from_upstream(self._predict(chat_to_upstream(request)), 1)[0])

    def chat_stream(self, request: dict) -> Iterator[Chunk]:
        check_request(request, CHAT_KEYS)
        raise reject("stream", "is not supported")

    def completions(self, request: dict) -> dict:
        body = completions_to_upstream(request)
        return plain_completions(self.model, texts_from_upstream(self._predict(body), len(body["inputs"])))

    def completions_stream(self, request: dict) -> Iterator[Chunk]:
        check_request(request, COMPLETION_KEYS)
        raise reject("stream", "is not supported")

    def embeddings(self, request: dict) -> dict:
        body = embeddings_to_upstream(request)
        vectors = vectors_from_upstream(self._predict(body), len(body["inputs"]))
        return shapes.embeddings_response(model=self.model, vectors=vectors, usage=None)
