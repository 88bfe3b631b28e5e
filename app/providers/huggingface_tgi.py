"""Hugging Face Text Generation Inference: chat via /v1/chat/completions, completions via /generate."""
from __future__ import annotations

from functools import partial
from typing import Any, Iterator, Mapping

from app.config_fields import Secret, Url
from app.errors import UpstreamError
from app.providers.base import BaseProvider, Chunk, ProviderConfig
from app.providers.openai import chunk_error
from app.providers.translate import (
    as_list, check_keys, include_usage, invalid, max_tokens, one_candidate, parameters_of,
)
from app.schemas import shapes

LABEL = "Hugging Face TGI"
# TGI ChatRequest keys (tgi.openapi.json) we can honour; `logit_bias` is refused because TGI
# takes a list there, not OpenAI's token→bias map, and marks it UNUSED.
CHAT_KEYS = {
    "messages", "temperature", "top_p", "n", "max_tokens", "max_completion_tokens", "stop",
    "stream", "stream_options", "tools", "tool_choice", "tool_prompt", "seed",
    "frequency_penalty", "presence_penalty", "logprobs", "top_logprobs", "response_format",
}
# Unified completions keys mapped onto TGI GenerateParameters (top_k and repetition_penalty are
# TGI's own knobs, accepted as extra keys).
GENERATE_KEYS = {
    "prompt", "temperature", "top_p", "n", "max_tokens", "max_completion_tokens", "stop",
    "stream", "stream_options", "seed", "frequency_penalty", "top_k", "repetition_penalty",
}
GRAMMARS = ("json", "regex", "json_schema")
# TGI `details.finish_reason` → OpenAI finish_reason.
FINISH = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}


class TGIConfig(ProviderConfig):
    hf_server_url = Url(required=True)
    hf_api_key = Secret()


reject = partial(invalid, label=LABEL)


def common_checks(request: Mapping[str, Any], allowed: set[str]) -> None:
    check_keys(request, allowed, LABEL)
    one_candidate(request, LABEL, "must be 1 (TGI generates one candidate)")
    # TGI validation: "`top_p` must be > 0.0 and < 1.0"; 1.0 means "no nucleus cut", so it is
    # honoured by leaving top_p out, while 0 has no TGI equivalent.
    if request.get("top_p") == 0:
        raise reject("top_p", "must be greater than 0")


def stop_list(request: Mapping[str, Any]) -> list[str] | None:
    stop = request.get("stop")
    if stop is None:
        return None
    stops = as_list(stop)
    if len(stops) > 4:
        raise reject("stop", "accepts at most 4 sequences")
    return stops


# ----- translation (pure): chat ------------------------------------------------------------


def chat_to_upstream(request: Mapping[str, Any], model: str) -> dict:
    """Unified chat → TGI `ChatRequest` (OpenAI-shaped: `{"model","messages","max_tokens",...}`)."""
    common_checks(request, CHAT_KEYS)
    body = {k: v for k, v in request.items() if k not in ("n", "max_completion_tokens", "top_p", "stop")}
    body["model"] = model  # TGI ignores it ("[UNUSED]"), but it keeps the body self-describing
    if request.get("max_completion_tokens") is not None:
        body["max_tokens"] = request["max_completion_tokens"]
    if request.get("top_p") is not None and request["top_p"] < 1:
        body["top_p"] = request["top_p"]
    if stop_list(request) is not None:
        body["stop"] = stop_list(request)
    if "tools" in request:
        body["tools"] = [tool_to_upstream(t) for t in request["tools"]]
    fmt = request.get("response_format")
    if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") not in GRAMMARS or "value" not in fmt):
        raise reject("response_format", "must be a TGI grammar {'type': 'json'|'regex'|'json_schema', 'value': ...}")
    return body


def tool_to_upstream(tool: Mapping[str, Any]) -> dict:
    """OpenAI `{"type":"function","function":{"name","description","parameters"}}` → TGI's
    `FunctionDefinition`, which names the JSON schema `arguments` (tgi.openapi.json)."""
    fn = tool["function"]
    out: dict[str, Any] = {"name": fn["name"], "arguments": parameters_of(fn)}
    if fn.get("description") is not None:
        out["description"] = fn["description"]
    return {"type": "function", "function": out}


def chat_from_upstream(body: dict) -> dict:
    """TGI chat reply: OpenAI's shape, except `finish_reason: "stop_sequence"` passes verbatim."""
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        raise UpstreamError(f"The {LABEL} provider returned a chat reply without choices.")
    for choice in body["choices"]:
        if isinstance(choice, dict):
            choice["finish_reason"] = FINISH.get(choice.get("finish_reason"), choice.get("finish_reason"))
    body.setdefault("usage", None)
    return body


# ----- translation (pure): native generate -------------------------------------------------


def generate_parameters(request: Mapping[str, Any], *, stream: bool) -> dict:
    """Unified completions → TGI `GenerateParameters`.

    temperature: TGI wants > 0; OpenAI's 0 means greedy decoding, which is TGI's
    `do_sample: false` with no temperature, so 0 maps to exactly that.
    """
    common_checks(request, GENERATE_KEYS)
    params: dict[str, Any] = {"details": True}
    if not stream:
        # `prefill` (prompt tokens) is only returned with decoder_input_details, which TGI
        # refuses on streams; streams report `details.input_length` instead.
        params["decoder_input_details"] = True
    sampling = False
    temperature = request.get("temperature")
    if temperature is not None and temperature > 0:
        params["temperature"] = temperature
        sampling = True
    if request.get("top_p") is not None and request["top_p"] < 1:
        params["top_p"] = request["top_p"]
        sampling = True
    if request.get("top_k") is not None:
        if isinstance(request["top_k"], bool) or not isinstance(request["top_k"], int) or request["top_k"] < 1:
            raise reject("top_k", "must be a whole number of at least 1")
        params["top_k"] = request["top_k"]
        sampling = True
    if temperature == 0:
        if sampling:
            raise reject("temperature", "0 (greedy) cannot be combined with top_p or top_k")
        params["do_sample"] = False
    elif sampling:
        params["do_sample"] = True
    if max_tokens(request) is not None:
        params["max_new_tokens"] = max_tokens(request)
    if stop_list(request) is not None:
        params["stop"] = stop_list(request)
    if request.get("seed") is not None:
        if isinstance(request["seed"], bool) or not isinstance(request["seed"], int) or request["seed"] < 1:
            raise reject("seed", "must be a whole number of at least 1")
        params["seed"] = request["seed"]
    for key in ("frequency_penalty", "repetition_penalty"):
        if request.get(key) is not None:
            params[key] = request[key]
    return params


def prompts_of(request: Mapping[str, Any]) -> list[str]:
    return as_list(request["prompt"])


def generate_body(prompt: str, params: Mapping[str, Any]) -> dict:
    """`{"inputs": "<prompt>", "parameters": {...}}` (GenerateRequest)."""
    return {"inputs": prompt, "parameters": dict(params)}


def generate_from_upstream(body: Any) -> tuple[str, str | None, int | None, int | None]:
    """`{"generated_text","details":{"finish_reason","generated_tokens","prefill":[...]}}` →
    (text, finish_reason, prompt_tokens, completion_tokens)."""
    if not isinstance(body, dict) or not isinstance(body.get("generated_text"), str):
        raise UpstreamError(f"The {LABEL} provider returned a reply without generated_text.")
    details = body.get("details") if isinstance(body.get("details"), dict) else {}
    prefill = details.get("prefill")
    return (
        body["generated_text"],
        FINISH.get(details.get("finish_reason"), details.get("finish_reason")),
        len(prefill) if isinstance(prefill, list) else None,
        details.get("generated_tokens"),
    )


def stream_event(event: Mapping[str, Any]) -> tuple[str, str | None, dict | None]:
    """One `/generate_stream` event `{"index","token":{"text","special"},"generated_text","details"}`
    → (delta text, finish_reason or None, usage on the final event)."""
    token = event.get("token") if isinstance(event.get("token"), dict) else {}
    text = "" if token.get("special") else token.get("text") or ""
    details = event.get("details")
    if not isinstance(details, dict):
        return text, None, None
    reason = details.get("finish_reason")
    usage = shapes.usage(details.get("input_length"), details.get("generated_tokens"))
    return text, FINISH.get(reason, reason or "stop"), usage


# ----- transport ---------------------------------------------------------------------------


class HuggingFaceTGIProvider(BaseProvider):
    name = "huggingface-text-generation-inference"
    display_name = LABEL
    config_schema = TGIConfig
    base_url_key = "hf_server_url"

    def headers(self) -> dict[str, str]:
        key = self.config.get("hf_api_key")
        return {"Authorization": f"Bearer {key}"} if key else {}

    def error_message(self, body: Any) -> str | None:
        # `{"error": "<message>", "error_type": "validation|generation|overloaded|..."}`
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            kind = body.get("error_type")
            return f"{body['error']} ({kind})" if isinstance(kind, str) else body["error"]
        return super().error_message(body)

    def upstream_error(self, resp: Any) -> Any:
        err = super().upstream_error(resp)
        if resp.status_code == 424:  # TGI "generation" error: the model failed, not the client
            return UpstreamError(f"The {LABEL} model failed to generate: {err.message}")
        return err

    def _url(self, path: str) -> str:
        return f"{self.base_url(self.config)}/{path}"

    def chat(self, request: dict) -> dict:
        return chat_from_upstream(self.post_json(self._url("v1/chat/completions"), chat_to_upstream(request, self.model)))

    def chat_stream(self, request: dict) -> Iterator[Chunk]:
        return self._chat_stream(chat_to_upstream(request, self.model))

    def _chat_stream(self, body: dict) -> Iterator[Chunk]:
        resp = self.post_stream(self._url("v1/chat/completions"), body)
        for event in self.iter_sse(resp):
            if event.data == "[DONE]":
                return
            message = chunk_error(event.data)
            if message is not None:
                raise UpstreamError(f"The {LABEL} provider failed mid-stream: {self.redact(message)}")
            if '"stop_sequence"' in event.data:
                yield chat_from_upstream_chunk(self.parse_event(event.data))
            else:
                yield event.data
        raise UpstreamError(f"The {LABEL} provider's stream ended without [DONE].")

    def completions(self, request: dict) -> dict:
        if request.get("stream_options"):
            raise reject("stream_options", "needs stream")
        params = generate_parameters(request, stream=False)
        choices, prompt_tokens, completion_tokens = [], 0, 0
        # TGI's /generate takes one prompt; a list of prompts is one call each, in order.
        for index, prompt in enumerate(prompts_of(request)):
            reply = self.post_json(self._url("generate"), generate_body(prompt, params))
            text, reason, p_tokens, c_tokens = generate_from_upstream(reply)
            choices.append(shapes.completions_choice(index, text, reason))
            prompt_tokens = None if p_tokens is None or prompt_tokens is None else prompt_tokens + p_tokens
            completion_tokens = None if c_tokens is None or completion_tokens is None else completion_tokens + c_tokens
        return shapes.completions_response(model=self.model, choices=choices, usage=shapes.usage(prompt_tokens, completion_tokens))

    def completions_stream(self, request: dict) -> Iterator[Chunk]:
        prompts = prompts_of(request)
        if len(prompts) != 1:
            raise reject("prompt", "must be a single prompt when streaming")
        body = generate_body(prompts[0], generate_parameters(request, stream=True))
        return self._generate_stream(body, include_usage(request))

    def _generate_stream(self, body: dict, with_usage: bool) -> Iterator[dict]:
        resp = self.post_stream(self._url("generate_stream"), body)
        base = {"id": shapes.new_id("cmpl"), "model": self.model, "created": shapes.now()}
        for event in self.iter_sse(resp):
            data = self.parse_event(event.data)
            if not isinstance(data, dict):
                raise UpstreamError(f"The {LABEL} provider sent a stream event that is not an object.")
            if "error" in data:
                raise UpstreamError(f"The {LABEL} provider failed mid-stream: {self.redact(str(self.error_message(data)))}")
            text, reason, usage = stream_event(data)
            if text or reason:
                yield shapes.completions_chunk(**base, text=text, finish_reason=reason)
            if reason is not None:
                if with_usage:
                    yield {**shapes.completions_chunk(**base, text=""), "choices": [], "usage": usage}
                resp.close()
                return
        # TGI ends a stream by closing it after the event carrying `details`; EOF before that
        # event is a broken generation, not a short answer.
        raise UpstreamError(f"The {LABEL} provider's stream ended before its final event.")


def chat_from_upstream_chunk(chunk: dict) -> dict:
    """A chat chunk whose `finish_reason` is TGI's verbatim `stop_sequence`."""
    for choice in chunk.get("choices") or ():
        if isinstance(choice, dict) and choice.get("finish_reason") == "stop_sequence":
            choice["finish_reason"] = "stop"
    return chunk
