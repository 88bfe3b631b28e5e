"""Pure InvokeModel wire shapes per Bedrock model family: native bodies, replies and stream chunks."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from app.providers.bedrock_converse import bedrock_temperature, max_tokens, stop_list

METRICS = "amazon-bedrock-invocationMetrics"
# Anthropic, Titan and the others require a length limit; OpenAI's own default (16) is too short.
DEFAULT_MAX_TOKENS = 1024

# Native finish/stop reasons of every family (WIRE-FORMATS 0.2) → OpenAI finish_reason;
# an unknown non-empty reason counts as `stop` (the answer did end).
FINISH = {
    "stop": "stop", "end_turn": "stop", "stop_sequence": "stop", "endoftext": "stop",
    "COMPLETE": "stop", "FINISH": "stop", "STOP_SEQUENCE": "stop", "USER_CANCEL": "stop",
    "length": "length", "max_tokens": "length", "LENGTH": "length", "MAX_TOKENS": "length",
    "ERROR_LIMIT": "length", "model_context_window_exceeded": "length",
    "tool_use": "tool_calls", "tool_calls": "tool_calls", "TOOL_CALL": "tool_calls",
    "CONTENT_FILTERED": "content_filter", "ERROR_TOXIC": "content_filter",
    "content_filtered": "content_filter", "content_filter": "content_filter",
    "guardrail_intervened": "content_filter", "refusal": "content_filter",
}


def finish(value: Any) -> str | None:
    """A family's native stop reason → OpenAI finish_reason (None while the answer goes on)."""
    if value is None:
        return None
    if isinstance(value, dict):  # AI21 Jurassic: {"reason": "endoftext"}
        value = value.get("reason")
    return FINISH.get(value, "stop") if value else None


@dataclass
class Piece:
    """What one reply or stream chunk contributes: text, a finish reason, token counts."""

    text: str = ""
    finish: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def _sampling(request: Mapping[str, Any], names: Mapping[str, str]) -> dict:
    """Unified temperature/top_p/top_k/stop under the family's own key names (halved temperature)."""
    out: dict[str, Any] = {}
    if request.get("temperature") is not None and "temperature" in names:
        out[names["temperature"]] = bedrock_temperature(request["temperature"])
    for key in ("top_p", "top_k"):
        if request.get(key) is not None and key in names:
            out[names[key]] = request[key]
    if request.get("stop") is not None and "stop" in names:
        out[names["stop"]] = stop_list(request["stop"])
    return out


def _limit(request: Mapping[str, Any]) -> int:
    return max_tokens(request) or DEFAULT_MAX_TOKENS


def _metrics(obj: Mapping[str, Any], piece: Piece) -> Piece:
    # Last stream chunk: "amazon-bedrock-invocationMetrics": {"inputTokenCount","outputTokenCount",...}
    metrics = obj.get(METRICS)
    if isinstance(metrics, dict):
        piece.prompt_tokens = metrics.get("inputTokenCount", piece.prompt_tokens)
        piece.completion_tokens = metrics.get("outputTokenCount", piece.completion_tokens)
    return piece


# ----- anthropic ---------------------------------------------------------------------------
# Body: {"anthropic_version":"bedrock-2023-05-31","max_tokens":256,"messages":[{"role":"user","content":"..."}]}
# Reply: {"content":[{"type":"text","text":"..."}],"stop_reason":"end_turn","usage":{"input_tokens","output_tokens"}}
# Stream: message_start{message.usage} / content_block_delta{delta.text} / message_delta{delta.stop_reason,usage}


def claude_body(prompt: str, request: Mapping[str, Any]) -> dict:
    return {
        "anthropic_version": "bedrock-2023-05-31", "max_tokens": _limit(request),
        "messages": [{"role": "user", "content": prompt}],
        **_sampling(request, {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
                              "stop": "stop_sequences"}),
    }


def claude_reply(body: Mapping[str, Any]) -> Piece:
    text = "".join(b.get("text", "") for b in body.get("content") or () if b.get("type") == "text")
    usage = body.get("usage") or {}
    return Piece(text, finish(body.get("stop_reason")), usage.get("input_tokens"), usage.get("output_tokens"))


def claude_chunk(event: Mapping[str, Any]) -> Piece:
    kind, piece = event.get("type"), Piece()
    if kind == "message_start":
        piece.prompt_tokens = ((event.get("message") or {}).get("usage") or {}).get("input_tokens")
    elif kind == "content_block_delta":
        piece.text = (event.get("delta") or {}).get("text", "")
    elif kind == "message_delta":
        piece.finish = finish((event.get("delta") or {}).get("stop_reason"))
        piece.completion_tokens = (event.get("usage") or {}).get("output_tokens")
    return _metrics(event, piece)


# Legacy Claude v2 / Instant text completions: {"prompt":"\n\nHuman: ...\n\nAssistant:","max_tokens_to_sample":300}
# → {"completion":" ...","stop_reason":"stop_sequence"|"max_tokens"}; stream chunks have the same keys.


def claude_text_body(prompt: str, request: Mapping[str, Any]) -> dict:
    if "Human:" not in prompt:
        prompt = f"\n\nHuman: {prompt}\n\nAssistant:"
    return {
        "prompt": prompt, "max_tokens_to_sample": _limit(request),
        **_sampling(request, {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
                              "stop": "stop_sequences"}),
    }


def claude_text_piece(body: Mapping[str, Any]) -> Piece:
    return _metrics(body, Piece(body.get("completion") or "", finish(body.get("stop_reason"))))


# ----- amazon ------------------------------------------------------------------------------
# Titan body: {"inputText":"...","textGenerationConfig":{"maxTokenCount","temperature","topP","stopSequences"}}
# Reply: {"inputTextTokenCount":N,"results":[{"tokenCount":M,"outputText":"...","completionReason":"FINISH"}]}
# Stream chunk: {"outputText":"...","completionReason":null,"inputTextTokenCount":N,"totalOutputTextTokenCount":M}


def titan_body(prompt: str, request: Mapping[str, Any]) -> dict:
    config = {"maxTokenCount": _limit(request),
              **_sampling(request, {"temperature": "temperature", "top_p": "topP", "stop": "stopSequences"})}
    return {"inputText": prompt, "textGenerationConfig": config}


def titan_reply(body: Mapping[str, Any]) -> Piece:
    result = (body.get("results") or [{}])[0]
    return Piece(result.get("outputText") or "", finish(result.get("completionReason")),
                 body.get("inputTextTokenCount"), result.get("tokenCount"))


def titan_chunk(body: Mapping[str, Any]) -> Piece:
    piece = Piece(body.get("outputText") or "", finish(body.get("completionReason")),
                  body.get("inputTextTokenCount"), body.get("totalOutputTextTokenCount"))
    return _metrics(body, piece)


# Nova body (messages-v1): {"messages":[{"role":"user","content":[{"text":"..."}]}],"inferenceConfig":{"maxTokens",...}}
# Reply: {"output":{"message":{"content":[{"text"}]}},"stopReason":"end_turn","usage":{"inputTokens","outputTokens"}}
# Stream chunk: the Converse events, e.g. {"contentBlockDelta":{"delta":{"text":"..."}}}, {"messageStop":{...}}


def nova_body(prompt: str, request: Mapping[str, Any]) -> dict:
    config = {"maxTokens": _limit(request), **_sampling(request, {
        "temperature": "temperature", "top_p": "topP", "top_k": "topK", "stop": "stopSequences"})}
    return {"schemaVersion": "messages-v1", "messages": [{"role": "user", "content": [{"text": prompt}]}],
            "inferenceConfig": config}


def nova_reply(body: Mapping[str, Any]) -> Piece:
    blocks = ((body.get("output") or {}).get("message") or {}).get("content") or []
    usage = body.get("usage") or {}
    return Piece("".join(b.get("text", "") for b in blocks), finish(body.get("stopReason")),
                 usage.get("inputTokens"), usage.get("outputTokens"))


def nova_chunk(body: Mapping[str, Any]) -> Piece:
    piece = Piece()
    if "contentBlockDelta" in body:
        piece.text = (body["contentBlockDelta"].get("delta") or {}).get("text", "")
    elif "messageStop" in body:
        piece.finish = finish(body["messageStop"].get("stopReason"))
    elif "metadata" in body:
        usage = body["metadata"].get("usage") or {}
        piece.prompt_tokens, piece.completion_tokens = usage.get("inputTokens"), usage.get("outputTokens")
    return _metrics(body, piece)


# ----- cohere ------------------------------------------------------------------------------
# Command (generate) body: {"prompt","max_tokens","temperature","p","k","stop_sequences","stream"?}
# Reply: {"generations":[{"text":"...","finish_reason":"COMPLETE"}]}
# Stream chunk: {"text":"...","is_finished":false} ... {"is_finished":true,"finish_reason":"COMPLETE"}


def cohere_body(prompt: str, request: Mapping[str, Any]) -> dict:
    return {"prompt": prompt, "max_tokens": _limit(request), **_sampling(
        request, {"temperature": "temperature", "top_p": "p", "top_k": "k", "stop": "stop_sequences"})}


def cohere_reply(body: Mapping[str, Any]) -> Piece:
    generation = (body.get("generations") or [{}])[0]
    return Piece(generation.get("text") or "", finish(generation.get("finish_reason")))


def cohere_chunk(body: Mapping[str, Any]) -> Piece:
    done = body.get("is_finished")
    return _metrics(body, Piece(body.get("text") or "" if not done else "",
                                finish(body.get("finish_reason")) if done else None))


# Command R body (v1 chat): {"message":"...","max_tokens","temperature","p","k","stop_sequences"}
# Reply: {"text":"...","finish_reason":"COMPLETE"}; stream: {"event_type":"text-generation","text"}
# ... {"event_type":"stream-end","finish_reason":"COMPLETE"}


def command_r_body(prompt: str, request: Mapping[str, Any]) -> dict:
    body = cohere_body(prompt, request)
    body["message"] = body.pop("prompt")
    return body


def command_r_reply(body: Mapping[str, Any]) -> Piece:
    return Piece(body.get("text") or "", finish(body.get("finish_reason")))


def command_r_chunk(body: Mapping[str, Any]) -> Piece:
    kind = body.get("event_type")
    piece = Piece(body.get("text") or "" if kind == "text-generation" else "")
    if kind == "stream-end":
        piece.finish = finish(body.get("finish_reason"))
    return _metrics(body, piece)


# ----- ai21 --------------------------------------------------------------------------------
# Jamba body (OpenAI-like chat): {"messages":[{"role":"user","content":"..."}],"max_tokens","temperature","top_p","stop"}
# Reply: {"choices":[{"message":{"content"},"finish_reason"}],"usage":{"prompt_tokens","completion_tokens"}}
# Stream chunk: {"choices":[{"delta":{"content"},"finish_reason"}]}, then a metering chunk with metrics.


def jamba_body(prompt: str, request: Mapping[str, Any]) -> dict:
    return {"messages": [{"role": "user", "content": prompt}], "max_tokens": _limit(request),
            **_sampling(request, {"temperature": "temperature", "top_p": "top_p", "stop": "stop"})}


def jamba_reply(body: Mapping[str, Any]) -> Piece:
    choice = (body.get("choices") or [{}])[0]
    usage = body.get("usage") or {}
    return Piece((choice.get("message") or {}).get("content") or "", finish(choice.get("finish_reason")),
                 usage.get("prompt_tokens"), usage.get("completion_tokens"))


def jamba_chunk(body: Mapping[str, Any]) -> Piece:
    choice = (body.get("choices") or [{}])[0]
    return _metrics(body, Piece((choice.get("delta") or {}).get("content") or "", finish(choice.get("finish_reason"))))


# Jurassic-2 body: {"prompt","maxTokens","temperature","topP","stopSequences"}
# Reply: {"completions":[{"data":{"text":"..."},"finishReason":{"reason":"endoftext"}}]}; no streaming.


def j2_body(prompt: str, request: Mapping[str, Any]) -> dict:
    return {"prompt": prompt, "maxTokens": _limit(request), **_sampling(
        request, {"temperature": "temperature", "top_p": "topP", "stop": "stopSequences"})}


def j2_reply(body: Mapping[str, Any]) -> Piece:
    completion = (body.get("completions") or [{}])[0]
    return Piece((completion.get("data") or {}).get("text") or "", finish(completion.get("finishReason")))


# ----- meta and mistral ------------------------------------------------------------------------
# Llama body: {"prompt":"<formatted prompt>","max_gen_len","temperature","top_p"} (no stop, no top_k)
# Reply and stream chunks: {"generation","prompt_token_count","generation_token_count","stop_reason"}


def llama_body(prompt: str, request: Mapping[str, Any]) -> dict:
    return {"prompt": prompt, "max_gen_len": _limit(request),
            **_sampling(request, {"temperature": "temperature", "top_p": "top_p"})}


def llama_piece(body: Mapping[str, Any]) -> Piece:
    piece = Piece(body.get("generation") or "", finish(body.get("stop_reason")),
                  body.get("prompt_token_count"), body.get("generation_token_count"))
    return _metrics(body, piece)


# Mistral body: {"prompt":"<s>[INST] ... [/INST]","max_tokens","temperature","top_p","top_k","stop"}
# Reply and stream chunks: {"outputs":[{"text":"...","stop_reason":"stop"|"length"|null}]}


def mistral_body(prompt: str, request: Mapping[str, Any]) -> dict:
    return {"prompt": prompt, "max_tokens": _limit(request), **_sampling(
        request, {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "stop": "stop"})}


def mistral_piece(body: Mapping[str, Any]) -> Piece:
    output = (body.get("outputs") or [{}])[0]
    return _metrics(body, Piece(output.get("text") or "", finish(output.get("stop_reason"))))
