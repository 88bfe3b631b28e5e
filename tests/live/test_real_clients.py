"""Unmodified real clients against live gunicorn: the OpenAI SDK, MLflow Deployments, LangChain."""
from __future__ import annotations

import warnings

import openai
import pytest
import requests

HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def sdk(live_gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=live_gateway.url + "/v1", api_key="unused", max_retries=0, timeout=10)


@pytest.fixture(scope="module")
def deploy(live_gateway):
    from mlflow.deployments import get_deploy_client

    return get_deploy_client(live_gateway.url)


# ----- OpenAI Python SDK --------------------------------------------------------------------


def test_openai_chat(sdk):
    reply = sdk.chat.completions.create(model="chat", messages=HELLO, temperature=0.2)
    assert reply.choices[0].message.content == "Hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.total_tokens == 4


def test_openai_streaming_chat(sdk):
    stream = sdk.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "one two three"}], stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == 3


def test_openai_completions_and_stream(sdk):
    reply = sdk.completions.create(model="completions", prompt="Say something nice")
    assert reply.choices[0].text == "Say something nice"
    streamed = "".join(
        c.choices[0].text for c in sdk.completions.create(model="completions", prompt="a b c", stream=True)
    )
    assert streamed == "a b c"


def test_openai_embeddings(sdk):
    reply = sdk.embeddings.create(model="embeddings", input=["first text", "second text"])
    assert [d.index for d in reply.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in reply.data)


def test_openai_models(sdk):
    ids = [m.id for m in sdk.models.list()]
    assert ids == ["chat", "completions", "embeddings", "chat-2", "completions-2", "embeddings-2"]
    assert sdk.models.retrieve("embeddings-2").owned_by == "echo"


def test_openai_errors_are_the_sdk_exception_types(sdk):
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.chat.completions.create(model="nope", messages=HELLO)
    assert missing.value.status_code == 404
    assert "The endpoint 'nope' does not exist." in missing.value.message
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.chat.completions.create(model="chat", messages=HELLO, temperature=5)
    assert "temperature" in bad.value.message
    assert bad.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as wrong_type:
        sdk.embeddings.create(model="chat", input="x")
    assert "llm/v1/chat" in wrong_type.value.message
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("nope")


# ----- MLflow Deployments client ------------------------------------------------------------


def test_mlflow_lists_endpoints_across_pages(deploy, live_gateway):
    first = requests.get(live_gateway.url + "/api/2.0/endpoints/", timeout=5).json()
    assert len(first["endpoints"]) == 2 and first["next_page_token"]  # really paged
    endpoints = deploy.list_endpoints()
    assert [e.name for e in endpoints] == [
        "chat", "completions", "embeddings", "chat-2", "completions-2", "embeddings-2"
    ]
    assert endpoints[2].endpoint_type == "llm/v1/embeddings"


def test_mlflow_get_endpoint(deploy):
    endpoint = deploy.get_endpoint("completions-2")
    assert endpoint.endpoint_type == "llm/v1/completions"
    assert endpoint.model.name == "echo-completions-2" and endpoint.model.provider == "echo"
    assert endpoint.endpoint_url.endswith("/gateway/completions-2/invocations")


def test_mlflow_predict(deploy):
    chat = deploy.predict(endpoint="chat", inputs={"messages": HELLO, "temperature": 0.3})
    assert chat["choices"][0]["message"]["content"] == "Hello there"
    done = deploy.predict(endpoint="completions", inputs={"prompt": "Say something", "max_tokens": 1})
    assert done["choices"][0] == {"index": 0, "text": "Say", "finish_reason": "length"}
    vectors = deploy.predict(endpoint="embeddings-2", inputs={"input": ["a", "b", "c"]})
    assert [len(d["embedding"]) for d in vectors["data"]] == [4, 4, 4]


def test_mlflow_errors_carry_the_gateway_detail(deploy):
    with pytest.raises(requests.HTTPError) as missing:
        deploy.predict(endpoint="nope", inputs={"messages": HELLO})
    assert missing.value.response.status_code == 404
    assert missing.value.response.json() == {"detail": "The endpoint 'nope' does not exist."}
    with pytest.raises(requests.HTTPError) as bad:
        deploy.predict(endpoint="chat", inputs={"messages": HELLO, "temperature": 5})
    assert bad.value.response.status_code == 422
    assert "temperature" in bad.value.response.json()["detail"]


# ----- LangChain's MLflow integration -------------------------------------------------------


def _langchain():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # langchain-community announces its own sunset on import
        from langchain_community.chat_models import ChatMlflow
        from langchain_community.llms import Mlflow
    return ChatMlflow, Mlflow


def test_langchain_chat_model(live_gateway):
    from langchain_core.messages import HumanMessage, SystemMessage

    ChatMlflow, _ = _langchain()
    chat = ChatMlflow(target_uri=live_gateway.url, endpoint="chat", temperature=0.1)
    reply = chat.invoke([SystemMessage(content="Be brief."), HumanMessage(content="Hello there")])
    assert reply.content == "Hello there"
    assert reply.response_metadata["total_tokens"] == 6
    stopped = ChatMlflow(target_uri=live_gateway.url, endpoint="chat-2", stop=["there"])
    assert stopped.invoke("Hello there").content == "Hello"


def test_langchain_llm(live_gateway):
    _, Mlflow = _langchain()
    llm = Mlflow(target_uri=live_gateway.url, endpoint="completions")
    assert llm.invoke("Say something nice") == "Say something nice"
    short = Mlflow(target_uri=live_gateway.url, endpoint="completions-2", max_tokens=2)
    assert short.invoke("one two three four") == "one two"
