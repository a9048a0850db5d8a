"""One typed definition per endpoint: request validation and the OpenAPI document from it.

A view declares its query parameters and JSON body as pydantic models in its signature
(`query: EventQuery`, `json: WebhookCreate`) and its answers in `@endpoint(...)`; spectree
validates each request against those models before the view runs and makes the view's part
of the document from them (the summary and description are the view's docstring). Here:

- a refused request raises our own errors, rendered by api/errors.py as always:
  `UnsupportedMediaType` (415) for a body that is not JSON, `InvalidInput` (422) with one
  detail per field for anything else: unknown and repeated query parameters, unknown,
  missing and mistyped body fields (models forbid extra fields; bodies are strict);
- the generated operations refer to the shared error responses (components/responses),
  carry their OpenAPI links, and their path parameters are described by the converters'
  ranges (`<int:...>` ids stop at PostgreSQL's `integer`);
- answers are documented, not validated at run time (schemathesis and the tests check them
  against the document; a stream must not be read ahead).

openapi.py merges `paths()` and `schemas()` into the document.
"""

from __future__ import annotations

import copy
import functools
import re
import typing
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from flask import Flask, request
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, WithJsonSchema
from spectree import Response, SpecTree
from spectree.plugins.flask_plugin import FlaskPlugin

from lainaamo.errors import InvalidInput
from server.entrypoints.api.blueprint import bp
from server.entrypoints.input_guard import BIGINT_MAX, INT_MAX, BigIntId, IntId
from server.entrypoints.web.status import UnsupportedMediaType

F = TypeVar("F", bound=Callable[..., Any])
ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")  # <converter(args):name>

# The schema of each converter's path argument (an id of an `integer` or `bigint` column).
CONVERTERS: dict[str, dict[str, Any]] = {
    "int": {"type": "integer", "minimum": 1, "maximum": INT_MAX},
    "bigint": {"type": "integer", "minimum": 1, "maximum": BIGINT_MAX},
}


# The default of a field that may be absent but is never null: an absent one reads as None
# (a default is not validated), a null one is refused; the document shows no default.
ABSENT: Any = None


class Says:
    """Annotated metadata: the detail message for a refused value of this field."""

    def __init__(self, message: str) -> None:
        self.message = message


def _absent(schema: dict[str, Any]) -> None:
    """A field that may be absent but is never null (default ABSENT) has no default."""
    for prop in schema.get("properties", {}).values():
        if "default" in prop and prop["default"] is None and "anyOf" not in prop:
            del prop["default"]


class Body(BaseModel):
    """A JSON request body: strict types, no field beyond those declared."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_absent)


class Query(BaseModel):
    """Query parameters: no parameter beyond those declared (values are parsed from text)."""

    model_config = ConfigDict(extra="forbid")


def _flag(value: object) -> object:
    """A yes/no query parameter: true, 1, yes or false, 0, no (any case)."""
    if not isinstance(value, str):
        return value
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise ValueError("true or false")


# An optional query parameter (absent: None; a query string holds no null, so the document
# says only what a present one is).
QueryText = Annotated[str | None, WithJsonSchema({"type": "string"})]
Flag = Annotated[
    bool | None, BeforeValidator(_flag), Says("true or false"), WithJsonSchema({"type": "boolean"})
]


def _no_defaults(schema: dict[str, Any]) -> None:
    """An answer's optional field may be absent: a default would say what it then means."""
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)


def _changes(schema: dict[str, Any]) -> None:
    _no_defaults(schema)
    schema["minProperties"] = 1


class Changes(Body):
    """A partial update (PATCH): the fields sent are changed, absent ones stay as they are
    (their defaults are placeholders, not documented; read `model_fields_set`)."""

    model_config = ConfigDict(json_schema_extra=_changes)


class Answer(BaseModel):
    """A documented answer (not validated at run time)."""

    model_config = ConfigDict(json_schema_extra=_no_defaults)


class ErrorDetail(Answer):
    status: int
    code: str
    message: str
    details: list[dict[str, Any]]


class Error(Answer):  # every error of the API (api/errors.py)
    error: ErrorDetail


class _Plugin(FlaskPlugin):
    """spectree's Flask plugin, leaving the view's answer to Flask as it is."""

    def validate_response(
        self, resp: Any, resp_model: Any, skip_validation: bool, force_resp_serialize: bool
    ) -> tuple[Any, None]:
        return resp, None


SPEC = SpecTree(
    "flask",
    backend=_Plugin,
    mode="strict",
    annotations=True,
    validation_error_status=422,
    validation_error_model=Error,
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
)

# Per operationId: what spectree does not say (error responses, links, an optional body).
_EXTRA: dict[str, dict[str, Any]] = {}


def endpoint(
    operation_id: str,
    responses: dict[int, tuple[type[BaseModel] | None, str]],
    errors: tuple[int, ...] = (),
    *,
    links: dict[int, dict[str, Any]] | None = None,
    body_required: bool = True,
    public: bool = False,
    path: dict[str, dict[str, Any]] | None = None,
    content: dict[str, Any] | None = None,
) -> Callable[[F], F]:
    """Validate the view's `query`/`json` models and document it as `operation_id`.

    `responses`: status → (model or None, description); `errors`: the statuses of the shared
    error responses it may answer with; `links`: status → OpenAPI links of that answer;
    `path`: the schemas of string path arguments (ids get their converter's range);
    `content`: the request body's media types, for a body that is not a JSON model (the view
    reads and checks it itself); `body_required=False`: an absent body reads as `{}` (its
    required fields are then refused one by one, and the document still says it is required).
    """

    def decorate(view: F) -> F:
        hints = typing.get_type_hints(view)
        query, json = hints.get("query"), hints.get("json")
        _EXTRA[operation_id] = {
            "errors": errors,
            "links": links or {},
            # Documented as required when a field of it is (an absent one reads as `{}`).
            "body_required": body_required
            or (json is not None and any(f.is_required() for f in json.model_fields.values())),
            "query": query,
            "path": path or {},
            "content": content,
            "models": [query, json, *(model for model, _ in responses.values())],
        }
        resp = Response(**{f"HTTP_{code}": answer for code, answer in responses.items()})
        validate = SPEC.validate(
            resp=resp,
            operation_id=operation_id,
            before=functools.partial(_before, query, json, body_required),
            security=[] if public else None,
        )
        return typing.cast(F, validate(view))

    return decorate


def _before(
    query: type[BaseModel] | None,
    json: type[BaseModel] | None,
    body_required: bool,
    req: Any,
    resp: Any,
    error: Exception | None,
    *_: Any,
) -> None:
    """After spectree's validation, before the view: refuse as the API always has."""
    if query is not None:
        _check_query(query)
    if json is not None and (body_required or request.content_length or request.is_json):
        if not request.is_json:
            raise UnsupportedMediaType("send a JSON body with Content-Type: application/json")
        if not isinstance(request.get_json(silent=True), dict):
            raise InvalidInput("the body must be a JSON object", [])
    if isinstance(error, ValidationError):
        in_query = query is not None and error.title == query.__name__
        raise _invalid(error, query if in_query else json, in_query)
    context = getattr(request, "context", None)
    if json is not None and context is not None and context.json is None:  # optional, absent
        setattr(request, "context", context._replace(json=json.model_validate({})))  # noqa: B010


def _check_query(model: type[BaseModel]) -> None:
    allowed = set(model.model_fields)
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        listed = ", ".join(sorted(allowed))
        raise InvalidInput(
            "unknown query parameters",
            [{"field": name, "message": f"allowed: {listed}"} for name in unknown],
        )
    repeated = [k for k in request.args if len(request.args.getlist(k)) > 1]
    if repeated:
        raise InvalidInput(
            "repeated query parameters", [{"field": k, "message": "give once"} for k in repeated]
        )


MESSAGES = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "string_type": "must be a string",
}


def _invalid(error: ValidationError, model: type[BaseModel] | None, in_query: bool) -> InvalidInput:
    """Our InvalidInput for pydantic's errors: one detail per field."""
    details: list[dict[str, object]] = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        field = ".".join(loc) or "body"
        message = MESSAGES.get(item["type"]) or _says(model, loc) or item["msg"]
        details.append({"field": field, "message": message})
    if in_query:
        names = sorted({str(d["field"]) for d in details})
        return InvalidInput(f"invalid {', '.join(names)}", details)
    return InvalidInput("invalid request body", details)


def _says(model: type[BaseModel] | None, loc: list[str]) -> str | None:
    """The `Says` message of the field at `loc`, through nested models and list items."""
    field = None
    for part in loc:
        if part.isdigit():
            continue
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return None
        model = next(iter(_models_in(field.annotation)), None)
    for meta in field.metadata if field is not None else ():
        if isinstance(meta, Says):
            return meta.message
    return None


# --- the document --------------------------------------------------------------------------


def paths() -> dict[str, Any]:
    """The generated operations, by path (relative to the blueprint's prefix)."""
    return copy.deepcopy(_generated()[0])


def schemas() -> dict[str, Any]:
    """The generated components/schemas."""
    return copy.deepcopy(_generated()[1])


@functools.cache
def _generated() -> tuple[dict[str, Any], dict[str, Any]]:
    check_names([Error, *(m for extra in _EXTRA.values() for m in extra["models"] if m)])
    app = Flask(__name__)  # a bare app with the API's routes only: what spectree reads
    app.url_map.converters.update(int=IntId, bigint=BigIntId)
    app.register_blueprint(bp)
    with app.app_context():
        spec = SPEC.spec
    converters = _path_converters(app)
    found: dict[str, Any] = {}
    for path, operations in spec["paths"].items():
        relative = path.removeprefix(bp.url_prefix or "")
        for method, operation in operations.items():
            item = found.setdefault(relative, {})
            item[method] = _operation(operation, converters.get(relative, {}))
    query_models = {
        extra["query"].__name__ for extra in _EXTRA.values() if extra["query"] is not None
    }
    components = {
        name: clean(schema)
        for name, schema in spec["components"]["schemas"].items()
        if name not in query_models
    }
    return found, components


class DuplicateModelName(Exception):
    """Two different models would share one component name (the later would replace the
    earlier in components/schemas, and every $ref to it would describe the wrong model)."""


def check_names(models: list[type[BaseModel]]) -> dict[str, type[BaseModel]]:
    """Each component name (a model's class name) → its one model, through nested models.

    Raises DuplicateModelName if two different models have the same name."""
    found: dict[str, type[BaseModel]] = {}
    pending = list(models)
    while pending:
        model = pending.pop()
        known = found.get(model.__name__)
        if known is model:
            continue
        if known is not None:
            raise DuplicateModelName(
                f"{model.__module__}.{model.__qualname__} and "
                f"{known.__module__}.{known.__qualname__} are both named {model.__name__}"
            )
        found[model.__name__] = model
        for field in model.model_fields.values():
            pending.extend(_models_in(field.annotation))
    return found


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Every model a field's type holds (itself, in a union, a list or a dict)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _path_converters(app: Flask) -> dict[str, dict[str, str]]:
    """Path template → {argument: converter name} of the API's routes."""
    found: dict[str, dict[str, str]] = {}
    prefix = bp.url_prefix or ""
    for rule in app.url_map.iter_rules():
        path = str(rule).removeprefix(prefix)
        template = ARGUMENT.sub(lambda m: "{" + m[2] + "}", path)
        found[template] = {m[2]: m[1] or "default" for m in ARGUMENT.finditer(path)}
    return found


def _operation(operation: dict[str, Any], converters: dict[str, str]) -> dict[str, Any]:
    extra = _EXTRA[operation["operationId"]]
    result: dict[str, Any] = {"summary": operation["summary"]}
    if operation.get("description"):
        result["description"] = operation["description"]
    result["operationId"] = operation["operationId"]
    if "security" in operation:
        result["security"] = operation["security"]
    parameters = [_parameter(p, converters, extra["path"]) for p in operation.get("parameters", [])]
    if parameters:
        result["parameters"] = parameters
    if "requestBody" in operation:
        result["requestBody"] = {**operation["requestBody"], "required": extra["body_required"]}
    elif extra["content"] is not None:
        result["requestBody"] = {"required": extra["body_required"], "content": extra["content"]}
    responses = {
        code: answer
        for code, answer in operation["responses"].items()
        if int(code) not in extra["errors"] and code != "422"
    }
    for code, links in extra["links"].items():
        responses[str(code)]["links"] = links
    responses |= {str(c): {"$ref": f"#/components/responses/E{c}"} for c in extra["errors"]}
    result["responses"] = responses | {"default": {"$ref": "#/components/responses/Error"}}
    return result


def _parameter(
    parameter: dict[str, Any], converters: dict[str, str], path: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    result = {k: v for k, v in parameter.items() if not (k == "description" and not v)}
    name = parameter["name"]
    if parameter["in"] == "path" and name in path:
        result["schema"] = path[name]
    elif parameter["in"] == "path" and converters.get(name) in CONVERTERS:
        result["schema"] = CONVERTERS[converters[name]]
    else:
        result["schema"] = clean(parameter["schema"])
        if result["schema"].get("description") == result.get("description"):
            result["schema"].pop("description", None)
    return result


def clean(node: Any, mapping: bool = False) -> Any:
    """A pydantic JSON schema without titles, with `type: [X, "null"]` for an optional X."""
    if isinstance(node, list):
        return [clean(n) for n in node]
    if not isinstance(node, dict):
        return node
    if mapping:  # properties: names to schemas
        return {k: clean(v) for k, v in node.items()}
    result = {
        k: clean(v, mapping=k in ("properties", "$defs", "patternProperties"))
        for k, v in node.items()
        if not (k == "title" and isinstance(v, str))
    }
    return _nullable(result)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    options = schema.get("anyOf")
    if not (isinstance(options, list) and len(options) == 2 and {"type": "null"} in options):
        return schema
    other = next(o for o in options if o != {"type": "null"})
    if not isinstance(other.get("type"), str):
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    return {**other, **rest, "type": [other["type"], "null"]}
