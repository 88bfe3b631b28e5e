#!/usr/bin/env python
"""Generate docs/postman_collection.json (Postman v2.1) from docs/openapi.yaml."""
from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "docs" / "openapi.yaml"
OUTPUT = ROOT / "docs" / "postman_collection.json"
SCHEMA_URL = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
METHODS = ("get", "put", "post", "delete", "patch")
DEFAULT_ENDPOINT = "chat"  # an endpoint of config/default.yaml


def _resolve(doc: dict, node: dict) -> dict:
    """Follow a local `$ref` (one level is all the document uses for these objects)."""
    ref = node.get("$ref")
    if not ref:
        return node
    target: Any = doc
    for part in ref.lstrip("#/").split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return target


def _url(path: str, params: list[dict], endpoint: str) -> dict:
    """Postman's URL object: `{name}` path parameters become `:name` variables."""
    segments = [s for s in path.split("/") if s]
    pm_path = [":" + s[1:-1] if s.startswith("{") and s.endswith("}") else s for s in segments]
    raw = "{{baseUrl}}/" + "/".join(pm_path) + ("/" if path.endswith("/") and segments else "")
    url: dict[str, Any] = {"raw": raw, "host": ["{{baseUrl}}"], "path": pm_path}
    if path.endswith("/") and segments:
        url["path"] = pm_path + [""]
    variables = [
        {"key": p["name"], "value": endpoint, "description": p.get("description", "")}
        for p in params if p["in"] == "path"
    ]
    queries = [
        {"key": p["name"], "value": "", "description": p.get("description", ""), "disabled": True}
        for p in params if p["in"] == "query"
    ]
    if variables:
        url["variable"] = variables
    if queries:
        url["query"] = queries
    return url


def _request(method: str, path: str, params: list[dict], endpoint: str, body: Any) -> dict:
    request: dict[str, Any] = {"method": method.upper(), "header": [], "url": _url(path, params, endpoint)}
    if body is not None:
        request["header"] = [{"key": "Content-Type", "value": "application/json"}]
        request["body"] = {
            "mode": "raw",
            "raw": json.dumps(body, indent=2, ensure_ascii=False),
            "options": {"raw": {"language": "json"}},
        }
    return request


def _items(doc: dict, path: str, method: str, operation: dict) -> list[dict]:
    """One Postman request per operation, or one per named request example."""
    params = [_resolve(doc, p) for p in operation.get("parameters", [])]
    name = operation.get("summary") or operation["operationId"]
    description = operation.get("description", "")
    body_spec = _resolve(doc, operation["requestBody"]) if "requestBody" in operation else None
    media = (body_spec or {}).get("content", {}).get("application/json", {})
    if "examples" in media:
        # The invocation examples are named after the default config's endpoints of that type.
        return [
            {
                "name": f"{name}: {key}",
                "request": {
                    **_request(method, path, params, key, example["value"]),
                    "description": example.get("summary", description),
                },
            }
            for key, example in media["examples"].items()
        ]
    request = _request(method, path, params, DEFAULT_ENDPOINT, media.get("example") if media else None)
    return [{"name": name, "request": {**request, "description": description}}]


def build(doc: dict) -> dict:
    """The collection: one folder per tag, in the document's order."""
    folders: dict[str, list[dict]] = {t["name"]: [] for t in doc.get("tags", [])}
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                operation = item[method]
                tag = (operation.get("tags") or ["Other"])[0]
                folders.setdefault(tag, []).extend(_items(doc, path, method, operation))
    descriptions = {t["name"]: t.get("description", "") for t in doc.get("tags", [])}
    title = doc["info"]["title"]
    return {
        "info": {
            # Stable id, so that regenerating an unchanged document gives the same file.
            "_postman_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"ai-gateway:{title}")),
            "name": title,
            "description": doc["info"].get("description", ""),
            "schema": SCHEMA_URL,
        },
        "item": [
            {"name": tag, "description": descriptions.get(tag, ""), "item": items}
            for tag, items in folders.items() if items
        ],
        "variable": [{"key": "baseUrl", "value": "http://localhost:5000", "type": "string"}],
    }


def render(spec_path: Path = SPEC) -> str:
    with open(spec_path, encoding="utf-8") as handle:
        doc = yaml.safe_load(handle)
    return json.dumps(build(doc), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", type=Path, default=SPEC)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    args.output.write_text(render(args.spec), encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
