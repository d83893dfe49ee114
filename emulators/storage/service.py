"""The WSGI application: the JSON API routes (``/storage/v1``, ``/upload/storage/v1``,
``/download/storage/v1``) and the ``/_emulator/`` admin endpoints, with fault injection by method id.

Buckets: insert, get, list (``prefix``, ``maxResults``, ``pageToken``), patch (labels), delete (409 when not
empty). Objects: uploads (:mod:`.uploads`), get (JSON or ``alt=media``, :mod:`.downloads`), list
(``prefix``, ``delimiter`` -> ``prefixes``, ``maxResults``, ``pageToken``, ``startOffset``, ``endOffset``),
patch and update (``metadata``, ``contentType``, ``cacheControl``, ``contentDisposition``,
``contentEncoding``, ``contentLanguage``, ``customTime``), delete, copy (``copyTo``), rewrite
(``rewriteTo``, always done in one call) and compose. Every write of an object hands its resource to the
event dispatcher (:mod:`.delivery`) before answering.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote

from werkzeug.exceptions import ClientDisconnected
from werkzeug.wrappers import Request, Response

from emulators.apiserver.errors import ApiError
from emulators.apiserver.faults import FaultInjector
from emulators.storage.admin import AdminEndpoints
from emulators.storage.delivery import DeliveryPolicy, EventDispatcher
from emulators.storage.downloads import media_response
from emulators.storage.errors import (
    bad_request,
    error_response,
    internal_error,
    json_response,
    method_not_allowed,
    not_found,
    object_not_found,
    precondition_failed,
    required,
)
from emulators.storage.model import ObjectProps, Preconditions, StoredObject
from emulators.storage.payloads import PayloadStore
from emulators.storage.store import StorageState
from emulators.storage.uploads import Uploads
from emulators.storage.wire import (
    base_url,
    decode_token,
    drain,
    encode_token,
    int_arg,
    json_body,
    max_results_arg,
    raw_path,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

LOG = logging.getLogger(__name__)

MAX_COMPOSE_SOURCES: Final = 32


@dataclass(frozen=True)
class EmulatorConfig:
    project: str
    data_dir: Path | None = None
    routes: Mapping[str, Sequence[str]] = field(default_factory=dict)
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    shutdown_grace: float = 3.0


Handler = Callable[[Request, dict[str, str]], Response]


@dataclass(frozen=True)
class Route:
    """A JSON API path and, per HTTP verb, the API method id it is (the key of fault injection)."""

    pattern: re.Pattern[str]
    kind: str
    methods: Mapping[str, str]


_B = r"(?P<bucket>[^/]+)"
_ADMIN = re.compile(r"/_emulator/(?P<op>[a-z-]+)/?")
_ROUTES: Final = (
    Route(re.compile(r"/storage/v1/b/?"), "buckets", {"POST": "buckets.insert", "GET": "buckets.list"}),
    Route(
        re.compile(rf"/storage/v1/b/{_B}/?"),
        "bucket",
        {"GET": "buckets.get", "PATCH": "buckets.patch", "DELETE": "buckets.delete"},
    ),
    Route(re.compile(rf"/storage/v1/b/{_B}/o/?"), "objects", {"GET": "objects.list"}),
    Route(
        re.compile(
            rf"/storage/v1/b/{_B}/o/(?P<object>.+)/(?P<op>copyTo|rewriteTo)"
            r"/b/(?P<dest_bucket>[^/]+)/o/(?P<dest_object>.+)"
        ),
        "copy",
        {"POST": "objects.copy"},  # objects.rewrite for rewriteTo
    ),
    Route(
        re.compile(rf"/storage/v1/b/{_B}/o/(?P<object>.+)/compose"), "compose", {"POST": "objects.compose"}
    ),
    Route(
        re.compile(rf"/storage/v1/b/{_B}/o/(?P<object>.+)"),
        "object",
        {"GET": "objects.get", "PATCH": "objects.patch", "PUT": "objects.update", "DELETE": "objects.delete"},
    ),
    # Every request of an upload (start, chunks, status queries, cancel) is part of objects.insert.
    Route(
        re.compile(rf"/upload/storage/v1/b/{_B}/o/?"),
        "upload",
        {"POST": "objects.insert", "PUT": "objects.insert", "DELETE": "objects.insert"},
    ),
    Route(re.compile(rf"/download/storage/v1/b/{_B}/o/(?P<object>.+)"), "download", {"GET": "objects.get"}),
)


class StorageEmulator:
    """The WSGI application: JSON API, uploads, downloads and the ``/_emulator/`` admin endpoints."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.store = PayloadStore(config.data_dir)
        self.state = StorageState(self.store, config.project)
        dead_letter_file = config.data_dir / "dead-letters.jsonl" if config.data_dir else None
        self.events = EventDispatcher(config.routes, config.policy, dead_letter_file)
        self.uploads = Uploads(self.state, self.store, self._finalized)
        self.faults = FaultInjector()
        self.admin = AdminEndpoints(self.state, self.uploads.sessions, self.events, self.faults)
        self._handlers: dict[str, Handler] = {
            "buckets": self._buckets,
            "bucket": self._bucket,
            "objects": self._objects,
            "copy": self._copy,
            "compose": self._compose,
            "object": self._object,
            "upload": lambda request, params: self.uploads.handle(request, params["bucket"]),
            "download": lambda request, params: media_response(
                request, self.state, params["bucket"], params["object"]
            ),
        }

    def start(self) -> None:
        self.events.start()

    def close(self) -> None:
        self.events.close(self.config.shutdown_grace)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self._dispatch(request)
        except ApiError as error:
            response = error_response(error)
        except ClientDisconnected:
            response = error_response(
                bad_request("The client disconnected before the request body was complete")
            )
        except Exception:
            LOG.exception("internal error serving %s %s", request.method, request.full_path)
            response = error_response(internal_error())
        drain(request)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        path = raw_path(request.environ)
        admin = _ADMIN.fullmatch(path)
        if admin is not None:
            return self.admin.handle(request, admin["op"])
        for route in _ROUTES:
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            params = {key: unquote(value) for key, value in match.groupdict().items()}
            method = route.methods.get(request.method)
            if method is None:
                raise method_not_allowed(request.method, request.path)
            if params.get("op") == "rewriteTo":
                method = "objects.rewrite"
            self.faults.before_call(method, f"storage.{method}")
            return self._handlers[route.kind](request, params)
        raise not_found(f"Not Found: {request.method} {path} is not an emulated endpoint")

    # Buckets.

    def _buckets(self, request: Request, params: dict[str, str]) -> Response:
        base = base_url(request)
        if request.method == "POST":
            bucket = self.state.create_bucket(json_body(request), request.args.get("project"))
            LOG.info("created bucket %s (project %s)", bucket.name, bucket.project)
            return json_response(self.state.bucket_resource(bucket.name, base))
        buckets = self.state.list_buckets(request.args.get("project"), request.args.get("prefix", ""))
        token = request.args.get("pageToken")
        if token:
            after = str(decode_token(token).get("after", ""))
            buckets = [b for b in buckets if b.name > after]
        limit = max_results_arg(request.args)
        page = buckets[:limit]
        body: dict[str, Any] = {"kind": "storage#buckets", "items": [b.resource(base) for b in page]}
        if len(buckets) > limit:
            body["nextPageToken"] = encode_token({"after": page[-1].name})
        return json_response(body)

    def _bucket(self, request: Request, params: dict[str, str]) -> Response:
        name, base = params["bucket"], base_url(request)
        if request.method == "GET":
            resource = self.state.bucket_resource(name, base)
            conditions = Preconditions.from_args(request.args)
            if conditions.metageneration_match is not None and resource["metageneration"] != str(
                conditions.metageneration_match
            ):
                raise precondition_failed()
            return json_response(resource)
        if request.method == "PATCH":
            return json_response(self.state.patch_bucket(name, json_body(request), base))
        self.state.delete_bucket(name, int_arg(request.args, "ifMetagenerationMatch"))
        LOG.info("deleted bucket %s", name)
        return Response(status=204)

    # Objects: metadata.

    def _objects(self, request: Request, params: dict[str, str]) -> Response:
        args = request.args
        for unsupported in ("matchGlob", "includeFoldersAsPrefixes"):
            if args.get(unsupported):
                raise bad_request(f"{unsupported} is not supported by the storage emulator")
        if args.get("includeTrailingDelimiter", "false").lower() == "true":
            raise bad_request("includeTrailingDelimiter is not supported by the storage emulator")
        prefix, delimiter = args.get("prefix", ""), args.get("delimiter", "")
        start_offset, end_offset = args.get("startOffset", ""), args.get("endOffset", "")
        limit = max_results_arg(args)
        after: str | None = None
        after_is_prefix = False
        if args.get("pageToken"):
            token = decode_token(args["pageToken"])
            after, after_is_prefix = str(token.get("after", "")), bool(token.get("prefix", False))
        base = base_url(request)
        items: list[dict[str, Any]] = []
        prefixes: list[str] = []
        last: tuple[str, bool] | None = None
        next_token: str | None = None
        for obj in self.state.objects(params["bucket"]):
            name = obj.name
            if not name.startswith(prefix) or name < start_offset or (end_offset and name >= end_offset):
                continue
            if after is not None and (name <= after or (after_is_prefix and name.startswith(after))):
                continue
            rolled_up: str | None = None
            if delimiter:
                cut = name.find(delimiter, len(prefix))
                if cut >= 0:
                    rolled_up = name[: cut + len(delimiter)]
            if rolled_up is not None and last == (rolled_up, True):
                continue
            if len(items) + len(prefixes) == limit:
                assert last is not None
                next_token = encode_token({"after": last[0], "prefix": last[1]})
                break
            if rolled_up is not None:
                prefixes.append(rolled_up)
                last = (rolled_up, True)
            else:
                items.append(obj.resource(base))
                last = (name, False)
        body: dict[str, Any] = {"kind": "storage#objects"}
        if prefixes:
            body["prefixes"] = prefixes
        if items:
            body["items"] = items
        if next_token is not None:
            body["nextPageToken"] = next_token
        return json_response(body)

    def _object(self, request: Request, params: dict[str, str]) -> Response:
        bucket, name, args = params["bucket"], params["object"], request.args
        generation = int_arg(args, "generation")
        conditions = Preconditions.from_args(args)
        if request.method == "GET":
            if args.get("alt") == "media":
                return media_response(request, self.state, bucket, name)
            if args.get("alt", "json") != "json":
                raise bad_request(f"Unsupported alt={args['alt']!r}; use json or media")
            obj = self.state.get_object(bucket, name, generation)
            conditions.check(obj, read=True)
            return json_response(obj.resource(base_url(request)))
        if request.method == "DELETE":
            self.state.delete_object(bucket, name, generation, conditions)
            LOG.info("deleted gs://%s/%s", bucket, name)
            return Response(status=204)
        body = json_body(request)
        if request.method == "PATCH":
            updated = self.state.update_object(
                bucket, name, generation, conditions, lambda p: p.patched(body)
            )
        else:
            replacement = ObjectProps.from_body(body)
            updated = self.state.update_object(bucket, name, generation, conditions, lambda _p: replacement)
        LOG.info("updated metadata of gs://%s/%s (metageneration %d)", bucket, name, updated.metageneration)
        return json_response(updated.resource(base_url(request)))

    # Objects: writes.

    def _finalized(self, request: Request, obj: StoredObject) -> dict[str, Any]:
        """The object resource of a write, after handing its finalized event to the dispatcher."""
        resource = obj.resource(base_url(request))
        LOG.info("finalized gs://%s/%s#%d (%d bytes)", obj.bucket, obj.name, obj.generation, obj.payload.size)
        self.events.publish(resource)
        return resource

    def _copy(self, request: Request, params: dict[str, str]) -> Response:
        args = request.args
        source = self.state.get_object(params["bucket"], params["object"], int_arg(args, "sourceGeneration"))
        Preconditions.from_args(args, source=True).check(source)
        dest_bucket, dest_name = params["dest_bucket"], params["dest_object"]
        conditions = Preconditions.from_args(args)
        self.state.check_writable(dest_bucket, dest_name, conditions)
        props = ObjectProps.from_body(json_body(request)).over(source.props)
        try:
            payload = self.store.duplicate(source.payload)
        except FileNotFoundError:
            raise object_not_found(params["bucket"], params["object"], source.generation) from None
        obj = self.state.commit(dest_bucket, dest_name, payload, props, conditions, source.component_count)
        resource = self._finalized(request, obj)
        if params["op"] == "copyTo":
            return json_response(resource)
        size = str(obj.payload.size)
        return json_response(
            {
                "kind": "storage#rewriteResponse",
                "totalBytesRewritten": size,
                "objectSize": size,
                "done": True,
                "resource": resource,
            }
        )

    def _compose(self, request: Request, params: dict[str, str]) -> Response:
        bucket, name = params["bucket"], params["object"]
        body = json_body(request)
        sources = body.get("sourceObjects")
        if not isinstance(sources, list) or not sources:
            raise required("sourceObjects")
        if len(sources) > MAX_COMPOSE_SOURCES:
            raise bad_request(f"A compose request takes at most {MAX_COMPOSE_SOURCES} source objects")
        conditions = Preconditions.from_args(request.args)
        self.state.check_writable(bucket, name, conditions)
        objects: list[StoredObject] = []
        for item in sources:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise bad_request("Each sourceObjects item needs a name")
            pre = item.get("objectPreconditions") or {}
            if not isinstance(pre, dict):
                raise bad_request("Invalid value for objectPreconditions: expected an object")
            source = self.state.get_object(bucket, item["name"], int_arg(item, "generation"))
            if_generation_match = int_arg(pre, "ifGenerationMatch")
            if if_generation_match is not None and if_generation_match != source.generation:
                raise precondition_failed()
            objects.append(source)
        destination = body.get("destination") or {}
        if not isinstance(destination, dict):
            raise bad_request("Invalid value for destination: expected an object")
        props = ObjectProps.from_body(destination)
        if props.content_type is None:
            props = dataclasses.replace(props, content_type=objects[0].props.content_type)
        writer = self.store.writer()
        try:
            for source in objects:
                try:
                    handle = source.payload.open()
                except FileNotFoundError:
                    raise object_not_found(bucket, source.name, source.generation) from None
                with handle:
                    writer.write_stream(handle)
            payload = writer.finish(composite=True)
        finally:
            writer.discard()
        components = sum(o.component_count or 1 for o in objects)
        obj = self.state.commit(bucket, name, payload, props, conditions, components)
        return json_response(self._finalized(request, obj))
