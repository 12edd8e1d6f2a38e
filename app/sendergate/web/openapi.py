"""The app's OpenAPI document, patched to say what the app really answers: 422s carry our Error body,
not FastAPI's default validation schema."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .models import Error


def document(app: FastAPI) -> dict[str, Any]:
    """The document for `app`, built once and kept on it."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    comps = schema.setdefault("components", {}).setdefault("schemas", {})
    if "Error" not in comps:
        comps["Error"] = Error.model_json_schema(ref_template="#/components/schemas/{model}")
    for path_item in schema.get("paths", {}).values():
        for op in path_item.values():
            if not isinstance(op, dict):
                continue
            resp = op.get("responses", {})
            if "422" in resp:
                resp["422"] = {"description": resp["422"].get("description", "Validation error"),
                               "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for name in ("HTTPValidationError", "ValidationError"):
        comps.pop(name, None)
    app.openapi_schema = schema
    return schema


class DocumentedApp(FastAPI):
    """The gateway's FastAPI app: its OpenAPI document is `document(app)`."""

    def openapi(self) -> dict[str, Any]:
        return document(self)
