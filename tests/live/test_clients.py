"""The official OpenAI SDK and MLflow deployments client against a live gateway, unchanged."""
from __future__ import annotations

import openai
import pytest
from mlflow.deployments import get_deploy_client

from tests.live import Gunicorn

CONFIG = """
endpoints:
  - {name: chat, endpoint_type: llm/v1/chat, model: {provider: echo, name: echo-chat}, limit: {calls: 1000, renewal_period: minute}}
  - {name: completions, endpoint_type: llm/v1/completions, model: {provider: echo, name: echo-completions}}
  - {name: embeddings, endpoint_type: llm/v1/embeddings, model: {provider: echo, name: echo-embeddings, config: {dimensions: 4}}}
  - {name: chat2, endpoint_type: llm/v1/chat, model: {provider: echo, name: e2}}
  - {name: chat3, endpoint_type: llm/v1/chat, model: {provider: echo, name: e3}}
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    path = tmp_path_factory.mktemp("clients") / "gateway.yaml"
    path.write_text(CONFIG)
    with Gunicorn(path, env={"AI_GATEWAY_PAGE_SIZE": "2"}) as gw:
        yield gw


@pytest.fixture
def sdk(gateway):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)


class TestOpenAISDK:
    def test_chat(self, sdk):
        reply = sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi there"}])
        assert reply.choices[0].message.content == "hi there"
        assert reply.choices[0].finish_reason == "stop"
        assert reply.usage.total_tokens == 4

    def test_streaming_chat(self, sdk):
        stream = sdk.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "one two three"}], stream=True,
            stream_options={"include_usage": True})
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "one two three"
        assert chunks[-1].usage.completion_tokens == 3

    def test_completions_and_stream(self, sdk):
        reply = sdk.completions.create(model="completions", prompt="a b c d", max_tokens=3)
        assert reply.choices[0].text == "a b c" and reply.choices[0].finish_reason == "length"
        text = "".join(c.choices[0].text for c in sdk.completions.create(
            model="completions", prompt="x y", stream=True) if c.choices)
        assert text == "x y"

    def test_embeddings(self, sdk):
        reply = sdk.embeddings.create(model="embeddings", input=["a", "b c"])
        assert [len(d.embedding) for d in reply.data] == [4, 4]
        assert reply.usage.prompt_tokens == 3

    def test_models(self, sdk):
        assert [m.id for m in sdk.models.list()] == ["chat", "completions", "embeddings", "chat2", "chat3"]

    def test_errors_are_sdk_exceptions_with_our_message(self, sdk):
        with pytest.raises(openai.NotFoundError, match="does not exist"):
            sdk.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.BadRequestError, match="temperature"):
            sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}], temperature=9)
        with pytest.raises(openai.BadRequestError, match="llm/v1/chat"):
            sdk.embeddings.create(model="chat", input="x")


class TestMlflowClient:
    def test_list_endpoints_across_pages(self, gateway):
        client = get_deploy_client(gateway.url)
        endpoints = client.list_endpoints()
        assert [e.name for e in endpoints] == ["chat", "completions", "embeddings", "chat2", "chat3"]
        assert endpoints[0].limit.calls == 1000 and endpoints[1].limit is None

    def test_get_endpoint(self, gateway):
        endpoint = get_deploy_client(gateway.url).get_endpoint("embeddings")
        assert endpoint.endpoint_type == "llm/v1/embeddings"
        assert endpoint.model.provider == "echo" and endpoint.model.name == "echo-embeddings"
        assert endpoint.endpoint_url.endswith("/gateway/embeddings/invocations")

    def test_predict_all_types(self, gateway):
        client = get_deploy_client(gateway.url)
        chat = client.predict(endpoint="chat", inputs={"messages": [{"role": "user", "content": "hey you"}]})
        assert chat["choices"][0]["message"]["content"] == "hey you"
        comp = client.predict(endpoint="completions", inputs={"prompt": "p q", "temperature": 0.1})
        assert comp["choices"][0]["text"] == "p q"
        emb = client.predict(endpoint="embeddings", inputs={"input": "x"})
        assert len(emb["data"][0]["embedding"]) == 4

    def test_predict_error_surfaces_our_detail(self, gateway):
        import requests

        # The client raises requests' HTTPError carrying the status and our JSON detail.
        with pytest.raises(requests.HTTPError, match=r"422 .*temperature: Must be greater"):
            get_deploy_client(gateway.url).predict(
                endpoint="chat", inputs={"messages": [{"role": "user", "content": "x"}], "temperature": -1})
