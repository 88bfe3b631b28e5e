"""docs/openapi.yaml is a valid OpenAPI document, matches the Flask routes, and the app keeps it."""
from __future__ import annotations

import json
import re

import pytest
import responses
import yaml
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate as validate_spec

from app import openapi
from app.api.errors import render
from app.errors import RateLimited

# Flask routes that are not API operations: Flask's static folder route and Swagger UI's asset
# files (the document's `Docs` tag names /docs/assets/ as where they live).
UNDOCUMENTED_ROUTES = {"/static/{filename}", "/docs/assets/{filename}"}
IGNORED_METHODS = {"HEAD", "OPTIONS"}


@pytest.fixture(scope="module")
def doc() -> dict:
    with open(openapi.SPEC_PATH, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_document_is_valid_openapi(doc):
    validate_spec(doc)


def test_served_document_is_valid_openapi(client):
    validate_spec(client.get("/openapi.json").get_json())
    validate_spec(yaml.safe_load(client.get("/openapi.yaml").get_data(as_text=True)))


def _flask_operations(app) -> set[tuple[str, str]]:
    ops = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        if path in UNDOCUMENTED_ROUTES:
            continue
        for method in rule.methods - IGNORED_METHODS:
            ops.add((method.lower(), path))
    return ops


def _document_operations(doc: dict) -> set[tuple[str, str]]:
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    return {(m, path) for path, item in doc["paths"].items() for m in item if m in methods}


def test_every_route_is_documented_and_every_operation_is_routed(app, doc):
    routed, documented = _flask_operations(app), _document_operations(doc)
    assert routed - documented == set(), "Flask routes missing from docs/openapi.yaml"
    assert documented - routed == set(), "documented operations that no Flask route serves"


def test_route_parity_check_catches_a_new_route(app, doc):
    app.add_url_rule("/v1/secret", "secret", lambda: "", methods=["DELETE"])
    assert ("delete", "/v1/secret") in _flask_operations(app) - _document_operations(doc)


# ----- the served document: endpoint names as enums ------------------------------------------


def _schemas(client) -> dict:
    return client.get("/openapi.json").get_json()["components"]["schemas"]


def test_served_document_enumerates_the_configured_endpoints(client):
    schemas = _schemas(client)
    assert schemas["EndpointName"]["enum"] == ["chat", "completions", "embeddings"]
    assert schemas["ChatEndpointName"]["enum"] == ["chat"]
    assert schemas["CompletionsEndpointName"]["enum"] == ["completions"]
    assert schemas["EmbeddingsEndpointName"]["enum"] == ["embeddings"]
    served = client.get("/openapi.json").get_json()
    for path in ("/endpoints/{name}/invocations", "/api/2.0/endpoints/{name}", "/v1/models/{name}"):
        (param,) = served["paths"][path][next(iter(served["paths"][path]))]["parameters"]
        assert param["$ref"] == "#/components/parameters/EndpointName"
    assert served["components"]["parameters"]["EndpointName"]["schema"] == {
        "$ref": "#/components/schemas/EndpointName"
    }
    model = served["components"]["schemas"]["OpenAIChatRequest"]["allOf"][1]["properties"]["model"]
    assert model == {"$ref": "#/components/schemas/ChatEndpointName"}


def test_json_and_yaml_are_the_same_document(client):
    as_json = client.get("/openapi.json")
    as_yaml = client.get("/openapi.yaml")
    assert as_json.mimetype == "application/json" and as_yaml.mimetype == "application/yaml"
    assert yaml.safe_load(as_yaml.get_data(as_text=True)) == as_json.get_json()


def test_served_document_follows_a_hot_reload(make_app, write_config):
    app = make_app()
    client = app.test_client()
    first = client.get("/openapi.json").get_data()
    assert client.get("/openapi.json").get_data() == first
    write_config("""
        endpoints:
          - name: support-bot
            endpoint_type: llm/v1/chat
            model: {provider: echo, name: echo-chat}
          - name: vectors
            endpoint_type: llm/v1/embeddings
            model: {provider: echo, name: echo-embeddings}
    """)
    assert app.extensions["ai_gateway"].check_for_changes()
    schemas = _schemas(client)
    assert schemas["EndpointName"]["enum"] == ["support-bot", "vectors"]
    assert schemas["ChatEndpointName"]["enum"] == ["support-bot"]
    # No completions endpoint left: a plain string, since an empty enum would admit nothing.
    assert "enum" not in schemas["CompletionsEndpointName"]
    # The Try-it-out example names a real endpoint again.
    served = client.get("/openapi.json").get_json()
    media = served["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]
    assert media["example"]["model"] == "support-bot"
    validate_spec(served)


def test_rendering_is_cached_per_table_object(app):
    served = openapi.Served()
    table = app.extensions["ai_gateway"].table
    first = served.render(table)
    assert served.render(table) is first
    assert served.render(dict(table)) is not first  # a new table object (a reload) rebuilds


# ----- responses conform to the document ---------------------------------------------------


def _response_schema(doc: dict, path: str, method: str, status: int, media: str) -> dict:
    responses_ = doc["paths"][path][method]["responses"]
    response = responses_.get(str(status)) or responses_[f"{str(status)[0]}XX"]
    if "$ref" in response:
        response = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response["content"][media]["schema"]


def conforms(doc: dict, path: str, method: str, resp) -> None:
    """The response's status is documented for the operation and its JSON body matches."""
    media = resp.mimetype
    schema = _response_schema(doc, path, method, resp.status_code, media)
    # `$ref`s point into components, so validate inside a root that carries them.
    root = {"components": doc["components"], "allOf": [schema]}
    OAS30Validator(root).validate(resp.get_json())


CHAT = {"messages": [{"role": "user", "content": "Hello there"}]}


@pytest.mark.parametrize("family", ["endpoints", "gateway"])
def test_mlflow_invocation_answers_conform(client, doc, family):
    path = f"/{family}/{{name}}/invocations"
    cases = [
        ("chat", CHAT, 200),
        ("completions", {"prompt": "Say something"}, 200),
        ("embeddings", {"input": ["a", "b"]}, 200),
        ("nope", CHAT, 404),
        ("chat", {"messages": [], "temperature": 5}, 422),
        ("chat", {**CHAT, "model": "gpt-4o"}, 422),
        ("embeddings", CHAT, 422),
    ]
    for name, body, status in cases:
        resp = client.post(f"/{family}/{name}/invocations", json=body)
        assert resp.status_code == status, (name, body, resp.get_json())
        conforms(doc, path, "post", resp)
    resp = client.post(f"/{family}/chat/invocations", data=b"{not json", content_type="application/json")
    assert resp.status_code == 422
    conforms(doc, path, "post", resp)
    stream = client.post(f"/{family}/chat/invocations", json={**CHAT, "stream": True})
    assert stream.mimetype == "text/event-stream"
    event = _response_schema(doc, path, "post", 200, "text/event-stream")
    assert event == {"$ref": "#/components/schemas/StreamEvent"}
    assert stream.get_data(as_text=True).endswith("data: [DONE]\n\n")


def test_openai_answers_conform(client, doc):
    cases = [
        ("/v1/chat/completions", {"model": "chat", **CHAT}, 200),
        ("/v1/completions", {"model": "completions", "prompt": "x"}, 200),
        ("/v1/embeddings", {"model": "embeddings", "input": "x"}, 200),
        ("/v1/chat/completions", {"model": "nope", **CHAT}, 404),
        ("/v1/chat/completions", {"model": "chat", **CHAT, "temperature": 7}, 400),
        ("/v1/chat/completions", {"model": "embeddings", **CHAT}, 400),
        ("/v1/embeddings", {"input": "x"}, 400),
    ]
    for path, body, status in cases:
        resp = client.post(path, json=body)
        assert resp.status_code == status, (path, body, resp.get_json())
        conforms(doc, path, "post", resp)


def test_listings_conform(client, doc):
    for url, path, status in [
        ("/api/2.0/endpoints/", "/api/2.0/endpoints/", 200),
        ("/api/2.0/endpoints", "/api/2.0/endpoints", 200),
        ("/api/2.0/endpoints/?page_token=bogus", "/api/2.0/endpoints/", 422),
        ("/api/2.0/endpoints/chat", "/api/2.0/endpoints/{name}", 200),
        ("/api/2.0/endpoints/nope", "/api/2.0/endpoints/{name}", 404),
        ("/v1/models", "/v1/models", 200),
        ("/v1/models/chat", "/v1/models/{name}", 200),
        ("/v1/models/nope", "/v1/models/{name}", 404),
        ("/health", "/health", 200),
    ]:
        resp = client.get(url)
        assert resp.status_code == status, url
        conforms(doc, path, "get", resp)


def test_paging_hands_out_null_on_the_last_page(make_app, doc):
    client = make_app(AI_GATEWAY_PAGE_SIZE=2).test_client()
    first = client.get("/api/2.0/endpoints/").get_json()
    assert len(first["endpoints"]) == 2 and first["next_page_token"]
    last = client.get("/api/2.0/endpoints/", query_string={"page_token": first["next_page_token"]})
    conforms(doc, "/api/2.0/endpoints/", "get", last)
    assert last.get_json()["next_page_token"] is None
    assert [e["name"] for e in last.get_json()["endpoints"]] == ["embeddings"]


def test_body_too_large_conforms_on_both_families(make_app, doc):
    client = make_app(MAX_CONTENT_LENGTH=256).test_client()
    big = {"messages": [{"role": "user", "content": "x" * 1000}]}
    mlflow = client.post("/endpoints/chat/invocations", json=big)
    assert mlflow.status_code == 413
    conforms(doc, "/endpoints/{name}/invocations", "post", mlflow)
    oai = client.post("/v1/chat/completions", json={"model": "chat", **big})
    assert oai.status_code == 413
    conforms(doc, "/v1/chat/completions", "post", oai)


def test_gateway_rate_limit_body_conforms(app, doc):
    for url, path in [("/endpoints/chat/invocations", "/endpoints/{name}/invocations"),
                      ("/v1/chat/completions", "/v1/chat/completions")]:
        with app.test_request_context(url, method="POST"):
            resp = render(RateLimited("Rate limit exceeded: 1 per 1 minute", headers={"Retry-After": "60"}))
        assert resp.status_code == 429
        conforms(doc, path, "post", resp)
        if path.startswith("/endpoints"):
            assert resp.get_json() == {"error": "Rate limit exceeded: 1 per 1 minute"}


OPENAI_CONFIG = """
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model:
      provider: openai
      name: gpt-4o-mini
      config: {openai_api_key: sk-test, openai_api_base: "http://upstream.invalid/v1"}
"""


@pytest.mark.parametrize(
    "upstream, gateway_status",
    [(400, 400), (401, 401), (429, 429), (500, 502), (503, 503), (504, 504)],
)
def test_upstream_failures_conform_on_both_families(make_app, doc, upstream, gateway_status):
    client = make_app(OPENAI_CONFIG).test_client()
    error = {"error": {"message": "upstream says no", "type": "x", "param": None, "code": None}}
    with responses.RequestsMock() as mock:
        mock.post("http://upstream.invalid/v1/chat/completions", json=error, status=upstream,
                  headers={"Retry-After": "3"} if upstream == 429 else {})
        mlflow = client.post("/endpoints/chat/invocations", json=CHAT)
        oai = client.post("/v1/chat/completions", json={"model": "chat", **CHAT})
    assert mlflow.status_code == gateway_status, mlflow.get_json()
    conforms(doc, "/endpoints/{name}/invocations", "post", mlflow)
    assert oai.status_code == gateway_status, oai.get_json()
    conforms(doc, "/v1/chat/completions", "post", oai)
    assert "sk-test" not in json.dumps(mlflow.get_json()) + json.dumps(oai.get_json())


CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


@pytest.mark.parametrize("message", [
    {"role": "user", "content": "hi"},
    {"role": "system", "content": [{"type": "text", "text": "be brief"}]},
    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]},
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "assistant", "content": "sure"},
    {"role": "tool", "content": "42", "tool_call_id": "call_1"},
    {"role": "user"},
    {"role": "user", "content": None},
    {"role": "user", "content": 5},
    {"role": "user", "content": [{"type": "text"}]},
    {"role": "assistant", "content": None},
    {"role": "assistant", "content": None, "tool_calls": []},
    {"role": "tool", "content": "42"},
    {"role": "robot", "content": "hi"},
])
def test_documented_message_rules_match_the_app(client, doc, message):
    """The document accepts exactly the chat messages that the gateway accepts."""
    root = {"components": doc["components"], "$ref": "#/components/schemas/Message"}
    documented = OAS30Validator(root).is_valid(message)
    resp = client.post("/v1/chat/completions", json={"model": "chat", "messages": [message]})
    assert resp.status_code in (200, 400)
    assert documented == (resp.status_code == 200), resp.get_json()
