"""The OpenAPI 3.1 schema: the read API's paths plus every incoming callback as a webhook.

Each command in :func:`openim_sync.callbacks.registry.commands` becomes one entry of the schema's
``webhooks``: the body its serializer accepts and the reply envelope of its protocol. The
schema is the same wherever the app is mounted (the served copy adds ``servers``), and a
committed copy, ``openim_sync/api/openapi.json``, is checked against the code::

    python -m openim_sync.api --check    # exit 1 when openapi.json is out of date
    python -m openim_sync.api --write    # regenerate it
"""

import json
from collections import defaultdict
from pathlib import Path

from drf_spectacular.drainage import reset_generator_stats
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import (
    build_mocked_view,
    build_root_object,
    normalize_result_object,
    sanitize_result_object,
)
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
from drf_spectacular.settings import patched_settings, spectacular_settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

import openim_sync

from .permissions import ConfiguredPermissionsMixin

COMMITTED = Path(__file__).with_name("openapi.json")

DESCRIPTION = """\
Read-only API over the openim-sync mirror (users, groups, members, friends, blocks, online
sessions, and stored callback events for staff), and the callbacks this app receives from
OpenIM Server and Tencent Cloud Chat, described as OpenAPI webhooks: what each server POSTs
and what it gets back.

Lists are cursor-paginated (`next` / `previous` links; `?page_size=`). One row is read by its
natural key (`/users/{user_id}/`, `/members/{group_id}/{user_id}/`, ...) or by primary key
(`/users/pk/{id}/`).

Webhooks `openim.*`: OpenIM Server posts to `<url>/<command>` (v3.5+), `<url>?command=<command>`
(v3.0-3.4) or `<url>` with the command only in the body (v2); with the README's include, `<url>`
is `/openim/callback` or `/openim/callback/<secret>`. Webhooks `tencent.*`: Tencent Cloud Chat
posts to `/openim/tencent?SdkAppid=..&CallbackCommand=..&contenttype=json&ClientIP=..
&OptPlatform=..` (plus `RequestTime` and `Sign` with callback authentication on). Every
authenticated delivery is stored; the reply envelope is the server's own."""

SETTINGS = {
    "TITLE": "openim-sync",
    "DESCRIPTION": DESCRIPTION,
    "VERSION": openim_sync.__version__,
    "OAS_VERSION": "3.1.0",
    "SCHEMA_PATH_PREFIX": "",
    "SORT_OPERATIONS": True,
    "ENUM_NAME_OVERRIDES": {},
    "COMPONENT_SPLIT_REQUEST": False,
    "SERVERS": [],
}


class OpenIMReplySerializer(serializers.Serializer):
    """OpenIM's reply envelope: integer codes; errors carry the HTTP status in errCode."""

    actionCode = serializers.IntegerField(help_text="0 on success.")
    errCode = serializers.IntegerField(help_text="0, or the HTTP status of the error.")
    errMsg = serializers.CharField(allow_blank=True, help_text="What was wrong, naming the field.")
    errDlt = serializers.CharField(allow_blank=True)
    nextCode = serializers.IntegerField(help_text="Always 0: no reply blocks an OpenIM operation.")


class TencentReplySerializer(serializers.Serializer):
    """Tencent Cloud Chat's reply envelope."""

    ActionStatus = serializers.ChoiceField(choices=["OK", "FAIL"])
    ErrorCode = serializers.IntegerField(help_text="0 on success, 1 on error.")
    ErrorInfo = serializers.CharField(allow_blank=True)


ERRORS = {
    400: "Rejected and stored as `rejected`: bad JSON, wrong types, a missing id, or URL and body "
    "naming different commands. The message names the field.",
    401: "Wrong secret, basic auth, Sign or a stale RequestTime; nothing stored.",
    403: "IP address not allowed or wrong SdkAppid; nothing stored.",
    413: "Body larger than MAX_BODY_BYTES; stored as `rejected` without the body.",
    500: "A handler bug: stored as `failed` with the traceback, replayable after the fix.",
    503: "Database unavailable: nothing half-written.",
}

TENCENT_PARAMETERS = [
    OpenApiParameter("SdkAppid", int, OpenApiParameter.QUERY, required=True),
    OpenApiParameter("CallbackCommand", str, OpenApiParameter.QUERY, required=True),
    OpenApiParameter("contenttype", str, OpenApiParameter.QUERY, enum=["json"]),
    OpenApiParameter("ClientIP", str, OpenApiParameter.QUERY),
    OpenApiParameter("OptPlatform", str, OpenApiParameter.QUERY),
    OpenApiParameter(
        "RequestTime", int, OpenApiParameter.QUERY, description="With callback authentication."
    ),
    OpenApiParameter(
        "Sign",
        str,
        OpenApiParameter.QUERY,
        description="sha256_hex(token + RequestTime), with callback authentication.",
    ),
]


def _aliases():
    names = defaultdict(list)
    for spec in _commands():
        if spec.handler is not None:
            names[(spec.protocol, spec.handler)].append(spec.name)
    return names


def _commands():
    from openim_sync.callbacks import registry

    return registry.commands()


def webhook_decorator(spec, aliases):
    reply = OpenIMReplySerializer if spec.protocol == "openim" else TencentReplySerializer
    if spec.ignored:
        summary = f"{spec.name} (stored as ignored)"
        description = f"Stored and answered with success; changes nothing: {spec.ignored_reason}"
        request = OpenApiTypes.OBJECT
    else:
        summary = spec.name
        description = (spec.handler.__doc__ or "").strip() or "Applied to the mirror by "
        if not spec.handler.__doc__:
            description += f"`{spec.handler.__module__}.{spec.handler.__name__}`."
        others = [
            name for name in aliases.get((spec.protocol, spec.handler), []) if name != spec.name
        ]
        if others:
            description += f"\n\nThe same change under the other names: {', '.join(others)}."
        if spec.version_field:
            description += f"\n\nVersion (ordering): the payload's `{spec.version_field}`."
        request = spec.serializer
    responses = {200: OpenApiResponse(reply, description="Success envelope.")}
    for status, text in ERRORS.items():
        responses[status] = OpenApiResponse(reply, description=text)

    def decorate(view):
        view.schema = AutoSchema()
        return extend_schema(
            operation_id=f"{spec.protocol}_{spec.name}".replace(".", "_"),
            summary=summary,
            description=description,
            request=request,
            responses=responses,
            tags=[f"callbacks: {spec.protocol}"],
            parameters=TENCENT_PARAMETERS if spec.protocol == "tencent" else None,
        )(view)

    return decorate


def build_webhooks(registry_):
    """``{name: {"post": operation}}`` for every command (drf-spectacular's process_webhooks,
    without its dependence on the host's DEFAULT_SCHEMA_CLASS)."""
    aliases = _aliases()
    result = {}
    for spec in _commands():
        view = build_mocked_view("post", "/", webhook_decorator(spec, aliases), registry_)
        schema = view.schema
        operation = {"operationId": schema.get_operation_id()}
        if description := schema.get_description():
            operation["description"] = description
        if summary := schema.get_summary():
            operation["summary"] = summary
        operation["tags"] = schema.get_tags()
        if parameters := schema._get_parameters():
            operation["parameters"] = parameters
        if body := schema._get_request_body("response"):
            operation["requestBody"] = body
        operation["responses"] = schema._get_response_bodies("request")
        result[f"{spec.protocol}.{spec.name}"] = {"post": operation}
    return result


def share_responses(schema):
    """Replaces the webhooks' repeated responses by ``components.responses`` references."""
    shared = schema["components"].setdefault("responses", {})
    for path_item in schema.get("webhooks", {}).values():
        operation = path_item["post"]
        protocol = "OpenIM" if operation["operationId"].startswith("openim_") else "Tencent"
        for status, response in operation["responses"].items():
            name = f"{protocol}Reply{status}"
            shared.setdefault(name, response)
            operation["responses"][status] = {"$ref": f"#/components/responses/{name}"}
    schema["components"]["responses"] = dict(sorted(shared.items()))
    return schema


class OpenIMSchemaGenerator(SchemaGenerator):
    """drf-spectacular's generator, with the callbacks as webhooks."""

    def get_schema(self, request=None, public=False):
        reset_generator_stats()
        paths = self.parse(request, public)
        webhooks = build_webhooks(self.registry)
        result = build_root_object(
            paths=paths,
            components=self.registry.build(spectacular_settings.APPEND_COMPONENTS),
            webhooks=webhooks,
            version=None,
        )
        for hook in spectacular_settings.POSTPROCESSING_HOOKS:
            result = hook(result=result, generator=self, request=request, public=public)
        return share_responses(sanitize_result_object(normalize_result_object(result)))


def api_patterns():
    from .urls import urlpatterns

    return [pattern for pattern in urlpatterns if pattern.name != "schema"]


def build_schema():
    """The schema as a plain dict, without ``servers`` (the same wherever the app is mounted)."""
    with patched_settings(SETTINGS):
        generator = OpenIMSchemaGenerator(patterns=api_patterns())
        schema = generator.get_schema(request=None, public=True)
    return json.loads(json.dumps(schema, default=str))


def render(schema):
    return json.dumps(schema, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


_cache = {}


class SchemaView(ConfiguredPermissionsMixin, APIView):
    """The OpenAPI 3.1 schema (YAML; JSON with ``?format=json``), with this mount as server."""

    schema = None  # not part of the schema itself
    renderer_classes = [OpenApiYamlRenderer, OpenApiJsonRenderer]

    def get(self, request):
        if "schema" not in _cache:
            _cache["schema"] = build_schema()
        mount = request.path[: -len("schema/")] if request.path.endswith("schema/") else "/"
        schema = {**_cache["schema"], "servers": [{"url": mount.rstrip("/") or "/"}]}
        return Response(
            schema, headers={"Content-Disposition": 'inline; filename="openim-sync.yaml"'}
        )
