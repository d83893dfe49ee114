"""The emulator HTTP (and optional gRPC) server: RPC methods keyed by name, reached the way clients call them.

REST: each method is routed from the ``google.api.http`` rules of the real client (see :mod:`routing`); the
request message is assembled from query parameters, the body (per the rule's ``body``) and the path
variables, parsed with the protobuf JSON mapping; the response is the message's JSON; errors are Google REST
errors ``{"error": {"code", "message", "status"}}``.

gRPC (when a gRPC port is given): the same handlers, with the proto-plus classes as (de)serialisers.

Every call passes through the fault injector first (latency, then "fail the next N calls"). Admin endpoints
live under ``/_emulator/``: ``health``, ``faults``, ``latency``, ``reset``, plus whatever a service adds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import signal
import threading
import traceback
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

from google.longrunning import operations_pb2
from google.protobuf import empty_pb2, json_format
from werkzeug.datastructures import MultiDict
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from emulators.apiserver.errors import ApiError, invalid
from emulators.apiserver.faults import FaultInjector
from emulators.apiserver.messages import camel, deserializer, from_dict, pb_class, serialize, to_dict
from emulators.apiserver.operations import OperationStore
from emulators.apiserver.routing import HttpRule, rules_from_options

log = logging.getLogger("emulators.apiserver")

Handler = Callable[[Any], Any]
OPERATIONS_SERVICE = "google.longrunning.Operations"


@dataclass
class RpcMethod:
    service: str  # fully qualified gRPC service, e.g. "google.devtools.cloudbuild.v1.CloudBuild"
    name: str  # e.g. "CreateBuild"
    request_type: type
    response_type: type
    handler: Handler
    rules: list[HttpRule] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.service}.{self.name}"


@dataclass
class AdminRequest:
    body: dict[str, Any]
    params: dict[str, str]  # regex groups of the admin route
    query: dict[str, str]


AdminHandler = Callable[[AdminRequest], Any]


def _operation_rules(prefixes: tuple[str, ...]) -> dict[str, list[HttpRule]]:
    names = [
        "operations/**",
        "projects/*/locations/*/operations/*",
        "projects/*/locations/*/*/*/operations/*",
    ]
    get = [{"method": "get", "uri": f"/{p}/{{name={n}}}"} for p in prefixes for n in names]
    cancel = [{"method": "post", "uri": f"/{p}/{{name={n}}}:cancel"} for p in prefixes for n in names]
    delete = [{"method": "delete", "uri": f"/{p}/{{name={n}}}"} for p in prefixes for n in names]
    listing = [
        {"method": "get", "uri": f"/{p}/{{name={n}}}/operations"}
        for p in prefixes
        for n in ("projects/*/locations/*", "projects/*/locations/*/*/*")
    ]
    return {
        "GetOperation": rules_from_options(get),
        "CancelOperation": rules_from_options(cancel),
        "DeleteOperation": rules_from_options(delete),
        "ListOperations": rules_from_options(listing),
    }


def query_to_dict(descriptor: Any, args: MultiDict[str, str]) -> dict[str, Any]:
    """Query parameters (``pageSize=2``, ``readMask=a,b``, ``a.b=x``) → the request's JSON mapping."""
    out: dict[str, Any] = {}
    for key in args:
        if key.startswith("$"):
            continue
        values = args.getlist(key)
        desc = descriptor
        target = out
        parts = key.split(".")
        for index, part in enumerate(parts):
            fld = desc.fields_by_camelcase_name.get(part) or desc.fields_by_name.get(part)
            if fld is None:
                break
            if index == len(parts) - 1:
                target[fld.json_name] = values if fld.is_repeated else values[-1]
            elif fld.message_type is not None:
                desc = fld.message_type
                target = target.setdefault(fld.json_name, {})
            else:
                break
    return out


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = camel(dotted).split(".")
    for part in parts[:-1]:
        child = data.get(part)
        if not isinstance(child, dict):
            child = {}
            data[part] = child
        data = child
    data[parts[-1]] = value


def _json_response(status: int, payload: Any) -> Response:
    return Response(json.dumps(payload, indent=None), status=status, mimetype="application/json")


class ApiServer:
    """One emulator process: its RPC methods, operations, faults and admin endpoints."""

    def __init__(self, name: str, host: str, port: int, grpc_port: int | None = None) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.grpc_port = grpc_port
        self.faults = FaultInjector()
        self.operations = OperationStore()
        self.methods: list[RpcMethod] = []
        self._admin: list[tuple[str, re.Pattern[str], AdminHandler]] = []
        self._reset_hooks: list[Callable[[], None]] = []
        self._shutdown_hooks: list[Callable[[], None]] = []
        self._health: list[Callable[[], dict[str, Any]]] = []
        self._http: BaseWSGIServer | None = None
        self._grpc: Any = None
        self._add_builtin_admin()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- registration -------------------------------------------------------------------------------------

    def add_method(
        self,
        service: str,
        name: str,
        request_type: type,
        response_type: type,
        handler: Handler,
        rules: list[HttpRule] | None = None,
    ) -> RpcMethod:
        method = RpcMethod(service, name, request_type, response_type, handler, list(rules or []))
        self.methods.append(method)
        return method

    def add_operations(self, prefixes: tuple[str, ...] = ("v1",)) -> None:
        """Serve ``google.longrunning.Operations`` from :attr:`operations` under the given URL prefixes."""
        rules = _operation_rules(prefixes)

        def get(request: operations_pb2.GetOperationRequest) -> operations_pb2.Operation:
            return self.operations.get(request.name)

        def cancel(request: operations_pb2.CancelOperationRequest) -> empty_pb2.Empty:
            self.operations.cancel(request.name)
            return empty_pb2.Empty()

        def delete(request: operations_pb2.DeleteOperationRequest) -> empty_pb2.Empty:
            self.operations.delete(request.name)
            return empty_pb2.Empty()

        def listing(request: operations_pb2.ListOperationsRequest) -> operations_pb2.ListOperationsResponse:
            return operations_pb2.ListOperationsResponse(operations=self.operations.list(request.name))

        def wait(request: operations_pb2.WaitOperationRequest) -> operations_pb2.Operation:
            return self.operations.get(request.name)

        ops = operations_pb2
        self.add_method(
            OPERATIONS_SERVICE,
            "GetOperation",
            ops.GetOperationRequest,
            ops.Operation,
            get,
            rules["GetOperation"],
        )
        self.add_method(
            OPERATIONS_SERVICE,
            "CancelOperation",
            ops.CancelOperationRequest,
            empty_pb2.Empty,
            cancel,
            rules["CancelOperation"],
        )
        self.add_method(
            OPERATIONS_SERVICE,
            "DeleteOperation",
            ops.DeleteOperationRequest,
            empty_pb2.Empty,
            delete,
            rules["DeleteOperation"],
        )
        self.add_method(
            OPERATIONS_SERVICE,
            "ListOperations",
            ops.ListOperationsRequest,
            ops.ListOperationsResponse,
            listing,
            rules["ListOperations"],
        )
        self.add_method(
            OPERATIONS_SERVICE, "WaitOperation", ops.WaitOperationRequest, ops.Operation, wait, []
        )

    def add_unimplemented(self, service: str, base_transport: type, skip: set[str], label: str) -> None:
        """Answer UNIMPLEMENTED (with a clear message) on every other REST route of the client's service."""
        skip = skip | {
            "GetOperation",
            "ListOperations",
            "CancelOperation",
            "DeleteOperation",
            "WaitOperation",
        }
        for attribute in sorted(dir(base_transport)):
            if not attribute.startswith("_Base") or attribute[5:] in skip:
                continue
            holder = getattr(base_transport, attribute)
            if not hasattr(holder, "_get_http_options"):
                continue
            name = attribute[5:]
            self.add_method(
                service,
                name,
                empty_pb2.Empty,
                empty_pb2.Empty,
                _unimplemented(name, label),
                rules_from_options(holder._get_http_options()),
            )

    def add_admin(self, verb: str, path_regex: str, handler: AdminHandler) -> None:
        """An admin endpoint under ``/_emulator/``; ``path_regex`` is matched against the rest of the path."""
        self._admin.append((verb.upper(), re.compile(path_regex), handler))

    def on_reset(self, hook: Callable[[], None]) -> None:
        self._reset_hooks.append(hook)

    def on_shutdown(self, hook: Callable[[], None]) -> None:
        self._shutdown_hooks.append(hook)

    def add_health_info(self, info: Callable[[], dict[str, Any]]) -> None:
        self._health.append(info)

    # -- calls --------------------------------------------------------------------------------------------

    def invoke(self, method: RpcMethod, request: Any) -> Any:
        self.faults.before_call(method.name, method.full_name)
        return method.handler(request)

    def reset(self) -> None:
        self.faults.clear()
        self.operations.clear()
        for hook in self._reset_hooks:
            hook()

    def _add_builtin_admin(self) -> None:
        def health(_: AdminRequest) -> Any:
            info: dict[str, Any] = {"status": "ok", "service": self.name, "grpcPort": self.grpc_port}
            for extra in self._health:
                info.update(extra())
            return info

        def add_fault(request: AdminRequest) -> Any:
            body = request.body
            try:
                fault = self.faults.fail_next(
                    str(body["method"]),
                    body.get("code", "UNAVAILABLE"),
                    int(body.get("count", 1)),
                    body.get("message"),
                )
            except (KeyError, ValueError) as error:
                raise invalid(f"bad fault: {error}") from error
            return {"method": fault.method, "code": fault.code, "remaining": fault.remaining}

        def add_latency(request: AdminRequest) -> Any:
            try:
                latency = self.faults.add_latency(
                    str(request.body.get("method", "*")), float(request.body["seconds"])
                )
            except (KeyError, ValueError) as error:
                raise invalid(f"bad latency: {error}") from error
            return {"method": latency.method, "seconds": latency.seconds}

        def clear_faults(_: AdminRequest) -> Any:
            self.faults.clear()
            return self.faults.snapshot()

        def reset(_: AdminRequest) -> Any:
            self.reset()
            return {"reset": True}

        self.add_admin("GET", r"health", health)
        self.add_admin("GET", r"faults", lambda _: self.faults.snapshot())
        self.add_admin("POST", r"faults", add_fault)
        self.add_admin("DELETE", r"faults", clear_faults)
        self.add_admin("POST", r"latency", add_latency)
        self.add_admin("POST", r"reset", reset)

    # -- REST ---------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            response = self._dispatch(request)
        except ApiError as error:
            response = _json_response(error.http_status, error.rest_body())
        except Exception as error:  # an emulator bug must still answer like a server, and be visible
            log.error("internal error on %s %s\n%s", request.method, request.path, traceback.format_exc())
            failure = ApiError("INTERNAL", f"emulator error: {error!r}")
            response = _json_response(failure.http_status, failure.rest_body())
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/_emulator/"):
            return self._dispatch_admin(request, path[len("/_emulator/") :])
        for method in self.methods:
            for rule in method.rules:
                if rule.verb != request.method:
                    continue
                bound = rule.template.match(path)
                if bound is None:
                    continue
                message = self._rest_request(method, rule, bound, request)
                result = self.invoke(method, message)
                return Response(json_format.MessageToJson(_pb(result)), mimetype="application/json")
        raise ApiError(
            "NOT_FOUND", f"The requested URL {request.method} {path} was not found on this server."
        )

    def _rest_request(
        self, method: RpcMethod, rule: HttpRule, bound: dict[str, str], request: Request
    ) -> Any:
        descriptor = pb_class(method.request_type).DESCRIPTOR
        data = query_to_dict(descriptor, request.args)
        if rule.body:
            raw = request.get_data(as_text=True)
            try:
                body = json.loads(raw) if raw.strip() else {}
            except json.JSONDecodeError as error:
                raise invalid(f"Invalid JSON payload received. {error}") from error
            if rule.body == "*":
                if not isinstance(body, dict):
                    raise invalid("Invalid JSON payload received: expected an object.")
                data.update(body)
            else:
                _set_path(data, rule.body, body)
        for name, value in bound.items():
            _set_path(data, name, value)
        try:
            return from_dict(method.request_type, data)
        except json_format.ParseError as error:
            raise invalid(f"Invalid JSON payload received. {error}") from error

    def _dispatch_admin(self, request: Request, rest: str) -> Response:
        for verb, pattern, handler in self._admin:
            found = pattern.fullmatch(rest)
            if found is None or verb != request.method:
                continue
            raw = request.get_data(as_text=True)
            try:
                body = json.loads(raw) if raw.strip() else {}
            except json.JSONDecodeError as error:
                raise invalid(f"admin body is not JSON: {error}") from error
            admin = AdminRequest(
                body=body if isinstance(body, dict) else {"value": body},
                params=found.groupdict(),
                query=dict(request.args.items()),
            )
            result = handler(admin)
            if isinstance(result, Response):
                return result
            return _json_response(200, result)
        raise ApiError("NOT_FOUND", f"no admin endpoint {request.method} /_emulator/{rest}")

    # -- gRPC ---------------------------------------------------------------------------------------------

    def _start_grpc(self) -> None:
        import grpc

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        by_service: dict[str, dict[str, Any]] = {}
        for method in self.methods:
            by_service.setdefault(method.service, {})[method.name] = grpc.unary_unary_rpc_method_handler(
                self._grpc_behaviour(method),
                request_deserializer=deserializer(method.request_type),
                response_serializer=serialize,
            )
        for service, handlers in by_service.items():
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
        bound = server.add_insecure_port(f"{self.host}:{self.grpc_port}")
        if not bound:
            raise OSError(f"cannot bind gRPC port {self.host}:{self.grpc_port}")
        server.start()
        self._grpc = server

    def _grpc_behaviour(self, method: RpcMethod) -> Callable[[Any, Any], Any]:
        import grpc

        def behaviour(request: Any, context: Any) -> Any:
            try:
                return self.invoke(method, request)
            except ApiError as error:
                context.abort(getattr(grpc.StatusCode, error.code), error.message)
            except Exception as error:
                log.error("internal error on %s\n%s", method.full_name, traceback.format_exc())
                context.abort(grpc.StatusCode.INTERNAL, f"emulator error: {error!r}")

        return behaviour

    # -- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind and serve in background threads (returns once the ports are bound)."""
        if self.grpc_port:
            self._start_grpc()
        self._http = make_server(self.host, self.port, self, threaded=True)
        threading.Thread(target=self._http.serve_forever, name=f"{self.name}-http", daemon=True).start()

    def stop(self) -> None:
        for hook in self._shutdown_hooks:
            with contextlib.suppress(Exception):
                hook()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._grpc is not None:
            self._grpc.stop(grace=1).wait()
            self._grpc = None

    def serve_forever(self) -> None:
        """Serve until SIGTERM/SIGINT, then stop every process the emulator started."""
        stopping = threading.Event()

        def on_signal(signum: int, _frame: Any) -> None:
            stopping.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        grpc_note = f", gRPC on {self.host}:{self.grpc_port}" if self.grpc_port else ""
        log.warning("%s emulator serving REST on %s%s", self.name, self.base_url, grpc_note)
        try:
            while not stopping.wait(0.5):
                pass
        finally:
            self.stop()


def _unimplemented(name: str, label: str) -> Handler:
    def handler(_: Any) -> Any:
        raise ApiError("UNIMPLEMENTED", f"{name} is not supported by the {label} emulator")

    return handler


def _pb(message: Any) -> Any:
    from emulators.apiserver.messages import to_pb

    return to_pb(message)


def admin_json(payload: Any, status: int = 200) -> Response:
    return _json_response(status, payload)


def message_dict(message: Any) -> dict[str, Any]:
    return to_dict(message)
