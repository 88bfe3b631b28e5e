"""The API's own documentation: GET /openapi.yaml|json, Swagger UI at /docs, / redirects there."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, redirect, send_from_directory
from swagger_ui_bundle import swagger_ui_path  # ships Swagger UI's dist files: nothing from a CDN

from app.api.dispatch import gateway
from app.errors import NotFound
from app.openapi import Served

bp = Blueprint("docs", __name__)

# Only the files the page loads; the package's source maps and sample pages are not served.
ASSETS = {
    "swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
    "favicon-16x16.png", "favicon-32x32.png",
}

# Relative URLs, so the page also works behind a proxy that mounts the gateway under a prefix.
# validatorUrl null: otherwise Swagger UI sends the document to an online validator.
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>ai-gateway API</title>
  <link rel="stylesheet" href="docs/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png" sizes="32x32">
  <style>body { margin: 0; }</style>
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/assets/swagger-ui-bundle.js"></script>
  <script src="docs/assets/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: "StandaloneLayout"
    });
  </script>
</body>
</html>
"""


def _served() -> Served:
    return current_app.extensions.setdefault("ai_gateway_openapi", Served())


@bp.get("/")
def root() -> Response:
    return redirect("docs", code=302)


@bp.get("/docs")
def swagger_ui() -> Response:
    return Response(PAGE, mimetype="text/html")


@bp.get("/docs/assets/<path:filename>")
def asset(filename: str) -> Response:
    if filename not in ASSETS:
        raise NotFound(f"No documentation asset {filename!r}.")
    return send_from_directory(swagger_ui_path, filename, max_age=3600)


@bp.get("/openapi.yaml")
def openapi_yaml() -> Response:
    text, _ = _served().render(gateway().table)
    return Response(text, mimetype="application/yaml")


@bp.get("/openapi.json")
def openapi_json() -> Response:
    _, text = _served().render(gateway().table)
    return Response(text, mimetype="application/json")
