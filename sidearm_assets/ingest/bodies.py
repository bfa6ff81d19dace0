"""A request body read and parsed so that nothing a client sends can hurt the API.

The size is refused on `Content-Length` before a byte is read, and counted while reading (a
chunked body has no length); the whole body must arrive within `timeout` seconds; JSON is UTF-8,
at most `MAX_DEPTH` deep (checked before the parser recurses), without NaN or Infinity, without
numbers longer than `MAX_NUMBER_CHARS` and without lone surrogates (`"\\ud800"` is valid JSON but
no text). Each refusal is an `ingest.errors` exception naming the rule.
"""

from __future__ import annotations

import asyncio
import json

from sidearm_assets.ingest.errors import InvalidInput, SlowSender, TooLarge, UnsupportedMediaType

MAX_BODY_BYTES = 4096
BODY_TIMEOUT_SECONDS = 5.0
MAX_DEPTH = 8
MAX_NUMBER_CHARS = 24


def check_declared(headers) -> None:
    """Refuse on the headers alone: a declared length over the limit, a body that is not JSON."""
    declared = headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > MAX_BODY_BYTES:
        raise TooLarge("body too large", f"an event is at most {MAX_BODY_BYTES} bytes of JSON; "
                                         f"Content-Length says {int(declared)}", rule="Content-Length")
    media = (headers.get("content-type") or "").split(";")[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType("unsupported media type", f"the body must be application/json, not {media!r}",
                                   rule="Content-Type")


async def read_limited(chunks, limit: int = MAX_BODY_BYTES, timeout: float = BODY_TIMEOUT_SECONDS) -> bytes:
    """At most `limit` bytes from an async iterator of chunks, all within `timeout` seconds."""
    body = bytearray()
    try:
        async with asyncio.timeout(timeout):
            async for chunk in chunks:
                body += chunk
                if len(body) > limit:
                    raise TooLarge("body too large", f"an event is at most {limit} bytes of JSON", rule="body size")
    except TimeoutError:
        raise SlowSender("request timeout", f"the body did not arrive within {timeout:g} s",
                         rule="request timeout") from None
    return bytes(body)


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of `[` and `{` outside strings (the parser never sees a deeper body)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _bad_json(rule: str, detail: str) -> InvalidInput:
    return InvalidInput("invalid JSON", detail, rule=rule)


def _number(text: str, kind):
    if len(text) > MAX_NUMBER_CHARS:
        raise _bad_json("number size", f"a number of {len(text)} characters; at most {MAX_NUMBER_CHARS}")
    value = kind(text)
    if kind is float and value in (float("inf"), float("-inf")):
        raise _bad_json("number size", f"the number {text} is out of range")
    if kind is float and value.is_integer() and abs(value) < 2**53:
        return int(value)  # `101.0` is the integer 101 (JSON and JSON Schema do not tell them apart)
    return value


def _constant(name: str):
    raise _bad_json("number", f"{name} is not a JSON number")


def _check_text(value) -> None:
    """Refuse strings (and keys) that cannot be written as UTF-8: lone surrogates."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _bad_json("unicode", "a string holds a lone surrogate (\\ud800-\\udfff without its pair)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)
    elif isinstance(value, list):
        for item in value:
            _check_text(item)


def parse_json(raw: bytes, required: bool = True):
    """The body's JSON value; None for an empty optional body."""
    if not raw.strip():
        if required:
            raise InvalidInput("invalid body", "the body must be a JSON object", rule="body")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad_json("utf-8", f"the body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    if nesting_depth(raw) > MAX_DEPTH:
        raise _bad_json("nesting", f"the body nests arrays or objects more than {MAX_DEPTH} deep")
    try:
        value = json.loads(text, parse_int=lambda s: _number(s, int), parse_float=lambda s: _number(s, float),
                           parse_constant=_constant)
    except ValueError as exc:
        raise _bad_json("syntax", f"the body is not JSON: {exc}") from None
    _check_text(value)
    return value
