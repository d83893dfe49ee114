"""One problem collector for everything this project parses: events, notifications and the configuration.

A parser reads its input through :class:`Reader` objects that share one :class:`Problems`. Every typed
read records what is wrong as ``path: message`` (``spec.triggers[0].event: required``,
``message.attributes: at most 100 entries, got 101``) and returns a harmless default, so the parser carries
on and reports *every* problem at once; at the end ``raise_if_any(factory)`` turns the list into the
caller's error (:class:`~shared.errors.InvalidInput` for events, :class:`~shared.errors.ConfigError` for
the configuration).

Hostile input must never escape as anything but such a permanent error, so the value parsers here
(:func:`to_int64`, :func:`to_timestamp`) raise only :class:`ValueError` with a readable reason, whatever
they are given (huge numbers, NaN, infinities, very long strings, odd types), and a problem shows at most a
few dozen characters of the value that caused it.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar, overload

T = TypeVar("T")

#: Problems kept per parse; the rest are counted. A hostile list of a million bad items must not produce a
#: million messages (the ledger keeps 100 per rejected event anyway).
MAX_PROBLEMS = 100

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
#: The last second Python's ``datetime`` can hold (9999-12-31T23:59:59Z), as epoch seconds.
MAX_EPOCH_SECONDS = 253_402_300_799
#: RFC 3339 needs at most 35 characters (``2026-11-22T10:00:00.123456789+05:30``); more is not a timestamp.
MAX_TIMESTAMP_CHARS = 64

_INT64_TEXT = re.compile(r"[+-]?[0-9]{1,20}")
_FRACTION = re.compile(r"\.([0-9]+)")

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlong = 40
_repr.maxlevel = 2
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 4


def shown(value: Any) -> str:
    """A short ``repr`` of ``value`` for a problem message: hostile values cannot make problems huge."""
    try:
        return _repr.repr(value)
    except ValueError:  # an int too long to print (Python limits int-to-text conversion)
        return f"<{type(value).__name__}>"


def utf8_size(text: str) -> int:
    """The UTF-8 size of ``text`` in bytes (lone surrogates, which JSON can carry, count as 3)."""
    return len(text.encode("utf-8", "surrogatepass"))


# ------------------------------------------------------------------------------------------ value parsers


def to_int64(value: Any) -> int:
    """A signed 64-bit integer from a number or a decimal string (Google APIs send int64 as a JSON string).

    Raises :class:`ValueError` with the reason for anything else, including out-of-range values.
    """
    if isinstance(value, bool):
        raise ValueError("must be an integer, got a boolean")
    number: int
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ValueError(f"must be an integer (string or number), got {shown(value)}")
        number = int(value)
    elif isinstance(value, str) and _INT64_TEXT.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        raise ValueError(f"must be an integer (string or number), got {shown(value)}")
    if not INT64_MIN <= number <= INT64_MAX:
        raise ValueError(f"must be a 64-bit integer (at most {INT64_MAX} in size), got {shown(value)}")
    return number


def to_timestamp(value: Any) -> datetime:
    """An aware UTC datetime from RFC 3339 (any fraction length, ``Z`` or an offset) or epoch seconds.

    Raises :class:`ValueError` with the reason for anything else: the wrong type, text that is not a
    timestamp, epoch seconds outside 0..9999-12-31, NaN, infinities, or an offset that moves the instant out
    of the representable range.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"must be an RFC 3339 timestamp or epoch seconds, got {type(value).__name__}")
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_TIMESTAMP_CHARS:
            raise ValueError(
                f"too long for a timestamp ({len(text)} characters, at most {MAX_TIMESTAMP_CHARS})"
            )
        if text.isascii() and text.isdigit():
            return _from_epoch(int(text))
        return _from_rfc3339(text)
    return _from_epoch(value)


def _from_epoch(seconds: int | float) -> datetime:
    # Checked before converting: datetime.fromtimestamp raises OverflowError or OSError past its range.
    # (Compared as is, not through math.isfinite, which overflows on an int too big for a float.)
    if not (0 <= seconds <= MAX_EPOCH_SECONDS):
        raise ValueError(f"epoch seconds must be between 0 and {MAX_EPOCH_SECONDS}, got {shown(seconds)}")
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):  # rounding at the very top of the range
        raise ValueError(f"epoch seconds out of range: {shown(seconds)}") from None


def _from_rfc3339(text: str) -> datetime:
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python reads at most 6 fractional digits; Google sends up to 9. Keep the first 6.
    text = _FRACTION.sub(lambda match: "." + (match.group(1) + "000000")[:6], text, count=1)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("not an RFC 3339 timestamp or epoch seconds") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is in year 10000 once in UTC
        raise ValueError("out of range once converted to UTC") from None


# ---------------------------------------------------------------------------------------------- collector


class Problems:
    """Every problem found while parsing one input, each as ``path: message``.

    ``mapping_word`` names a JSON object in messages (``object`` for events, ``mapping`` for YAML); ``root``
    names the whole input when it is not a mapping at all.
    """

    def __init__(self, *, mapping_word: str = "object", root: str = "(payload)") -> None:
        self.items: list[str] = []
        self.omitted = 0
        self.mapping_word = mapping_word
        self.root = root

    def add(self, path: str, message: str) -> None:
        if len(self.items) >= MAX_PROBLEMS:
            self.omitted += 1
            return
        self.items.append(f"{path or self.root}: {message}")

    def __len__(self) -> int:
        return len(self.items) + self.omitted

    def listing(self) -> list[str]:
        """The problems, with a last line counting those not kept."""
        if self.omitted:
            return [*self.items, f"... and {self.omitted} more problem(s)"]
        return list(self.items)

    def reader(self, data: Any, path: str = "") -> Reader:
        """A reader over ``data`` (a mapping; anything else is recorded as a problem at ``path``)."""
        return Reader(data, path, self)

    def raise_if_any(self, factory: Callable[[list[str]], BaseException]) -> None:
        """Raise ``factory(problems)`` when anything was recorded."""
        if len(self):
            raise factory(self.listing())


class Reader:
    """Typed reads of one mapping's fields; each bad field is recorded under its dotted/indexed path."""

    def __init__(self, data: Any, path: str, problems: Problems) -> None:
        self.path = path
        self.problems = problems
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            problems.add(
                path, f"must be a{_an(problems.mapping_word)} {problems.mapping_word}, got {_kind(data)}"
            )
            data = {}
        self.data: Mapping[Any, Any] = data

    # paths and raw access ------------------------------------------------------------------------------

    def at(self, key: str) -> str:
        """The path of ``key`` below this reader (``spec.ledger.lease``)."""
        return f"{self.path}.{key}" if self.path else key

    def add(self, key: str, message: str) -> None:
        """Record a problem about ``key`` (a check the typed reads do not make)."""
        self.problems.add(self.at(key), message)

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def unknown(self, allowed: set[str]) -> None:
        """Record every key not in ``allowed``."""
        for key in self.data:
            if key not in allowed:
                self.add(str(key), f"unknown field (allowed: {', '.join(sorted(allowed))})")

    def _missing(self, key: str, value: Any, required: bool) -> bool:
        if value is None or value == "":
            if required:
                self.add(key, "required")
            return True
        return False

    # scalars -------------------------------------------------------------------------------------------

    @overload
    def string(self, key: str, default: str, *, required: bool = ..., max_bytes: int | None = ...) -> str: ...

    @overload
    def string(
        self, key: str, default: None = None, *, required: bool = ..., max_bytes: int | None = ...
    ) -> str | None: ...

    def string(
        self, key: str, default: str | None = None, *, required: bool = False, max_bytes: int | None = None
    ) -> str | None:
        """A string (a number is accepted and written as text); empty counts as absent."""
        value = self.data.get(key)
        if self._missing(key, value, required):
            return default
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return str(value)
            except ValueError:  # an int too long to write out
                self.add(key, f"must be a string, got {_kind(value)}")
                return default
        if not isinstance(value, str):
            self.add(key, f"must be a string, got {_kind(value)}")
            return default
        if max_bytes is not None and (size := utf8_size(value)) > max_bytes:
            self.add(key, f"must be at most {max_bytes} bytes, got {size}")
            return default
        return value

    def integer(
        self, key: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        """A literal integer (not text), optionally within ``minimum..maximum``."""
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(key, f"must be an integer, got {shown(value)}")
            return default
        low = minimum if minimum is not None else INT64_MIN
        high = maximum if maximum is not None else INT64_MAX
        if not low <= value <= high:
            self.add(key, f"must be between {low} and {high}, got {shown(value)}")
        return value

    def int64(self, key: str, *, required: bool = False, default: int = 0) -> int:
        """An int64 as Google APIs send it: a decimal string or a number (see :func:`to_int64`)."""
        value = self.data.get(key)
        if self._missing(key, value, required):
            return default
        try:
            return to_int64(value)
        except ValueError as error:
            self.add(key, str(error))
            return default

    def number(
        self, key: str, default: float, *, minimum: float | None = None, maximum: float | None = None
    ) -> float:
        """A finite number, optionally within ``minimum..maximum``."""
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.add(key, f"must be a number, got {shown(value)}")
            return default
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            self.add(key, f"must be a finite number, got {shown(value)}")
            return default
        if minimum is not None and number < minimum:
            self.add(key, f"must be at least {minimum:g}, got {shown(value)}")
        elif maximum is not None and number > maximum:
            self.add(key, f"must be at most {maximum:g}, got {shown(value)}")
        return number

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self.add(key, f"must be true or false, got {shown(value)}")
            return default
        return value

    def timestamp(self, key: str, *, required: bool = False) -> datetime | None:
        """An aware UTC datetime (see :func:`to_timestamp`); None when absent or bad."""
        value = self.data.get(key)
        if self._missing(key, value, required):
            return None
        try:
            return to_timestamp(value)
        except ValueError as error:
            self.add(key, f"{error}: {shown(value)}")
            return None

    def convert(self, key: str, parse: Callable[[Any], T], default: T) -> T:
        """``parse(value)`` (``default`` when absent); a :class:`ValueError` becomes the problem."""
        value = self.data.get(key, default)
        try:
            return parse(value)
        except ValueError as error:
            self.add(key, str(error))
            return default

    # containers ----------------------------------------------------------------------------------------

    def mapping(self, key: str, *, required: bool = False) -> Mapping[Any, Any]:
        """The raw mapping at ``key`` ({} when absent or not a mapping)."""
        value = self.data.get(key)
        if value is None:
            if required:
                self.add(key, "required")
            return {}
        if not isinstance(value, Mapping):
            word = self.problems.mapping_word
            self.add(key, f"must be a{_an(word)} {word}, got {_kind(value)}")
            return {}
        return value

    def child(self, key: str, *, required: bool = False) -> Reader:
        """A reader over the mapping at ``key``, its problems under ``path.key``."""
        if required and self.data.get(key) is None:
            self.add(key, "required")
        return Reader(self.data.get(key), self.at(key), self.problems)

    def sequence(self, key: str, *, required: bool = False, max_items: int | None = None) -> list[Any]:
        """The raw list at ``key`` ([] when absent or not a list)."""
        value = self.data.get(key)
        if value is None:
            if required:
                self.add(key, "required")
            return []
        if not isinstance(value, list):
            self.add(key, f"must be a list, got {_kind(value)}")
            return []
        if max_items is not None and len(value) > max_items:
            self.add(key, f"at most {max_items} items, got {len(value)}")
            return []
        return value

    def items(self, key: str) -> list[Reader]:
        """A reader per item of the list at ``key``, their problems under ``path.key[index]``."""
        return [
            Reader(item, f"{self.at(key)}[{index}]", self.problems)
            for index, item in enumerate(self.sequence(key))
        ]

    def string_list(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        """A list of strings (a single string counts as a list of one)."""
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.add(key, "must be a list of strings")
            return default
        return tuple(value)

    def string_map(
        self,
        key: str,
        *,
        max_entries: int | None = None,
        max_key_bytes: int | None = None,
        max_value_bytes: int | None = None,
        max_chars: int | None = None,
    ) -> dict[str, str]:
        """A mapping of strings (numbers written as text), each entry checked against the limits given.

        ``max_chars`` bounds keys and values in characters (GCP labels count characters *and* bytes).
        """
        value = self.data.get(key)
        if value is None:
            return {}
        word = self.problems.mapping_word
        if not isinstance(value, Mapping):
            self.add(key, f"must be a{_an(word)} {word} of strings")
            return {}
        if max_entries is not None and len(value) > max_entries:
            self.add(key, f"at most {max_entries} entries, got {len(value)}")
            return {}
        result: dict[str, str] = {}
        for name, item in value.items():
            where = f"{self.at(key)}.{name}"
            if not isinstance(item, (str, int, float)) or isinstance(item, bool):
                self.problems.add(where, "must be a string")
                continue
            text, label = str(item), str(name)
            for what, part, limit in (
                ("key", label, max_key_bytes),
                ("value", text, max_value_bytes),
            ):
                if limit is not None and (size := utf8_size(part)) > limit:
                    self.problems.add(where, f"{what} must be at most {limit} bytes, got {size}")
                if max_chars is not None and len(part) > max_chars:
                    self.problems.add(
                        where, f"{what} must be at most {max_chars} characters, got {len(part)}"
                    )
            result[label] = text
        return result


def _kind(value: Any) -> str:
    return type(value).__name__


def _an(word: str) -> str:
    return "n" if word[:1] in "aeiou" else ""
