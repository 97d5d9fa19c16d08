"""The committed OpenAPI document is what the code builds, and covers exactly the app's routes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from schemas import urls
from schemas.http import parse_form, parse_login
from service.core.settings import Settings
from service.http import openapi
from service.main.wiring import create_app

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi.build()


def test_committed_document_is_up_to_date(document: dict[str, Any]) -> None:
    committed = openapi.OUTPUT.read_text(encoding="utf-8")
    assert committed == openapi.render(document), (
        "schemas/openapi.json is out of date: run `python -m service.http.openapi` and commit it"
    )


def test_document_and_router_have_the_same_operations(document: dict[str, Any]) -> None:
    app = create_app(Settings())  # connections open only on start-up; none are made here
    registered = set()
    for route in app.router.routes():
        if route.method == "HEAD":  # added by aiohttp for every GET
            continue
        assert route.resource is not None
        registered.add((route.method, route.resource.canonical))
    documented = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert registered - documented == set(), "routes missing from the OpenAPI document"
    assert documented - registered == set(), "documented operations the app does not serve"


def test_example_form_body_is_valid(document: dict[str, Any]) -> None:
    put = document["paths"][urls.FORM]["put"]
    example = put["requestBody"]["content"]["application/json"]["example"]
    form = parse_form(example)
    assert [c.model_dump() for c in form.choices] == example["choices"]


def test_example_login_body_is_valid(document: dict[str, Any]) -> None:
    login = document["paths"][urls.LOGIN]["post"]
    parse_login(login["requestBody"]["content"]["application/json"]["example"])


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    refs = set(_refs(document))
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        node: Any = document
        for part in ref[2:].split("/"):
            assert isinstance(node, dict) and part in node, f"unresolved {ref}"
            node = node[part]


def test_every_path_parameter_is_declared(document: dict[str, Any]) -> None:
    parameters = document["components"]["parameters"]
    for path, item in document["paths"].items():
        in_template = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        for method, op in item.items():
            declared = {
                parameters[p["$ref"].rsplit("/", 1)[-1]]["name"]
                for p in op.get("parameters", [])
                if parameters[p["$ref"].rsplit("/", 1)[-1]]["in"] == "path"
            }
            assert declared == in_template, f"{method.upper()} {path}"


def test_document_is_plain_json(document: dict[str, Any]) -> None:
    assert json.loads(openapi.render(document)) == document
    assert document["openapi"].startswith("3.1")
