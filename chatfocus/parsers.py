"""The one JSON parser of the API (DESIGN.md section 2), kept apart from api.py: DRF imports it while loading.

A body is UTF-8, nests at most MAX_DEPTH levels and holds only numbers that are finite doubles. Anything
else is a 400 `malformed_json` before a view runs: Python's parser overflows the C stack on deep nesting
(RecursionError), and reads `1e400` as infinity, which neither PostgreSQL's jsonb, SQLite's JSON nor our
renderer accepts.
"""

import json
import math
import re
import sys
from itertools import accumulate

from rest_framework import negotiation, parsers
from rest_framework.exceptions import NotAcceptable, ParseError

MAX_DEPTH = 64

# A JSON string (escapes included), to drop before counting brackets that are not inside one.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1}
# Only a number with a 3-digit exponent or 309+ digits can fall outside a double's range: bodies without one
# are parsed at full C speed, without a Python call per number.
_MAYBE_HUGE_NUMBER = re.compile(r"[eE][+-]?0*[1-9][0-9]{2}|[0-9]{309}")


class MalformedJSON(ValueError):
    """The body is not JSON this API accepts."""


def _reject_constant(name: str):
    raise MalformedJSON(f"{name} is not a JSON number this API accepts; numbers must be finite.")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise MalformedJSON("Numbers must be finite doubles (this one overflows).")
    return number


def _double_range_int(text: str) -> int:
    number = int(text)
    if abs(number) > sys.float_info.max:
        raise MalformedJSON("Numbers must be finite doubles (this one overflows).")
    return number


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest in a JSON text (brackets inside strings do not count)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return 0  # cannot exceed the limit: skip the scan
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_DEPTH_DELTA.__getitem__, brackets)), default=0)


def loads(body: bytes | str):
    """Parse a request body by the API's rules; MalformedJSON (a ValueError) says why it was refused."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise MalformedJSON("The request body is not valid UTF-8.") from error
    if nesting_depth(body) > MAX_DEPTH:
        raise MalformedJSON(f"JSON may nest at most {MAX_DEPTH} levels deep.")
    hooks = {"parse_constant": _reject_constant}
    if _MAYBE_HUGE_NUMBER.search(body):
        hooks.update(parse_float=_finite_float, parse_int=_double_range_int)
    try:
        return json.loads(body, **hooks)
    except MalformedJSON:
        raise
    except (ValueError, RecursionError) as error:
        raise MalformedJSON("The request body is not valid JSON.") from error


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with the API's rules (see `loads`)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return loads(stream.read())
        except MalformedJSON as error:
            raise ParseError(str(error)) from error


class ContentNegotiation(negotiation.DefaultContentNegotiation):
    """An `Accept` the API cannot honour gets JSON anyway (clients read the status and the error shape), not a 406."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type
