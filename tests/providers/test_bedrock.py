"""Bedrock translation through botocore's Stubber (params checked against the bedrock-runtime model)."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from app import config as config_mod
from app import registry
from app.errors import ConfigError, GatewayError, InvalidRequest, UpstreamError
from app.http import DEFAULT_POOL_SIZE, Timeout
from app.providers import bedrock_converse as converse
from app.providers import bedrock_embeddings as embeddings
from app.providers import bedrock_families as families
from app.providers.base import CHAT, COMPLETIONS, EMBEDDINGS
from app.providers.bedrock import BedrockConfig, BedrockProvider
from tests.upstream_spec import validate_request

DATA = Path(__file__).resolve().parents[1] / "data" / "bedrock"
AKID, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"


def load(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def make(model: str, endpoint_type: str = CHAT, timeout: Timeout = Timeout(), **aws: Any) -> BedrockProvider:
    config = BedrockConfig().load({"aws_config": {
        "aws_region": "us-east-1", "aws_access_key_id": AKID, "aws_secret_access_key": SECRET, **aws}})
    return BedrockProvider(model, config, session=None, timeout=timeout, endpoint_type=endpoint_type)


class JsonBody:
    """Matches an InvokeModel `body` (bytes) by its JSON value, whatever the key order."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, (bytes, str)) and json.loads(other) == self.value

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __repr__(self) -> str:
        return f"JsonBody({self.value!r})"


def invoke_response(body: Any, headers: dict[str, str] | None = None) -> dict:
    raw = json.dumps(body).encode()
    return {"body": StreamingBody(io.BytesIO(raw), len(raw)), "contentType": "application/json",
            "ResponseMetadata": {"HTTPStatusCode": 200, "HTTPHeaders": headers or {}}}


def invoke_params(model: str, body: Any) -> dict:
    return {"modelId": model, "body": JsonBody(body), "contentType": "application/json", "accept": "application/json"}


# ----- Converse ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["converse_text", "converse_tools"])
def test_converse_translation(name: str) -> None:
    case = load(f"{name}.json")
    provider = make(case["model"])
    with Stubber(provider.client) as stub:
        stub.add_response("converse", case["reply"], case["params"])
        reply = provider.chat(case["request"])
        stub.assert_no_pending_responses()
    assert reply["object"] == "chat.completion" and reply["model"] == case["model"]
    assert reply["choices"] == [{"index": 0, **{k: case["expected"][k] for k in ("message", "finish_reason")}}]
    assert reply["usage"] == case["expected"]["usage"]


def test_converse_image_part_goes_as_bytes() -> None:
    provider = make(CLAUDE)
    request = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]}
    params = {"modelId": CLAUDE, "messages": [{"role": "user", "content": [
        {"text": "What is this?"}, {"image": {"format": "png", "source": {"bytes": b"\x89PNG\r\n\x1a\n"}}}]}]}
    reply = {"output": {"message": {"role": "assistant", "content": [{"text": "A PNG."}]}}, "stopReason": "end_turn",
             "usage": {"inputTokens": 9, "outputTokens": 2, "totalTokens": 11}, "metrics": {"latencyMs": 1}}
    with Stubber(provider.client) as stub:
        stub.add_response("converse", reply, params)
        assert provider.chat(request)["choices"][0]["message"]["content"] == "A PNG."


@pytest.mark.parametrize("stop_reason, finish", sorted(converse.STOP_REASONS.items()))
def test_converse_stop_reasons(stop_reason: str, finish: str) -> None:
    provider = make(CLAUDE)
    reply = {"output": {"message": {"role": "assistant", "content": [{"text": "x"}]}}, "stopReason": stop_reason,
             "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, "metrics": {"latencyMs": 1}}
    with Stubber(provider.client) as stub:
        stub.add_response("converse", reply)
        assert provider.chat({"messages": [{"role": "user", "content": "x"}]})["choices"][0]["finish_reason"] == finish


def test_converse_stream_events_translate() -> None:
    case = load("converse_stream_tool.json")
    state = converse.StreamState(case["model"], include_usage=True)
    chunks = [c for event in case["events"] for c in converse.from_stream_event(event, state)]
    assert [[c["choices"][0]["delta"], c["choices"][0]["finish_reason"]] for c in chunks[:-1]] == case["deltas"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == case["usage"]
    assert len({c["id"] for c in chunks}) == 1 and state.finished


@pytest.mark.parametrize("request_, param", [
    ({"n": 2}, "n"),
    ({"presence_penalty": 0.5}, "presence_penalty"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"top_k": 0}, "top_k"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}, "messages"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}, "messages"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "t", "type": "function", "function": {"name": "f", "arguments": "not json"}}]}]}, "messages"),
    ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages"),
])
def test_converse_refuses_what_it_cannot_honour(request_: dict, param: str) -> None:
    request = {"messages": [{"role": "user", "content": "hi"}], **request_}
    with pytest.raises(InvalidRequest) as info:
        converse.to_converse(request, CLAUDE, "anthropic")
    assert info.value.param == param


def test_converse_top_k_per_family() -> None:
    request = {"messages": [{"role": "user", "content": "hi"}], "top_k": 7}
    assert converse.to_converse(request, "us.amazon.nova-pro-v1:0", "nova")["additionalModelRequestFields"] == \
        {"inferenceConfig": {"topK": 7}}
    assert converse.to_converse(request, "cohere.command-r-v1:0", "cohere")["additionalModelRequestFields"] == {"k": 7}
    with pytest.raises(InvalidRequest):
        converse.to_converse(request, "meta.llama3-8b-instruct-v1:0", "meta")


def test_converse_tool_choice_none_and_auto() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    request = {"messages": [{"role": "user", "content": "hi"}], "tools": tools}
    assert converse.to_converse({**request, "tool_choice": "none"}, CLAUDE, "anthropic").get("toolConfig") is None
    config = converse.to_converse({**request, "tool_choice": "auto"}, CLAUDE, "anthropic")["toolConfig"]
    assert config == {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object", "properties": {}}}}}],
                      "toolChoice": {"auto": {}}}
    assert converse.to_converse({**request, "tool_choice": "required"}, CLAUDE, "anthropic")["toolConfig"]["toolChoice"] == {"any": {}}


# ----- InvokeModel per family ------------------------------------------------------------------

FAMILY_CASES = sorted(p.stem.removeprefix("invoke_") for p in DATA.glob("invoke_*.json"))


def test_every_family_has_a_case() -> None:
    assert set(FAMILY_CASES) == set(families.FAMILIES)


@pytest.mark.parametrize("name", FAMILY_CASES)
def test_invoke_family_translation(name: str) -> None:
    case = load(f"invoke_{name}.json")
    assert families.completion_family(case["model"]).name == name
    provider = make(case["model"], COMPLETIONS)
    with Stubber(provider.client) as stub:
        stub.add_response("invoke_model", invoke_response(case["reply"], case["headers"]),
                          invoke_params(case["model"], case["body"]))
        reply = provider.completions(case["request"])
        stub.assert_no_pending_responses()
    assert reply["choices"] == [{"index": 0, "text": case["expected"]["text"], "finish_reason": case["expected"]["finish_reason"]}]
    prompt, completion = case["expected"]["usage"]
    assert reply["usage"] == {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


@pytest.mark.parametrize("name", [n for n in FAMILY_CASES if "chunks" in load(f"invoke_{n}.json")])
def test_invoke_family_stream_body(name: str) -> None:
    case = load(f"invoke_{name}.json")
    family = families.completion_family(case["model"])
    assert family.to_upstream(case["request"]["prompt"], case["request"], stream=True) == {**case["body"], **case.get("stream_body", {})}


def test_token_count_headers_win_over_body_counts() -> None:
    case = load("invoke_meta.json")
    provider = make(case["model"], COMPLETIONS)
    with Stubber(provider.client) as stub:
        headers = {"x-amzn-bedrock-input-token-count": "30", "x-amzn-bedrock-output-token-count": "20"}
        stub.add_response("invoke_model", invoke_response(case["reply"], headers))
        assert provider.completions(case["request"])["usage"] == {"prompt_tokens": 30, "completion_tokens": 20, "total_tokens": 50}


def test_prompt_list_makes_one_call_per_prompt() -> None:
    case = load("invoke_mistral.json")
    provider = make(case["model"], COMPLETIONS)
    with Stubber(provider.client) as stub:
        for prompt in ("a", "b"):
            stub.add_response("invoke_model", invoke_response(case["reply"], case["headers"]),
                              invoke_params(case["model"], {**case["body"], "prompt": prompt}))
        reply = provider.completions({**case["request"], "prompt": ["a", "b"]})
    assert [c["index"] for c in reply["choices"]] == [0, 1]
    assert reply["usage"]["prompt_tokens"] == 14


@pytest.mark.parametrize("model, request_, param", [
    ("meta.llama3-8b-instruct-v1:0", {"stop": "x"}, "stop"),
    ("meta.llama3-8b-instruct-v1:0", {"top_k": 3}, "top_k"),
    ("amazon.titan-text-lite-v1", {"top_k": 3}, "top_k"),
    ("ai21.j2-mid-v1", {"stream": True}, "stream"),
    ("mistral.mistral-large-2402-v1:0", {"n": 3}, "n"),
    ("mistral.mistral-large-2402-v1:0", {"top_k": "many"}, "top_k"),
    ("mistral.mistral-large-2402-v1:0", {"logprobs": 2}, "logprobs"),
])
def test_invoke_refuses_what_the_family_cannot_honour(model: str, request_: dict, param: str) -> None:
    provider = make(model, COMPLETIONS)
    request = {"prompt": "hi", **request_}
    with pytest.raises(InvalidRequest) as info:
        if request.get("stream"):
            next(iter(provider.completions_stream(request)))
        else:
            provider.completions(request)
    assert info.value.param == param


@pytest.mark.parametrize("model, base, family", [
    ("us.anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic"),
    ("eu.meta.llama3-2-3b-instruct-v1:0", "meta.llama3-2-3b-instruct-v1:0", "meta"),
    ("apac.amazon.nova-micro-v1:0", "amazon.nova-micro-v1:0", "nova"),
    ("arn:aws:bedrock:us-east-1::foundation-model/cohere.command-light-text-v14", "cohere.command-light-text-v14", "cohere-command"),
    ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.mistral.pixtral-large-2502-v1:0",
     "mistral.pixtral-large-2502-v1:0", "mistral"),
    ("anthropic.claude-instant-v1", "anthropic.claude-instant-v1", "anthropic-text"),
    ("ai21.jamba-instruct-v1:0", "ai21.jamba-instruct-v1:0", "ai21-jamba"),
])
def test_family_from_model_id(model: str, base: str, family: str) -> None:
    assert families.base_model_id(model) == base
    assert families.completion_family(model).name == family


# ----- embeddings ----------------------------------------------------------------------------------


def test_titan_embeddings_one_call_per_text() -> None:
    model = "amazon.titan-embed-text-v2:0"
    provider = make(model, EMBEDDINGS)
    with Stubber(provider.client) as stub:
        for i, text in enumerate(["alpha", "beta gamma"]):
            stub.add_response("invoke_model", invoke_response({"embedding": [0.1 * i, 0.2], "inputTextTokenCount": i + 1},
                                                              {"x-amzn-bedrock-input-token-count": str(i + 1)}),
                              invoke_params(model, {"inputText": text, "dimensions": 256}))
        reply = provider.embeddings({"input": ["alpha", "beta gamma"], "dimensions": 256})
        stub.assert_no_pending_responses()
    assert [d["embedding"] for d in reply["data"]] == [[0.0, 0.2], [0.1, 0.2]]
    assert reply["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


def test_cohere_embeddings_batched_by_96() -> None:
    model = "cohere.embed-english-v3"
    provider = make(model, EMBEDDINGS)
    texts = [f"t{i}" for i in range(100)]
    with Stubber(provider.client) as stub:
        for batch in (texts[:96], texts[96:]):
            stub.add_response("invoke_model", invoke_response(
                {"id": "e", "embeddings": {"float": [[float(t[1:])] for t in batch]}, "texts": batch, "response_type": "embeddings_by_type"},
                {"x-amzn-bedrock-input-token-count": str(len(batch))}),
                invoke_params(model, {"texts": batch, "input_type": "search_query"}))
        reply = provider.embeddings({"input": texts, "input_type": "search_query"})
        stub.assert_no_pending_responses()
    assert [d["embedding"][0] for d in reply["data"]] == [float(i) for i in range(100)]
    assert [d["index"] for d in reply["data"]] == list(range(100))
    assert reply["usage"]["prompt_tokens"] == 100


@pytest.mark.parametrize("model, request_, param", [
    ("cohere.embed-english-v3", {"dimensions": 256}, "dimensions"),
    ("amazon.titan-embed-text-v1", {"input_type": "search_query"}, "input_type"),
    ("amazon.titan-embed-text-v1", {"encoding_format": "base64"}, "encoding_format"),
    ("amazon.titan-embed-text-v1", {"user": "u1"}, "user"),
])
def test_embeddings_refuse_unsupported(model: str, request_: dict, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        make(model, EMBEDDINGS).embeddings({"input": "x", **request_})
    assert info.value.param == param


# ----- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("code, http, status", [
    ("ThrottlingException", 429, 429),
    ("ValidationException", 400, 400),
    ("AccessDeniedException", 403, 403),
    ("ResourceNotFoundException", 404, 404),
    ("ModelTimeoutException", 408, 504),
    ("ServiceUnavailableException", 503, 503),
    ("ModelNotReadyException", 429, 503),
    ("ModelErrorException", 424, 502),
    ("InternalServerException", 500, 502),
    ("ServiceQuotaExceededException", 400, 502),
    ("UnrecognizedClientException", 403, 502),
])
def test_error_mapping(code: str, http: int, status: int) -> None:
    provider = make(CLAUDE)
    with Stubber(provider.client) as stub:
        stub.add_client_error("converse", code, f"boom for {AKID} / {SECRET}", http)
        with pytest.raises(GatewayError) as info:
            provider.chat({"messages": [{"role": "user", "content": "hi"}]})
    assert info.value.status == status
    assert code in info.value.message and AKID not in info.value.message and SECRET not in info.value.message


def test_malformed_reply_is_a_502() -> None:
    provider = make("meta.llama3-8b-instruct-v1:0", COMPLETIONS)
    with Stubber(provider.client) as stub:
        stub.add_response("invoke_model", invoke_response(["not", "an", "object"]))
        with pytest.raises(UpstreamError) as info:
            provider.completions({"prompt": "x"})
    assert info.value.status == 502


# ----- config and client ------------------------------------------------------------------------------


def test_one_client_sized_like_the_other_providers() -> None:
    provider = make(CLAUDE, timeout=Timeout(connect=3, read=45))
    config = provider.client.meta.config
    assert config.max_pool_connections == DEFAULT_POOL_SIZE
    assert (config.connect_timeout, config.read_timeout) == (3, 45)
    assert config.retries["total_max_attempts"] == 1
    assert provider.client.meta.region_name == "us-east-1"


def yaml_endpoint(model: str, endpoint_type: str = CHAT, provider: str = "bedrock", aws: str = "{aws_region: us-west-2}") -> str:
    return f"""
endpoints:
  - name: b
    endpoint_type: {endpoint_type}
    model: {{provider: {provider}, name: "{model}", config: {{aws_config: {aws}}}}}
"""


@pytest.mark.parametrize("model, endpoint_type, ok", [
    ("cohere.command-r-plus-v1:0", CHAT, True),
    ("some.new-model-v1:0", CHAT, True),  # Converse serves any family
    ("amazon.titan-embed-text-v2:0", CHAT, False),
    ("meta.llama3-70b-instruct-v1:0", COMPLETIONS, True),
    ("some.new-model-v1:0", COMPLETIONS, False),
    ("cohere.embed-multilingual-v3", EMBEDDINGS, True),
    ("meta.llama3-70b-instruct-v1:0", EMBEDDINGS, False),
])
def test_model_checked_at_load(model: str, endpoint_type: str, ok: bool) -> None:
    if ok:
        assert config_mod.parse(yaml_endpoint(model, endpoint_type))[0].model == model
    else:
        with pytest.raises(ConfigError, match="model.name"):
            config_mod.parse(yaml_endpoint(model, endpoint_type))


def test_alias_and_default_region(monkeypatch: pytest.MonkeyPatch) -> None:
    assert registry.get("amazon-bedrock") is BedrockProvider
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    endpoint = config_mod.parse(yaml_endpoint(CLAUDE, provider="amazon-bedrock", aws="{}"))[0]
    assert endpoint.config["aws_config"]["aws_region"] == "eu-west-3"
    endpoint = config_mod.parse(yaml_endpoint(CLAUDE).replace("config: {aws_config: {aws_region: us-west-2}}", "config: {}"))[0]
    assert endpoint.config["aws_config"]["aws_region"] == "eu-west-3"


def test_missing_region_is_a_load_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(ConfigError, match="aws_config.aws_region"):
        config_mod.parse(yaml_endpoint(CLAUDE, aws="{}"))


def test_secrets_from_env_and_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MY_AKID", AKID)
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    aws = f"{{aws_region: us-east-1, aws_access_key_id: $MY_AKID, aws_secret_access_key: {secret_file}}}"
    aws_config = config_mod.parse(yaml_endpoint(CLAUDE, aws=aws))[0].config["aws_config"]
    assert (aws_config["aws_access_key_id"], aws_config["aws_secret_access_key"]) == (AKID, SECRET)


@pytest.mark.parametrize("aws, field", [
    ("{aws_access_key_id: AKIDONLY}", "aws_secret_access_key"),
    ("{aws_session_token: tok}", "aws_session_token"),
    ("{session_length_seconds: 1200}", "session_length_seconds"),
    ("{aws_role_arn: 'arn:aws:iam::123456789012:role/r', session_length_seconds: 60}", "session_length_seconds"),
    ("{aws_role_arn: not-an-arn}", "aws_role_arn"),
    ("{endpoint_url: 'ftp://x'}", "endpoint_url"),
    ("{region: us-east-1}", "region"),
])
def test_bad_aws_config(aws: str, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_mod.parse(yaml_endpoint(CLAUDE, aws=aws.replace("{", "{aws_region: us-east-1, ", 1)))
    assert f"aws_config.{field}" in str(info.value)
    assert "AKIDONLY" not in str(info.value)


def test_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AKID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    path = Path(__file__).resolve().parents[2] / "config" / "examples" / "bedrock.yaml"
    endpoints = {e.name: e for e in config_mod.load(str(path))}
    assert set(endpoints) == {"claude", "nova", "llama", "titan-embed"}
    assert endpoints["nova"].config["aws_config"]["session_length_seconds"] == 3600
    provider = BedrockProvider(endpoints["claude"].model, endpoints["claude"].config, session=None)
    assert provider.client.meta.region_name == "us-east-1"


# Several native bodies are the vendor's own API body without `model` (WIRE-FORMATS 11.4): check
# what we send against the vendor's official spec, with the model put back and Bedrock's own
# `anthropic_version` taken out.
@pytest.mark.parametrize("name, spec, path, model", [
    ("anthropic", "anthropic.openapi.json", "/v1/messages", "claude-3-5-haiku-20241022"),
    ("anthropic-text", "anthropic.openapi.json", "/v1/complete", "claude-2.1"),
    ("ai21-jamba", "ai21.openapi.json", "/studio/v1/chat/completions", "jamba-mini"),
    ("cohere-command", "cohere.openapi.yaml", "/v1/generate", None),
    ("cohere-command-r", "cohere.openapi.yaml", "/v1/chat", None),
])
def test_native_bodies_match_the_vendor_specs(name: str, spec: str, path: str, model: str | None) -> None:
    case = load(f"invoke_{name}.json")
    body = families.FAMILIES[name].to_upstream(case["request"]["prompt"], case["request"])
    body.pop("anthropic_version", None)
    validate_request(spec, path, {**body, **({"model": model} if model else {})})


def test_cohere_embed_body_matches_the_vendor_spec() -> None:
    validate_request("cohere.openapi.yaml", "/v1/embed",
                     embeddings.cohere_embed_body(["a", "b"], {"input_type": "search_query"}))
