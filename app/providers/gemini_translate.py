"""Pure translation between the unified (OpenAI) shapes and Gemini's generateContent / embedContent."""
from __future__ import annotations

import json
from typing import Any, Mapping

from app.errors import InvalidRequest, UpstreamError
from app.providers.translate import (
    as_list, max_tokens, reject_unknown, single_prompt, text_of, tool_name, tool_names,
)
from app.schemas import shapes

SAMPLING_PARAMS = frozenset({
    "temperature", "top_p", "top_k", "n", "max_tokens", "max_completion_tokens", "stop", "seed",
    "presence_penalty", "frequency_penalty", "response_format",
})
CHAT_PARAMS = SAMPLING_PARAMS | {"messages", "tools", "tool_choice", "parallel_tool_calls"}
COMPLETIONS_PARAMS = SAMPLING_PARAMS | {"prompt"}
EMBEDDINGS_PARAMS = frozenset({"input", "dimensions", "encoding_format", "task_type"})

# Table 0.2 of WIRE-FORMATS.md; anything else (OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL, ...) -> stop.
FILTERED = frozenset({
    "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "IMAGE_OTHER",
})


# ----- request -----------------------------------------------------------------------------


def _part(part: Mapping[str, Any], where: str, label: str) -> dict:
    """A unified content part -> `{"text"}` or `{"inlineData":{"mimeType","data"}}` (data: URLs only)."""
    if part["type"] == "text":
        return {"text": part["text"]}
    if part["type"] == "image_url":
        url = part.get("image_url")
        url = url.get("url") if isinstance(url, dict) else url
        if isinstance(url, str) and url.startswith("data:") and ";base64," in url:
            mime, data = url[5:].split(";base64,", 1)
            return {"inlineData": {"mimeType": mime, "data": data}}
        raise InvalidRequest(
            f"The {label} provider takes images only as data: URLs (base64).", param=where
        )
    raise InvalidRequest(f"Content parts of type '{part['type']}' are not supported by the {label} provider.", param=where)


def _parts(content: Any, where: str, label: str) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    return [_part(p, where, label) for p in content]


def _response_object(content: Any) -> dict:
    # functionResponse.response must be an object: a JSON-object result goes as is, else wrapped.
    text = text_of(content)
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"result": text}


def contents_to_upstream(messages: list[Mapping[str, Any]], label: str) -> tuple[dict | None, list[dict]]:
    """Unified messages -> (`systemInstruction` `{"parts":[{"text"}]}`, `contents` `[{"role":"user|model","parts":[...]}]`)."""
    names = tool_names(messages)
    system: list[dict] = []
    contents: list[dict] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}].content"
        if m.get("name") is not None:
            raise InvalidRequest(f"messages[{i}].name is not supported by the {label} provider.", param=f"messages[{i}].name")
        role = m["role"]
        if role in ("system", "developer"):
            system.append({"text": text_of(m["content"])})
        elif role == "user":
            contents.append({"role": "user", "parts": _parts(m["content"], where, label)})
        elif role == "assistant":
            parts = _parts(m.get("content"), where, label)
            for call in m.get("tool_calls") or ():
                try:
                    args = json.loads(call["function"]["arguments"] or "{}")
                except ValueError:
                    args = None
                if not isinstance(args, dict):
                    raise InvalidRequest(
                        f"messages[{i}].tool_calls arguments must be a JSON object for the {label} provider.",
                        param=f"messages[{i}].tool_calls",
                    )
                parts.append({"functionCall": {"name": call["function"]["name"], "args": args}})
            contents.append({"role": "model", "parts": parts})
        else:  # tool: results of one model turn travel together in one user turn
            part = {"functionResponse": {"name": tool_name(names, m, i, label), "response": _response_object(m["content"])}}
            if contents and contents[-1]["role"] == "user" and all("functionResponse" in p for p in contents[-1]["parts"]):
                contents[-1]["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part]})
    return ({"parts": system} if system else None), contents


def tools_to_upstream(tools: list[Mapping[str, Any]]) -> list[dict]:
    """OpenAI tools -> `[{"functionDeclarations":[{"name","description","parametersJsonSchema"}]}]`."""
    declarations = []
    for tool in tools:
        fn = tool["function"]
        decl: dict[str, Any] = {"name": fn["name"]}
        if fn.get("description"):
            decl["description"] = fn["description"]
        if fn.get("parameters"):
            # parametersJsonSchema takes full JSON Schema; `parameters` only an OpenAPI subset.
            decl["parametersJsonSchema"] = fn["parameters"]
        declarations.append(decl)
    return [{"functionDeclarations": declarations}]


def tool_config(choice: Any) -> dict:
    """OpenAI tool_choice -> `{"functionCallingConfig":{"mode":"AUTO|ANY|NONE","allowedFunctionNames"?}}`."""
    if isinstance(choice, dict):
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}}
    return {"functionCallingConfig": {"mode": {"auto": "AUTO", "required": "ANY", "none": "NONE"}[choice]}}


def generation_config(request: Mapping[str, Any], label: str) -> dict:
    """Sampling -> `generationConfig`; temperature passes unchanged (both sides use 0-2)."""
    config: dict[str, Any] = {}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"), ("n", "candidateCount"),
                         ("seed", "seed"), ("presence_penalty", "presencePenalty"),
                         ("frequency_penalty", "frequencyPenalty")):
        if request.get(ours) is not None:
            config[theirs] = request[ours]
    if max_tokens(request) is not None:
        config["maxOutputTokens"] = max_tokens(request)
    stop = request.get("stop")
    if stop is not None:
        config["stopSequences"] = as_list(stop)
    fmt = request.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        config["responseMimeType"] = "application/json"
    elif isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        config["responseMimeType"] = "application/json"
        config["responseJsonSchema"] = (fmt.get("json_schema") or {}).get("schema") or {}
    elif fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        raise InvalidRequest(f"response_format {fmt!r} is not supported by the {label} provider.", param="response_format")
    return config


def chat_to_upstream(request: Mapping[str, Any], label: str) -> dict:
    """Unified chat request -> `generateContent` body."""
    reject_unknown(request, CHAT_PARAMS, label)
    if request.get("parallel_tool_calls") is False:
        raise InvalidRequest(f"parallel_tool_calls=false is not supported by the {label} provider.", param="parallel_tool_calls")
    system, contents = contents_to_upstream(request["messages"], label)
    if not contents:
        raise InvalidRequest(f"The {label} provider needs at least one non-system message.", param="messages")
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = system
    if request.get("tools"):
        body["tools"] = tools_to_upstream(request["tools"])
    if request.get("tool_choice") is not None:
        body["toolConfig"] = tool_config(request["tool_choice"])
    config = generation_config(request, label)
    if config:
        body["generationConfig"] = config
    return body


def completions_to_upstream(request: Mapping[str, Any], label: str) -> dict:
    """Unified completions request -> one user turn of `generateContent`."""
    reject_unknown(request, COMPLETIONS_PARAMS, label)
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": single_prompt(request, label)}]}]}
    config = generation_config(request, label)
    if config:
        body["generationConfig"] = config
    return body


def embeddings_to_upstream(request: Mapping[str, Any], model: str, label: str) -> tuple[str, dict]:
    """(`embedContent`, `{"content":{"parts":[{"text"}]}}`) or (`batchEmbedContents`, `{"requests":[{"model","content"}]}`)."""
    reject_unknown(request, EMBEDDINGS_PARAMS, label)
    if request.get("encoding_format", "float") != "float":
        raise InvalidRequest(f"encoding_format must be 'float' for the {label} provider.", param="encoding_format")
    extra: dict[str, Any] = {}
    if request.get("dimensions") is not None:
        extra["outputDimensionality"] = request["dimensions"]
    if request.get("task_type") is not None:
        extra["taskType"] = request["task_type"]
    inputs = request["input"]
    if isinstance(inputs, str):
        return "embedContent", {"content": {"parts": [{"text": inputs}]}, **extra}
    return "batchEmbedContents", {
        "requests": [{"model": f"models/{model}", "content": {"parts": [{"text": t}]}, **extra} for t in inputs]
    }


# ----- response ----------------------------------------------------------------------------


def finish_reason(value: Any, called: bool) -> str | None:
    """Gemini `finishReason` -> OpenAI (STOP with a functionCall part is tool_calls)."""
    if value is None:
        return None
    if value in FILTERED:
        return "content_filter"
    if value == "MAX_TOKENS":
        return "length"
    return "tool_calls" if called else "stop"


def usage(meta: Any) -> dict | None:
    """`usageMetadata{promptTokenCount,candidatesTokenCount,thoughtsTokenCount,totalTokenCount}` -> usage."""
    if not isinstance(meta, dict):
        return None
    completion = meta.get("candidatesTokenCount")
    if meta.get("thoughtsTokenCount"):
        completion = (completion or 0) + meta["thoughtsTokenCount"]  # billed as output
    return shapes.usage(meta.get("promptTokenCount"), completion, meta.get("totalTokenCount"))


def read_candidate(candidate: Mapping[str, Any]) -> tuple[str | None, list[dict]]:
    """`{"content":{"parts":[{"text"}|{"functionCall":{"name","args"}}]}}` -> (text, OpenAI tool calls)."""
    texts, calls = [], []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if part.get("thought"):
            continue  # thinking summaries are not part of the answer
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        if isinstance(part.get("functionCall"), dict):
            fc = part["functionCall"]
            calls.append(shapes.tool_call(fc.get("id") or shapes.new_id("call"), fc.get("name", ""),
                                          json.dumps(fc.get("args") or {})))
    return ("".join(texts) if texts else None), calls


def blocked(body: Mapping[str, Any], label: str) -> bool:
    """True when the prompt was blocked (`promptFeedback.blockReason`, no candidates); error if just empty."""
    if body.get("candidates"):
        return False
    if (body.get("promptFeedback") or {}).get("blockReason"):
        return True
    raise UpstreamError(f"The {label} provider returned no candidates.")


def chat_from_upstream(body: Mapping[str, Any], model: str, label: str) -> dict:
    """GenerateContentResponse -> unified chat response."""
    choices = []
    if blocked(body, label):
        choices.append(shapes.chat_choice(0, shapes.chat_message(None), "content_filter"))
    for i, cand in enumerate(body.get("candidates") or ()):
        text, calls = read_candidate(cand)
        choices.append(shapes.chat_choice(cand.get("index", i), shapes.chat_message(text, calls),
                                          finish_reason(cand.get("finishReason"), bool(calls))))
    return shapes.chat_response(model=body.get("modelVersion") or model, choices=choices,
                                usage=usage(body.get("usageMetadata")), id=body.get("responseId"))


def completions_from_upstream(body: Mapping[str, Any], model: str, label: str) -> dict:
    """GenerateContentResponse -> unified completions response."""
    choices = []
    if blocked(body, label):
        choices.append(shapes.completions_choice(0, "", "content_filter"))
    for i, cand in enumerate(body.get("candidates") or ()):
        text, _ = read_candidate(cand)
        choices.append(shapes.completions_choice(cand.get("index", i), text or "", finish_reason(cand.get("finishReason"), False)))
    return shapes.completions_response(model=body.get("modelVersion") or model, choices=choices,
                                       usage=usage(body.get("usageMetadata")), id=body.get("responseId"))


def embeddings_from_upstream(body: Mapping[str, Any], model: str) -> dict:
    """`{"embedding":{"values"}}` or `{"embeddings":[{"values"}]}` -> unified (Gemini reports no usage)."""
    items = [body["embedding"]] if "embedding" in body else body.get("embeddings") or []
    return shapes.embeddings_response(model=model, vectors=[e.get("values") or [] for e in items], usage=None)
