"""Config loading: every rule is checked at load, with messages naming file, endpoint and field."""
from __future__ import annotations

import pytest

from app import config, registry
from app.providers.base import BaseProvider
from app.errors import ConfigError


def problems(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        config.parse(text, "gw.yaml")
    return "\n".join(info.value.problems)


def endpoint(**overrides) -> str:
    fields = {
        "name": "chat",
        "endpoint_type": "llm/v1/chat",
        "model": "{provider: openai, name: gpt-4o-mini, config: {openai_api_key: sk-test}}",
    }
    fields.update(overrides)
    body = "\n".join(f"    {k}: {v}" for k, v in fields.items() if v is not None)
    return "endpoints:\n  - " + body.strip() + "\n"


def test_mlflow_file_loads_unchanged():
    text = """
endpoints:
  - name: completions
    endpoint_type: llm/v1/completions
    model:
      provider: openai
      name: gpt-4o-mini
      config:
        openai_api_key: sk-test
    limit:
      renewal_period: minute
      calls: 10
"""
    [ep] = config.parse(text)
    assert ep.public() == {
        "name": "completions",
        "endpoint_type": "llm/v1/completions",
        "model": {"name": "gpt-4o-mini", "provider": "openai"},
        "endpoint_url": "/gateway/completions/invocations",
        "limit": {"calls": 10, "key": None, "renewal_period": "minute"},
    }
    assert "sk-test" not in repr(ep)


def test_legacy_routes_key_is_accepted():
    [ep] = config.parse("routes:\n  - {name: a, route_type: llm/v1/chat, model: {provider: echo, name: e}}\n")
    assert ep.endpoint_type == "llm/v1/chat"


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"name": "'bad name'"}, "endpoint 'bad name': name: must match"),
        ({"endpoint_type": "llm/v1/chatt"}, "endpoint 'chat': endpoint_type: must be one of"),
        ({"model": "{provider: nope, name: x}"}, "model.provider: unknown provider 'nope'"),
        ({"model": "{provider: openai, name: x, config: {}}"}, "model.config.openai_api_key: Missing data"),
        ({"model": "{provider: openai, name: x, config: {openai_api_key: k, extra: 1}}"}, "model.config.extra: unknown key"),
        ({"model": "{provider: openai, config: {openai_api_key: k}}"}, "model.name: must be a non-empty string"),
        ({"model": "{provider: echo, name: x, color: red}"}, "model: unknown keys ['color']"),
        ({"limit": "{calls: 0, renewal_period: minute}"}, "limit.calls: must be a whole number"),
        ({"limit": "{calls: 5, renewal_period: fortnight}"}, "limit.renewal_period: must be second"),
        ({"limit": "{calls: 5, renewal_period: minute, key: cookie}"}, "limit.key: must be 'ip'"),
        ({"timeout": "-1"}, "timeout: must be seconds"),
        ({"colour": "blue"}, "endpoint 'chat': unknown keys ['colour']"),
    ],
)
def test_each_rule_names_file_endpoint_and_field(overrides, expected):
    message = problems(endpoint(**overrides))
    assert message.startswith("gw.yaml: ")
    assert expected in message


def test_limit_forms_with_counts_are_accepted():
    [ep] = config.parse(endpoint(limit="{calls: 5, renewal_period: 10 minutes, key: 'header:X-User'}"))
    assert ep.limit == config.Limit(5, "10 minutes", "header:X-User")


def test_duplicate_names_are_rejected():
    text = endpoint() + endpoint().replace("endpoints:\n", "")
    assert "endpoint 'chat': name: duplicate endpoint name" in problems(text)


def test_all_problems_are_reported_at_once():
    text = endpoint(name="'a b'") + endpoint(endpoint_type="x").replace("endpoints:\n", "")
    message = problems(text)
    assert "name: must match" in message and "endpoint_type: must be one of" in message


def test_unquoted_yaml_date_gets_a_hint():
    model = ("{provider: openai, name: x, config: {openai_api_key: k, openai_api_type: azure, "
             "openai_api_base: 'https://r.openai.azure.com', openai_deployment_name: d, "
             "openai_api_version: 2024-10-21}}")
    message = problems(endpoint(model=model))
    assert "model.config.openai_api_version: YAML read 2024-10-21 as a date" in message
    assert "'2024-10-21'" in message


def test_azure_requires_its_settings():
    message = problems(endpoint(model="{provider: openai, name: x, config: {openai_api_key: k, openai_api_type: azure}}"))
    for key in ("openai_api_base", "openai_api_version", "openai_deployment_name"):
        assert f"model.config.{key}: Required when openai_api_type is azure" in message


def test_invalid_yaml_and_shapes():
    assert "not valid YAML at line" in problems("endpoints: [\n")
    assert "must be a mapping" in problems("- a\n- b\n")
    assert "endpoints: must be a list" in problems("endpoints: 3\n")
    assert "unknown top-level keys ['extra']" in problems("endpoints: []\nextra: 1\n")


class TestSecrets:
    def test_env_var(self, monkeypatch):
        monkeypatch.setenv("GW_TEST_KEY", "sk-from-env")
        [ep] = config.parse(endpoint(model="{provider: openai, name: x, config: {openai_api_key: $GW_TEST_KEY}}"))
        assert ep.config["openai_api_key"] == "sk-from-env"

    def test_braced_env_var(self, monkeypatch):
        monkeypatch.setenv("GW_TEST_KEY", "sk-braced")
        [ep] = config.parse(endpoint(model="{provider: openai, name: x, config: {openai_api_key: '${GW_TEST_KEY}'}}"))
        assert ep.config["openai_api_key"] == "sk-braced"

    def test_unset_env_var_is_a_load_error(self, monkeypatch):
        monkeypatch.delenv("GW_UNSET_KEY", raising=False)
        message = problems(endpoint(model="{provider: openai, name: x, config: {openai_api_key: $GW_UNSET_KEY}}"))
        assert "model.config.openai_api_key: Environment variable GW_UNSET_KEY is not set." in message

    def test_file_path_is_read_and_stripped(self, tmp_path):
        key_file = tmp_path / "key"
        key_file.write_text("  sk-from-file\n")
        [ep] = config.parse(endpoint(model=f"{{provider: openai, name: x, config: {{openai_api_key: '{key_file}'}}}}"))
        assert ep.config["openai_api_key"] == "sk-from-file"

    def test_literal(self):
        [ep] = config.parse(endpoint())
        assert ep.config["openai_api_key"] == "sk-test"

    def test_errors_never_show_the_secret(self, monkeypatch):
        monkeypatch.setenv("GW_TEST_KEY", "sk-very-secret")
        message = problems(endpoint(model="{provider: openai, name: x, config: {openai_api_key: $GW_TEST_KEY, bogus: 1}}"))
        assert "sk-very-secret" not in message


def test_load_reports_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config file"):
        config.load(str(tmp_path / "missing.yaml"))


class ChatOnly(BaseProvider):
    """A provider that only chats, to show capability checks happen at load."""

    name = "chatonly"

    def chat(self, request: dict) -> dict:
        raise AssertionError("not called")


def test_unsupported_endpoint_type_is_caught_at_load(monkeypatch):
    monkeypatch.setitem(registry.BUILTINS, "chatonly", "tests.test_config:ChatOnly")
    registry.get.cache_clear()
    try:
        message = problems(endpoint(endpoint_type="llm/v1/embeddings", model="{provider: chatonly, name: m}"))
    finally:
        registry.get.cache_clear()
    assert ("endpoint 'chat': endpoint_type: the chatonly provider does not support llm/v1/embeddings "
            "(it supports llm/v1/chat)") in message
