"""Provider registry: built-ins, entry-point plugins (a real installed example), clash handling."""
from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import responses

from app import config as config_mod
from app import registry
from app.errors import ConfigError
from app.providers.base import BaseProvider
from tests.providers.util import sse_events

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "ai-gateway-plugin-example"
PLUGIN = "openai-compatible-example"
UPSTREAM = "http://compat.test:8000/v1"
PLUGIN_YAML = f"""
endpoints:
  - name: local-chat
    endpoint_type: llm/v1/chat
    model:
      provider: {PLUGIN}
      name: llama-3.1-8b-instruct
      config: {{api_base: "{UPSTREAM}", api_key: plugin-key-42}}
"""


def fake_distribution(site: Path, dist: str, entry_points: dict[str, str]) -> None:
    """An installed distribution as importlib.metadata sees it: a dist-info with entry points."""
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\n{lines}")


class OnPath:
    """Put a site directory on sys.path (and take it off again), resetting the registry."""

    def __init__(self, site: Path) -> None:
        self.site = str(site)

    def __enter__(self) -> "OnPath":
        sys.path.insert(0, self.site)
        importlib.invalidate_caches()
        registry.reset()
        return self

    def __exit__(self, *exc: object) -> None:
        sys.path.remove(self.site)
        for name in [m for m in sys.modules if m.startswith("ai_gateway_plugin_example")]:
            del sys.modules[name]
        importlib.invalidate_caches()
        registry.reset()


def run_cli(*args: str, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The example plugin, pip-installed (offline, no deps) into a private target directory."""
    work = tmp_path_factory.mktemp("plugin")
    source = work / "src"
    shutil.copytree(EXAMPLE, source)  # pip builds in-tree; keep build files out of the repo
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(work / "site"), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return work / "site"


def test_builtins_load_and_are_providers():
    for name in registry.BUILTINS:
        cls = registry.get(name)
        assert issubclass(cls, BaseProvider) and cls.name == name
    assert registry.get("no-such-provider") is None


def test_installed_plugin_is_found(plugin_site):
    with OnPath(plugin_site):
        assert PLUGIN in registry.names()
        cls = registry.get(PLUGIN)
        assert cls.__module__ == "ai_gateway_plugin_example.provider" and cls.name == PLUGIN
        assert cls.supported_types() == {"llm/v1/chat"}
    assert registry.get(PLUGIN) is None  # gone with its directory


@responses.activate
def test_installed_plugin_serves_requests(plugin_site, make_app):
    responses.post(f"{UPSTREAM}/chat/completions", json={
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "served-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}})
    with OnPath(plugin_site):
        client = make_app(PLUGIN_YAML).test_client()
        resp = client.post("/v1/chat/completions", json={
            "model": "local-chat", "messages": [{"role": "user", "content": "Capital of France?"}], "temperature": 0})
        assert resp.status_code == 200, resp.json
        assert resp.json["choices"][0]["message"]["content"] == "Paris."
        assert resp.json["model"] == "llama-3.1-8b-instruct"
        request = responses.calls[0].request
        assert request.headers["Authorization"] == "Bearer plugin-key-42"
        assert json.loads(request.body) == {"messages": [{"role": "user", "content": "Capital of France?"}],
                                            "temperature": 0.0, "model": "llama-3.1-8b-instruct"}
        resp = client.post("/v1/chat/completions", json={
            "model": "local-chat", "messages": [{"role": "user", "content": "x"}], "tools": [
                {"type": "function", "function": {"name": "f"}}]})
        assert resp.status_code == 400 and resp.json["error"]["param"] == "tools"
        assert "plugin-key-42" not in resp.get_data(as_text=True)


@responses.activate
def test_installed_plugin_streams(plugin_site, make_app):
    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
    responses.post(f"{UPSTREAM}/chat/completions", content_type="text/event-stream",
                   body=f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n")
    with OnPath(plugin_site):
        resp = make_app(PLUGIN_YAML).test_client().post("/v1/chat/completions", json={
            "model": "local-chat", "messages": [{"role": "user", "content": "x"}], "stream": True})
        events = sse_events(resp.data)
        assert events[0]["choices"][0]["delta"] == {"content": "Hi"} and events[-1] == "[DONE]"


def test_validate_cli_sees_installed_plugin(plugin_site, write_config):
    path = write_config(PLUGIN_YAML)
    proc = run_cli("validate", "--config-path", str(path), site=plugin_site)
    assert proc.returncode == 0, proc.stderr
    assert "OK, 1 endpoint(s): local-chat" in proc.stdout


@pytest.mark.parametrize("dists, fragment", [
    ({"evil-openai": {"openai": "evil_mod:Provider"}},
     "uses the name 'openai', which a built-in provider already has"),
    ({"plugin-a": {"dup": "mod_a:Provider"}, "plugin-b": {"dup": "mod_b:Provider"}},
     "Two provider plugins use the name 'dup'"),
])
def test_clash_stops_validate_and_start(tmp_path, write_config, dists, fragment):
    site = tmp_path / "site"
    for dist, eps in dists.items():
        fake_distribution(site, dist, eps)
    # The YAML uses only the echo built-in: the clash must still stop the gateway.
    path = write_config("endpoints:\n  - {name: chat, endpoint_type: llm/v1/chat, model: {provider: echo, name: e}}\n")
    for command in (["validate"], ["start", "--port", "1"]):
        proc = run_cli(*command, "--config-path", str(path), site=site)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert fragment in proc.stderr
        assert "provider plugins:" in proc.stderr and "Traceback" not in proc.stderr


def test_clash_is_a_config_error_in_process(tmp_path):
    site = tmp_path / "site"
    fake_distribution(site, "evil-echo", {"echo": "evil:Provider"})
    with OnPath(site):
        with pytest.raises(ConfigError) as info:
            config_mod.parse("endpoints: []")
    assert "'echo'" in str(info.value) and "evil-echo 1.0" in str(info.value)


def test_same_distribution_twice_on_path_is_not_a_clash(tmp_path):
    fake_distribution(tmp_path / "one", "twice", {"twice-provider": "twice_mod:Provider"})
    shutil.copytree(tmp_path / "one", tmp_path / "two")
    with OnPath(tmp_path / "one"), OnPath(tmp_path / "two"):
        assert "twice-provider" in registry.names()


@pytest.mark.parametrize("target, fragment", [
    ("no_such_module_xyz:Provider", "failed to load"),
    ("json:dumps", "does not point at a BaseProvider subclass"),
])
def test_broken_plugins_are_config_errors(tmp_path, target, fragment):
    fake_distribution(tmp_path / "site", "broken", {"broken": target})
    text = "endpoints:\n  - {name: e, endpoint_type: llm/v1/chat, model: {provider: broken, name: m}}\n"
    with OnPath(tmp_path / "site"):
        with pytest.raises(ConfigError) as info:
            config_mod.parse(text)
    assert fragment in str(info.value) and "model.provider" in str(info.value)


def test_unknown_provider_lists_known_names():
    with pytest.raises(ConfigError) as info:
        config_mod.parse("endpoints:\n  - {name: e, endpoint_type: llm/v1/chat, model: {provider: nope, name: m}}\n")
    assert "unknown provider 'nope'" in str(info.value) and "mlflow-model-serving" in str(info.value)


def test_mlflow_alias_names_the_same_builtin():
    assert registry.get("amazon-bedrock") is registry.get("bedrock")
    assert "amazon-bedrock" in registry.names()
