"""GET /api/v1/openapi.json documents every /api/v1 route from the validating schemas."""

from __future__ import annotations

import re


def test_the_document_lists_every_api_route(app, client, world):
    response = client.get("/api/v1/openapi.json")  # public: no token needed
    assert response.status_code == 200
    doc = response.json
    assert doc["openapi"].startswith("3.") and doc["info"]["title"]
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = re.sub(r"<(?:[a-z_]+:)?(\w+)>", r"{\1}", rule.rule)
        assert path in doc["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in doc["paths"][path], (method, path)


def test_task_input_is_one_schema_per_task_type(client, world):
    doc = client.get("/api/v1/openapi.json").json
    schemas = doc["components"]["schemas"]
    task_input = schemas["TaskInput"]
    mapping = task_input["discriminator"]["mapping"]
    assert {world.data.code, world.coi.code, world.endt.code} <= set(mapping)
    data = schemas[f"{world.data.code}TaskInput"]
    assert data["properties"]["task_type"]["enum"] == [world.data.code]
    assert data["properties"]["priority"]["enum"] == ["low", "normal", "high", "urgent"]
    fields = schemas[f"{world.data.code}Fields"]
    assert fields["required"] == ["description"]
    coi = schemas[f"{world.coi.code}Fields"]["properties"]
    assert coi["lines"]["items"]["enum"] == ["GL", "AUTO", "WC", "PROP", "UMB", "PROF"]
    assert coi["additional_insured"]["type"] == "boolean"


def test_post_tasks_documents_idempotency_and_errors(client, world):
    op = client.get("/api/v1/openapi.json").json["paths"]["/api/v1/tasks"]["post"]
    assert {"201", "200", "409", "422", "401"} <= set(op["responses"])
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in op["parameters"])
    body = op["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/TaskInput"}
    listing = client.get("/api/v1/openapi.json").json["paths"]["/api/v1/tasks"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert {"status", "task_type", "priority", "received_from", "received_to", "q", "page",
            "per_page"} <= names


def test_components_come_from_the_marshmallow_schemas(client, world):
    doc = client.get("/api/v1/openapi.json").json
    schemas = doc["components"]["schemas"]
    assert {"Task", "Job", "Error", "TaskPage", "RowError"} <= set(schemas)
    assert {"id", "status", "due_at", "received_at", "task_type"} <= set(
        schemas["Task"]["properties"])
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert doc["paths"]["/api/v1/openapi.json"]["get"]["security"] == []
