"""The OpenAPI 3 document of every /api/v1 route, generated from the validating schemas.

Routes describe themselves with ``@operation``; component schemas come from the
Marshmallow schemas the API validates and serialises with (apispec's
MarshmallowPlugin). A route someone adds without ``@operation`` still appears,
with its docstring as the summary, so the document never silently omits a path.

Task bodies: ``TaskInput`` is a ``oneOf`` of one schema per active task type,
discriminated by ``task_type``; each member's ``fields`` is that type's intake
schema, built by the same field layer that validates requests. The document is
therefore generated per request from the live catalogue.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from marshmallow import Schema

from provider_app.intake.schemas import ErrorSchema, input_schema
from provider_app.intake.service import active_task_types

F = TypeVar("F", bound=Callable[..., Any])
PREFIX = "/api/v1"
_CONVERTER = re.compile(r"<(?:[a-z_]+:)?([a-zA-Z_][a-zA-Z0-9_]*)>")
ERROR_TEXT = {
    400: "Bad request (e.g. a browser session without its CSRF token).",
    401: "Missing, invalid or revoked token.",
    403: "The credential may not use this route.",
    404: "Unknown id, or one that belongs to another client.",
    409: "Conflict: see the error message.",
    422: "Invalid input; `errors` holds messages keyed by field path.",
    429: "Rate limit exceeded; retry after the Retry-After header.",
}
DESCRIPTION = """\
Send work to the provider and follow it.

**Authentication**: `Authorization: Bearer <token>` with a client API token (a client
admin creates tokens in the portal under *API tokens*, or the provider with
`flask create-token`). Every response is limited to your own client: another client's
id answers 404.

**Errors** are JSON: `{"error": "...", "errors": {"field.path": ["message"]}}`; `errors`
appears for validation failures (422) and is keyed by field path, e.g.
`fields.policy_number`.

**Idempotency**: send `Idempotency-Key` (any unique string, e.g. a UUID) with
`POST /api/v1/tasks`. The first request answers 201; the same key with the same body
answers 200 with the same task; the same key with a different body answers 409. Keys are
kept for at least 24 hours (48 in practice). Without the header every POST creates a task.

**Task types**: `GET /api/v1/task-types` lists the catalogue and each type's fields; the
`TaskInput` schema below is one member per task type.
"""


def operation(*, summary: str, tag: str, body: Any = None, query: type[Schema] | None = None,
              multipart: Any = None, responses: dict[int, Any] | None = None,
              idempotent: bool = False) -> Callable[[F], F]:
    """Describe a route for the OpenAPI document (the description lives beside the code)."""

    def decorate(view: F) -> F:
        view._openapi = {  # type: ignore[attr-defined]
            "summary": summary, "tag": tag, "body": body, "query": query,
            "multipart": multipart, "responses": responses or {200: None},
            "idempotent": idempotent,
        }
        return view

    return decorate


def _schema_name(schema: Any) -> str:
    cls = schema if isinstance(schema, type) else type(schema)
    name = cls.__name__
    return name[:-6] if name.endswith("Schema") and len(name) > 6 else name


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _task_input(spec: APISpec) -> dict:
    """Register one input schema per active task type and return the oneOf."""
    mapping = {}
    for task_type in active_task_types():
        schema = input_schema(task_type)
        name = f"{task_type.code}TaskInput"
        spec.components.schema(name, schema=type(schema))
        mapping[task_type.code] = f"#/components/schemas/{name}"
    spec.components.schema("TaskInput", {
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "task_type", "mapping": mapping},
        "description": "A task: the envelope plus the chosen task type's `fields`.",
    })
    return _ref("TaskInput")


def _content(kind: Any) -> dict:
    if kind == "binary":
        return {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    if kind == "pdf":
        return {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}
    if kind == "csv":
        return {"text/csv": {"schema": {"type": "string"}}}
    if kind == "json" or kind is None:
        return {"application/json": {"schema": {"type": "object"}}}
    return {"application/json": {"schema": kind}}


def _responses(meta: dict) -> dict:
    out: dict[str, Any] = {}
    for status, kind in meta["responses"].items():
        if status >= 400:
            out[str(status)] = {"description": ERROR_TEXT.get(status, "Error."),
                                "content": {"application/json": {"schema": ErrorSchema}}}
        else:
            out[str(status)] = {"description": "Success.", "content": _content(kind)}
    out.setdefault("401", {"description": ERROR_TEXT[401],
                           "content": {"application/json": {"schema": ErrorSchema}}})
    out.setdefault("429", {"description": ERROR_TEXT[429],
                           "content": {"application/json": {"schema": ErrorSchema}}})
    return out


def _multipart(multipart: Any) -> dict:
    if isinstance(multipart, dict):
        schema: Any = {"type": "object", "required": list(multipart), "properties": {
            name: {"type": "array", "items": {"type": "string", "format": fmt}}
            for name, fmt in multipart.items()}}
    else:
        schema = multipart
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


def _operation(meta: dict | None, view: Callable, blueprint: str, path_params: list[str],
               task_input: Callable[[], dict]) -> dict:
    params: list[dict] = [{"in": "path", "name": p, "required": True,
                           "schema": {"type": "string"}} for p in path_params]
    if meta is None:  # a route without @operation: still listed, described by its docstring
        doc = (view.__doc__ or view.__name__).strip().splitlines()[0]
        return {"summary": doc, "tags": [blueprint], "parameters": params,
                "responses": {"200": {"description": "Success."}}}
    op: dict[str, Any] = {"summary": meta["summary"], "tags": [meta["tag"]],
                          "operationId": view.__name__, "responses": _responses(meta)}
    if meta["query"] is not None:
        params.append({"in": "query", "schema": meta["query"]})
    if meta["idempotent"]:
        params.append({"in": "header", "name": "Idempotency-Key", "required": False,
                       "schema": {"type": "string", "pattern": r"^[!-~]{1,255}$"},
                       "description": "Makes retries safe; see the introduction."})
    if params:
        op["parameters"] = params
    if meta["body"] == "TaskInput":
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": task_input()}}}
    elif meta["body"] is not None:
        op["requestBody"] = {"required": False,
                             "content": {"application/json": {"schema": meta["body"]}}}
    if meta["multipart"] is not None:
        op["requestBody"] = _multipart(meta["multipart"])
    if meta["tag"] == "meta":
        op["security"] = []
    return op


def build_spec(app: Flask) -> dict:
    """The whole document, for the routes registered on ``app`` right now."""
    spec = APISpec(
        title="Throughline client API", version="1", openapi_version="3.0.3",
        plugins=[MarshmallowPlugin(schema_name_resolver=_schema_name)],
        info={"description": DESCRIPTION},
        servers=[{"url": "/"}],
    )
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    cached: dict[str, dict] = {}

    def task_input() -> dict:
        if "ref" not in cached:
            cached["ref"] = _task_input(spec)
        return cached["ref"]

    rules = sorted((r for r in app.url_map.iter_rules() if r.rule.startswith(PREFIX + "/")),
                   key=lambda r: r.rule)
    for rule in rules:
        view = app.view_functions[rule.endpoint]
        path = _CONVERTER.sub(r"{\1}", rule.rule)
        params = [m.group(1) for m in _CONVERTER.finditer(rule.rule)]
        blueprint = rule.endpoint.rsplit(".", 1)[0]
        operations = {
            method.lower(): _operation(getattr(view, "_openapi", None), view, blueprint, params,
                                       task_input)
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        }
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    document["security"] = [{"bearerAuth": []}]
    return document
