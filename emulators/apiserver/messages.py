"""Proto-plus and raw protobuf messages ⇄ JSON (the REST wire form) and bytes (the gRPC wire form)."""

from __future__ import annotations

import datetime as dt
import json
import typing
from typing import Any, TypeVar

import proto
from google.protobuf import any_pb2, json_format, timestamp_pb2
from google.protobuf.message import Message as PbMessage

M = TypeVar("M")


def is_proto_plus(cls_or_msg: Any) -> bool:
    cls = cls_or_msg if isinstance(cls_or_msg, type) else type(cls_or_msg)
    return issubclass(cls, proto.Message)


def to_pb(message: Any) -> PbMessage:
    """The raw protobuf behind ``message`` (itself when it already is one)."""
    if isinstance(message, proto.Message):
        cls: Any = type(message)
        pb: PbMessage = cls.pb(message)
        return pb
    if isinstance(message, PbMessage):
        return message
    raise TypeError(f"not a protobuf message: {type(message).__name__}")


def pb_class(cls: Any) -> type[PbMessage]:
    if issubclass(cls, proto.Message):
        raw: type[PbMessage] = cls.pb()
        return raw
    if issubclass(cls, PbMessage):
        plain: type[PbMessage] = cls
        return plain
    raise TypeError(f"not a protobuf message class: {cls.__name__}")


def to_dict(message: Any, proto_names: bool = False) -> dict[str, Any]:
    """JSON mapping of ``message``: camelCase names (or proto names), enum names, RFC 3339 times."""
    result: dict[str, Any] = json_format.MessageToDict(
        to_pb(message), preserving_proto_field_name=proto_names
    )
    return result


def to_json(message: Any) -> str:
    return json.dumps(to_dict(message))


def from_dict(cls: type[M], data: dict[str, Any]) -> M:
    """Parse the JSON mapping ``data`` (camelCase or proto names) into ``cls`` (proto-plus or raw)."""
    raw = pb_class(cls)()
    json_format.ParseDict(data, raw, ignore_unknown_fields=True)
    if issubclass(cls, proto.Message):
        plus: Any = cls
        wrapped: M = plus.wrap(raw)
        return wrapped
    parsed: Any = raw
    return typing.cast(M, parsed)


def serialize(message: Any) -> bytes:
    data: bytes = to_pb(message).SerializeToString()
    return data


def deserializer(cls: Any) -> Any:
    """A gRPC request deserialiser for ``cls``."""
    if issubclass(cls, proto.Message):
        return cls.deserialize
    return cls.FromString


def pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(to_pb(message))
    return packed


def timestamp(moment: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment.astimezone(dt.UTC).replace(tzinfo=None))
    return stamp


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def camel(name: str) -> str:
    """``project_id`` → ``projectId`` (the protobuf JSON name rule), per dotted segment."""
    return ".".join(_camel_segment(part) for part in name.split("."))


def _camel_segment(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)
