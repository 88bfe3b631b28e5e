"""Validate request bodies we send upstream against the providers' official OpenAPI documents."""
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml


def _find_specs() -> Path:
    """shared/upstream-specs beside the checkout (CI clones main with shared/ next to it)."""
    if os.environ.get("AI_GATEWAY_SPEC_DIR"):
        return Path(os.environ["AI_GATEWAY_SPEC_DIR"])
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "upstream-specs"
        if candidate.is_dir():
            return candidate
    return Path("shared/upstream-specs")


SPEC_DIR = _find_specs()


@lru_cache(maxsize=None)
def load_spec(name: str) -> dict:
    path = SPEC_DIR / name
    if not path.exists():
        if os.environ.get("CI"):  # CI clones main with shared/ beside it: a missing spec is a fault
            pytest.fail(f"upstream spec {path} is not available (set AI_GATEWAY_SPEC_DIR)")
        pytest.skip(f"upstream spec {path} is not available")
    with open(path, encoding="utf-8") as handle:
        if name.endswith(".json"):
            return json.load(handle)
        return yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@lru_cache(maxsize=None)
def _validator(name: str, path: str, method: str, content_type: str) -> jsonschema.Validator:
    spec = load_spec(name)
    operation = spec["paths"][path][method]
    assert "requestBody" in operation, f"{name} {method.upper()} {path} takes no body"
    ref = _pointer("paths", path, method, "requestBody", "content", content_type, "schema")
    body = operation["requestBody"]
    if "$ref" in body:  # a shared requestBody component
        ref = body["$ref"] + "/" + "/".join(
            ["content", content_type.replace("/", "~1"), "schema"]
        )
    root = {**spec, "$ref": ref}
    # OpenAPI 3.0 schemas use draft-4 style keywords (boolean exclusiveMinimum); 3.1 is 2020-12.
    cls = jsonschema.Draft202012Validator if spec["openapi"].startswith("3.1") else jsonschema.Draft4Validator
    return cls(root)


def validate_request(spec: str, path: str, body: Any, method: str = "post",
                     content_type: str = "application/json") -> None:
    """Fail the test with the spec's complaint when `body` is not what the real API accepts."""
    errors = sorted(_validator(spec, path, method, content_type).iter_errors(body), key=str)
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        pytest.fail(
            f"body rejected by {spec} {method.upper()} {path}: {best.message} at "
            f"{'/'.join(map(str, best.absolute_path)) or '<root>'}\nbody: {json.dumps(body)[:2000]}"
        )
