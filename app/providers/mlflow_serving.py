"""MLflow Model Serving (`mlflow models serve`): `POST {model_server_url}/invocations`."""
from __future__ import annotations

from functools import partial
from typing import Any, Iterator, Mapping

from app.config_fields import Url
from app.errors import UpstreamError
from app.providers.base import BaseProvider, Chunk, ProviderConfig
from app.providers.translate import (
    as_list, check_keys, invalid, one_candidate, plain_chat, plain_completions, text_of,
)
from app.schemas import shapes

LABEL = "MLflow Model Serving"
EMBEDDING_KEYS = {"input", "encoding_format"}


class MLflowServingConfig(ProviderConfig):
    model_server_url = Url(required=True)


reject = partial(invalid, label=LABEL)


def bad_reply(what: str) -> UpstreamError:
    return UpstreamError(f"The {LABEL} model returned an unexpected reply: {what}.")


# ----- translation (pure) ------------------------------------------------------------------


def params_of(request: Mapping[str, Any], skip: set[str]) -> dict:
    """The sampling parameters, sent as the model's `params` (its signature decides what it takes).

    `n` is refused: the scoring server returns one prediction per input.
    """
    one_candidate(request, LABEL, "must be 1")
    if request.get("stream"):
        raise reject("stream", "is not supported (the scoring server does not stream)")
    params = {k: v for k, v in request.items() if k not in skip | {"n", "stream", "max_completion_tokens"}}
    if request.get("max_completion_tokens") is not None:
        params["max_tokens"] = request["max_completion_tokens"]
    return params


def body(inputs: list, params: Mapping[str, Any]) -> dict:
    """`{"inputs": [...], "params": {...}}` (params left out when empty)."""
    out: dict[str, Any] = {"inputs": inputs}
    if params:
        out["params"] = dict(params)
    return out


def completions_to_upstream(request: Mapping[str, Any]) -> dict:
    """`{"inputs": ["prompt1", ...], "params": {"temperature": 0.5, "max_tokens": 64}}`."""
    return body(as_list(request["prompt"]), params_of(request, {"prompt"}))


def chat_to_upstream(request: Mapping[str, Any]) -> dict:
    """A chat with one user message → `{"inputs": ["<its text>"], "params": {...}}`.

    The scoring server takes plain text inputs; a conversation (system prompt, history, tools)
    has no faithful encoding there, so it is refused instead of being flattened.
    """
    messages = request["messages"]
    if len(messages) != 1 or messages[0]["role"] != "user":
        raise reject("messages", "must hold exactly one user message")
    for key in ("tools", "tool_choice"):
        if key in request:
            raise reject(key, "is not supported")
    content = messages[0]["content"]
    if isinstance(content, list):
        if any(part.get("type") != "text" for part in content):
            raise reject("messages[0].content", "accepts only text")
        content = text_of(content)
    return body([content], params_of(request, {"messages"}))


def embeddings_to_upstream(request: Mapping[str, Any]) -> dict:
    """`{"inputs": ["a", "b"]}`."""
    check_keys(request, EMBEDDING_KEYS, LABEL)
    if request.get("encoding_format", "float") != "float":
        raise reject("encoding_format", "must be 'float'")
    return {"inputs": as_list(request["input"])}


def _choice_text(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and isinstance(item.get("text"), str):
        return item["text"]
    raise bad_reply("a prediction is not text")


def texts_from_upstream(reply: Any, count: int) -> list[str]:
    """Accepted: `{"predictions": ["t1", ...]}`, `{"predictions": {"choices": ["t1" | {"text"}, ...]}}`
    and `{"predictions": {"<any single key>": ["t1", ...]}}`; one text per input."""
    if not isinstance(reply, dict) or "predictions" not in reply:
        raise bad_reply("no 'predictions' key")
    preds = reply["predictions"]
    if isinstance(preds, dict):
        if "choices" in preds:
            preds = preds["choices"]
        elif len(preds) == 1:
            preds = next(iter(preds.values()))
        else:
            raise bad_reply("'predictions' is an object with several keys and no 'choices'")
    if not isinstance(preds, list):
        raise bad_reply("'predictions' is not a list")
    texts = [_choice_text(p) for p in preds]
    if len(texts) != count:
        raise bad_reply(f"{len(texts)} predictions for {count} input(s)")
    return texts


def vectors_from_upstream(reply: Any, count: int) -> list[list[float]]:
    """`{"predictions": [[0.1, ...], ...]}`; a flat list of numbers is one vector."""
    if not isinstance(reply, dict) or not isinstance(reply.get("predictions"), list):
        raise bad_reply("no 'predictions' list")
    preds = reply["predictions"]

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if preds and all(number(v) for v in preds):
        preds = [preds]
    if not all(isinstance(vec, list) and vec and all(number(v) for v in vec) for vec in preds):
        raise bad_reply("an embedding is not a list of numbers")
    if len(preds) != count:
        raise bad_reply(f"{len(preds)} embeddings for {count} input(s)")
    return preds


# ----- transport ---------------------------------------------------------------------------


class MLflowServingProvider(BaseProvider):
    name = "mlflow-model-serving"
    display_name = LABEL
    config_schema = MLflowServingConfig
    base_url_key = "model_server_url"

    def _invoke(self, payload: dict) -> Any:
        return self.post_json(f"{self.base_url(self.config)}/invocations", payload)

    def chat(self, request: dict) -> dict:
        # The scoring server reports no finish reason and no token counts.
        return plain_chat(self.model, texts_from_upstream(self._invoke(chat_to_upstream(request)), 1)[0])

    def chat_stream(self, request: dict) -> Iterator[Chunk]:
        raise reject("stream", "is not supported (the scoring server does not stream)")

    def completions(self, request: dict) -> dict:
        payload = completions_to_upstream(request)
        return plain_completions(self.model, texts_from_upstream(self._invoke(payload), len(payload["inputs"])))

    def completions_stream(self, request: dict) -> Iterator[Chunk]:
        raise reject("stream", "is not supported (the scoring server does not stream)")

    def embeddings(self, request: dict) -> dict:
        payload = embeddings_to_upstream(request)
        vectors = vectors_from_upstream(self._invoke(payload), len(payload["inputs"]))
        return shapes.embeddings_response(model=self.model, vectors=vectors, usage=None)
