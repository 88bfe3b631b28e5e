"""MLflow Model Serving provider: /invocations bodies, accepted prediction shapes, errors."""
from __future__ import annotations

import pytest
import responses

from app import config as config_mod
from app.errors import ConfigError, InvalidRequest, UpstreamError
from app.providers import mlflow_serving as mlf
from tests.providers.util import data, data_json, example_endpoints, gateway_reply, sent

SERVER = "http://scoring.test:5001"
YAML = f"""
endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model: {{provider: mlflow-model-serving, name: qa-model, config: {{model_server_url: "{SERVER}"}}}}
  - name: text
    endpoint_type: llm/v1/completions
    model: {{provider: mlflow-model-serving, name: text-model, config: {{model_server_url: "{SERVER}/"}}}}
  - name: embed
    endpoint_type: llm/v1/embeddings
    model: {{provider: mlflow-model-serving, name: st-model, config: {{model_server_url: "{SERVER}"}}}}
"""


@pytest.mark.parametrize("request_, body", [
    ({"prompt": "Hi"}, {"inputs": ["Hi"]}),
    ({"prompt": ["a", "b"], "temperature": 0.5, "max_tokens": 64},
     {"inputs": ["a", "b"], "params": {"temperature": 0.5, "max_tokens": 64}}),
    ({"prompt": "a", "max_completion_tokens": 8, "top_k": 3, "n": 1},
     {"inputs": ["a"], "params": {"max_tokens": 8, "top_k": 3}}),
])
def test_completions_to_upstream(request_, body):
    assert mlf.completions_to_upstream(request_) == body


@pytest.mark.parametrize("request_, body", [
    ({"messages": [{"role": "user", "content": "Capital?"}]}, {"inputs": ["Capital?"]}),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "Capital?"}]}], "temperature": 0},
     {"inputs": ["Capital?"], "params": {"temperature": 0}}),
])
def test_chat_to_upstream(request_, body):
    assert mlf.chat_to_upstream(request_) == body


@pytest.mark.parametrize("request_, param", [
    ({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}, "messages"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                   {"role": "user", "content": "c"}]}, "messages"),
    ({"messages": [{"role": "assistant", "content": "a"}]}, "messages"),
    ({"messages": [{"role": "user", "content": "a"}], "n": 2}, "n"),
    ({"messages": [{"role": "user", "content": "a"}], "tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
])
def test_chat_rejects(request_, param):
    with pytest.raises(InvalidRequest) as info:
        mlf.chat_to_upstream(request_)
    assert info.value.param == param and "MLflow Model Serving" in info.value.message


@pytest.mark.parametrize("file, count, texts", [
    ("mlflow/predictions_list.json", 2, ["Paris.", "Berlin."]),
    ("mlflow/predictions_choices.json", 1, ["Paris."]),
    ("mlflow/predictions_single_key.json", 1, ["Paris."]),
])
def test_text_shapes(file, count, texts):
    assert mlf.texts_from_upstream(data_json(file), count) == texts


@pytest.mark.parametrize("reply, count", [
    ({"outputs": ["a"]}, 1), ({"predictions": ["a"]}, 2), ({"predictions": {"a": ["x"], "b": ["y"]}}, 1),
    ({"predictions": [{"generated": "x"}]}, 1), ({"predictions": "x"}, 1), (["x"], 1),
])
def test_text_shapes_rejected(reply, count):
    with pytest.raises(UpstreamError) as info:
        mlf.texts_from_upstream(reply, count)
    assert info.value.status == 502


@pytest.mark.parametrize("reply, count, vectors", [
    (data_json("mlflow/embeddings.json"), 2, [[0.1, -0.2, 0.3], [0.4, 0.5, -0.6]]),
    (data_json("mlflow/embeddings_flat.json"), 1, [[0.1, -0.2, 0.3]]),
])
def test_vectors(reply, count, vectors):
    assert mlf.vectors_from_upstream(reply, count) == vectors


@pytest.mark.parametrize("reply, count", [
    ({"predictions": [[0.1], [0.2]]}, 1), ({"predictions": [["a"]]}, 1), ({"predictions": []}, 1), ({}, 1),
    ({"predictions": [0.1, 0.2]}, 2),
])
def test_vectors_rejected(reply, count):
    with pytest.raises(UpstreamError):
        mlf.vectors_from_upstream(reply, count)


@responses.activate
def test_completions_through_flask(make_app):
    responses.post(f"{SERVER}/invocations", body=data("mlflow/predictions_list.json"), content_type="application/json")
    resp = make_app(YAML).test_client().post("/v1/completions", json={
        "model": "text", "prompt": ["France?", "Germany?"], "temperature": 0.5, "max_tokens": 64})
    assert resp.status_code == 200, resp.json
    call, body = sent()
    assert call.request.url == f"{SERVER}/invocations"
    assert call.request.headers["Content-Type"] == "application/json" and "Authorization" not in call.request.headers
    assert body == {"inputs": ["France?", "Germany?"], "params": {"temperature": 0.5, "max_tokens": 64}}
    assert [(c["text"], c["finish_reason"]) for c in resp.json["choices"]] == [("Paris.", None), ("Berlin.", None)]
    assert resp.json["usage"] is None


@responses.activate
def test_chat_through_flask(make_app):
    responses.post(f"{SERVER}/invocations", body=data("mlflow/predictions_choices.json"), content_type="application/json")
    client = make_app(YAML).test_client()
    resp = client.post("/gateway/chat/invocations", json={"messages": [{"role": "user", "content": "Capital?"}]})
    assert resp.status_code == 200, resp.json
    assert sent()[1] == {"inputs": ["Capital?"]}
    assert resp.json["choices"][0]["message"] == {"role": "assistant", "content": "Paris."}
    resp = client.post("/gateway/chat/invocations", json={"messages": [
        {"role": "system", "content": "s"}, {"role": "user", "content": "u"}]})
    assert resp.status_code == 422 and "exactly one user message" in resp.json["detail"]


@responses.activate
def test_embeddings_through_flask(make_app):
    responses.post(f"{SERVER}/invocations", body=data("mlflow/embeddings.json"), content_type="application/json")
    resp = make_app(YAML).test_client().post("/v1/embeddings", json={"model": "embed", "input": ["a", "b"]})
    assert resp.status_code == 200, resp.json
    assert sent()[1] == {"inputs": ["a", "b"]}
    assert len(resp.json["data"]) == 2 and resp.json["usage"] is None


@pytest.mark.parametrize("status, body, expected, fragment", [
    (400, data("mlflow/error_400.json"), 400, "exactly one of the input fields"),
    (500, b'{"error_code":"INTERNAL_ERROR","message":"predict failed"}', 502, "predict failed"),
    (200, b'{"result": ["x"]}', 502, "no 'predictions' key"),
    (200, b"<html>not json</html>", 502, "not JSON"),
])
@responses.activate
def test_errors(make_app, status, body, expected, fragment):
    resp = gateway_reply(make_app, YAML, "/v1/completions", {"model": "text", "prompt": "x"},
                         url=f"{SERVER}/invocations", status=status, body=body)
    assert resp.status_code == expected
    assert fragment in resp.json["error"]["message"]


def test_stream_rejected(make_app):
    resp = make_app(YAML).test_client().post("/v1/completions", json={"model": "text", "prompt": "x", "stream": True})
    assert resp.status_code == 400 and resp.json["error"]["param"] == "stream"


def test_config_requires_url():
    with pytest.raises(ConfigError, match="model_server_url"):
        config_mod.parse("""
endpoints:
  - name: e
    endpoint_type: llm/v1/completions
    model: {provider: mlflow-model-serving, name: m, config: {}}
""")


def test_example_config_loads():
    endpoints = example_endpoints("mlflow-model-serving.yaml")
    assert endpoints and {e.provider for e in endpoints} == {"mlflow-model-serving"}


# ----- live: a real MLflow scoring server (pyfunc model served by mlflow's own app) ----------

SCORING_SERVER = r'''
import sys
import mlflow.pyfunc
import uvicorn
from mlflow.models import infer_signature
from mlflow.pyfunc import scoring_server


class Shout(mlflow.pyfunc.PythonModel):
    """Upper-cases each input and appends max_tokens exclamation marks (so params are visible)."""

    def predict(self, context, model_input, params=None):
        values = model_input if isinstance(model_input, list) else list(model_input.iloc[:, 0])
        return [str(v).upper() + "!" * int((params or {}).get("max_tokens", 1)) for v in values]


path, port = sys.argv[1], int(sys.argv[2])
signature = infer_signature(["a"], ["A"], params={"max_tokens": 1, "temperature": 0.5})
mlflow.pyfunc.save_model(path, python_model=Shout(), signature=signature)
uvicorn.run(scoring_server.init(mlflow.pyfunc.load_model(path)), host="127.0.0.1", port=port, log_level="warning")
'''


@pytest.fixture(scope="module")
def scoring_server(tmp_path_factory):
    import importlib.util
    import os
    import subprocess
    import sys
    import time

    import requests as http

    from tests.live import free_port

    missing = [m for m in ("pandas", "uvicorn", "fastapi") if importlib.util.find_spec(m) is None]
    if missing and not os.environ.get("CI"):
        pytest.skip(f"the MLflow scoring server needs {', '.join(missing)} (pip install -e .[test])")
    port = free_port()
    workdir = tmp_path_factory.mktemp("mlflow")
    log = open(workdir / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-c", SCORING_SERVER, str(workdir / "model"), str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MLFLOW_TRACKING_URI": str(workdir)})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, (workdir / "server.log").read_text()
            try:
                if http.get(f"{url}/ping", timeout=1).status_code == 200:
                    break
            except http.RequestException:
                time.sleep(0.2)
        else:
            pytest.fail("the MLflow scoring server did not start:\n" + (workdir / "server.log").read_text())
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def test_live_against_real_mlflow_scoring_server(scoring_server, make_app):
    app = make_app(f"""
endpoints:
  - name: text
    endpoint_type: llm/v1/completions
    model: {{provider: mlflow-model-serving, name: shout, config: {{model_server_url: "{scoring_server}"}}}}
  - name: chat
    endpoint_type: llm/v1/chat
    model: {{provider: mlflow-model-serving, name: shout, config: {{model_server_url: "{scoring_server}"}}}}
""")
    client = app.test_client()
    resp = client.post("/v1/completions", json={"model": "text", "prompt": ["paris", "berlin"], "max_tokens": 2,
                                                "temperature": 0.1})
    assert resp.status_code == 200, resp.json
    assert [c["text"] for c in resp.json["choices"]] == ["PARIS!!", "BERLIN!!"]
    resp = client.post("/gateway/chat/invocations", json={"messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 200, resp.json
    assert resp.json["choices"][0]["message"]["content"] == "HI!"
