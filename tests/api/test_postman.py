"""docs/postman_collection.json is what scripts/make_postman.py makes, and its requests work."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = ROOT / "docs" / "postman_collection.json"


def _script():
    spec = importlib.util.spec_from_file_location("make_postman", ROOT / "scripts" / "make_postman.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_collection_is_up_to_date():
    fresh = _script().render()
    assert COLLECTION.read_text(encoding="utf-8") == fresh, (
        "docs/postman_collection.json is stale: run python scripts/make_postman.py"
    )


def test_script_writes_where_told(tmp_path):
    out = tmp_path / "collection.json"
    assert _script().main(["--output", str(out)]) == 0
    assert json.loads(out.read_text()) == json.loads(COLLECTION.read_text())


def _requests(items: list[dict]):
    for item in items:
        if "item" in item:
            yield from _requests(item["item"])
        else:
            yield item


def test_collection_is_v2_1_and_covers_every_operation():
    collection = json.loads(COLLECTION.read_text())
    assert collection["info"]["schema"].endswith("/v2.1.0/collection.json")
    assert collection["variable"][0]["key"] == "baseUrl"
    seen = {(r["request"]["method"], r["request"]["url"]["raw"]) for r in _requests(collection["item"])}
    doc = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    for path, item in doc["paths"].items():
        for method in item:
            raw = "{{baseUrl}}" + re.sub(r"\{([^}]+)\}", r":\1", path)
            assert (method.upper(), raw) in seen, (method, path)


def test_every_request_in_the_collection_succeeds(client):
    collection = json.loads(COLLECTION.read_text())
    for item in _requests(collection["item"]):
        request = item["request"]
        url = request["url"]["raw"].replace("{{baseUrl}}", "")
        for variable in request["url"].get("variable", []):
            url = url.replace(":" + variable["key"], variable["value"])
        body = request.get("body", {}).get("raw")
        resp = client.open(
            url or "/", method=request["method"], data=body,
            headers={h["key"]: h["value"] for h in request["header"]},
        )
        assert resp.status_code in (200, 302), (item["name"], url, resp.get_data(as_text=True)[:300])
