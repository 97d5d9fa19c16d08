"""/openapi.json serves the committed document; /docs is a page of our own that needs nothing
from another origin (it must work offline)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from schemas import urls
from service.http import openapi
from service.http.endpoints.docs import add_docs_routes


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    app = web.Application()
    add_docs_routes(app)
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_openapi_json_is_the_committed_document(client: TestClient[Any, Any]) -> None:
    resp = await client.get(urls.OPENAPI)
    assert resp.status == 200
    assert resp.content_type == "application/json"
    body = await resp.read()
    assert body == openapi.OUTPUT.read_bytes()
    assert json.loads(body) == openapi.build()


async def test_docs_page_and_everything_it_loads_come_from_this_server(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.get(urls.DOCS)
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    page = await resp.text()
    loaded = re.findall(r'(?:src|href)="([^"#]+)"', page)
    assert set(loaded) >= {urls.DOCS_SCRIPT, urls.DOCS_STYLE, urls.OPENAPI}
    texts = [page]
    for path in loaded:
        assert path.startswith("/"), f"{path}: the page must not load from another origin"
        sub = await client.get(path)
        assert sub.status == 200, path
        texts.append(await sub.text())
    script = texts[loaded.index(urls.DOCS_SCRIPT) + 1]
    assert f'fetch("{urls.OPENAPI}")' in script
    for text in texts[:-1] if loaded[-1] == urls.OPENAPI else texts:
        assert not re.search(r"https?://", text), "no CDN, no external resource"


# A minimal DOM for node: enough for viewer.js to build its page, which is then counted.
_FAKE_DOM = r"""
class Node {
  constructor(tag) { this.tag = tag; this.children = []; this.attrs = {}; this._text = ""; }
  setAttribute(k, v) { this.attrs[k] = v; if (k === "id") ids[v] = this; }
  append(...nodes) { for (const n of nodes) this.children.push(n); }
  set textContent(v) { this._text = v; this.children = []; }
  get textContent() {
    return this._text + this.children.map((c) => (c instanceof Node ? c.textContent : c)).join("");
  }
  get tagName() { return this.tag.toUpperCase(); }
  scrollIntoView() {}
}
const ids = {};
for (const id of ["title", "summary", "toc", "operations", "schemas"]) {
  new Node("div").setAttribute("id", id);
}
global.Node = Node;
global.document = {
  createElement: (tag) => new Node(tag),
  createTextNode: (text) => text,
  getElementById: (id) => ids[id] || null,
  title: "",
};
global.location = { hash: "" };
const doc = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8"));
global.fetch = async () => ({ ok: true, status: 200, json: async () => doc });
require(process.argv[3]);
setTimeout(() => {
  const count = (node, tag) =>
    (node.tag === tag ? 1 : 0) +
    node.children.filter((c) => c instanceof Node).reduce((n, c) => n + count(c, tag), 0);
  console.log(JSON.stringify({
    operations: count(ids.operations, "details"),
    schemas: count(ids.schemas, "h3"),
    summary: ids.summary.textContent,
    text: ids.operations.textContent.length,
  }));
}, 50);
"""


def test_the_viewer_renders_every_operation_and_schema(tmp_path: Path) -> None:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("node is not installed: the viewer's rendering is not exercised")
    harness = tmp_path / "dom.js"
    harness.write_text(_FAKE_DOM)
    script = resources.files("service.http").joinpath("static/viewer.js")
    done = subprocess.run(
        [node, str(harness), str(openapi.OUTPUT), str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rendered = json.loads(done.stdout)
    document = openapi.build()
    operations = sum(
        1 for item in document["paths"].values() for m in item if m in {"get", "put", "post"}
    )
    assert rendered["operations"] == operations
    assert rendered["schemas"] == len(document["components"]["schemas"])
    assert rendered["summary"] == document["info"]["description"]
