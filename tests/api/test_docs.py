"""The documentation routes: / redirects, /docs is Swagger UI with assets served locally."""
from __future__ import annotations

import re


def test_root_redirects_to_the_ui(client):
    resp = client.get("/")
    assert resp.status_code == 302
    assert resp.headers["Location"] in ("docs", "/docs", "http://localhost/docs")
    assert client.get("/", follow_redirects=True).request.path == "/docs"


def test_ui_page_loads_only_local_assets(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", html), "no asset may come from elsewhere"
    assert 'url: "openapi.json"' in html
    assert "validatorUrl: null" in html  # no document sent to an online validator
    assets = re.findall(r"(?:src|href)=\"(docs/assets/[^\"]+)\"", html)
    assert len(assets) == 4
    for asset in assets:
        resp = client.get("/" + asset)
        assert resp.status_code == 200, asset
        assert len(resp.get_data()) > 100
    assert client.get("/docs/assets/swagger-ui-bundle.js").mimetype in (
        "text/javascript", "application/javascript"
    )


def test_unknown_asset_is_a_json_404(client):
    for name in ("nope.js", "../../setup.cfg", "swagger-ui-bundle.js.map", "index.html"):
        resp = client.get("/docs/assets/" + name)
        assert resp.status_code == 404, name
        assert "detail" in resp.get_json()
