"""Wire-format checks of gRPC request messages, before protobuf parses them.

Parsing is where a small message can cost the most memory: every element of
a repeated string or message field (and every map entry, every shape ``dim``)
becomes a parsed object of 16 to 200 bytes from as little as 2 bytes on the
wire. Measured: a 60 MB ``PredictRequest`` of 30M empty ``string_val`` parsed
into ~970 MB before any handler ran.

Contract of :func:`checked_parser`: the deserializer it returns walks the
message's wire format guided by the message descriptor (descending into
message fields, skipping over scalars, strings, ``tensor_content`` and packed
runs of numbers without copying them) and counts field occurrences at every
level; a packed run counts once, each element of an unpacked repeated field
or map counts once. A message with more than ``max_fields`` occurrences,
nested deeper than :data:`MAX_DEPTH`, or with malformed wire data (truncated
varint or length, groups) is not parsed: it deserializes to a :class:`Refused`
that the RPC handler answers INVALID_ARGUMENT with its reason. (A deserializer
that raises would make gRPC answer INTERNAL.) The walk costs O(occurrences)
and stops at the budget, so it is cheap for the usual few-field requests.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

#: Default budget of field occurrences in one request (see the module docstring):
#: parsing that many costs at most ~25 MB; an image batch needs one per image.
MAX_REQUEST_FIELDS = 1 << 18
#: Deepest message nesting walked (protobuf's own default recursion limit is 100).
MAX_DEPTH = 64


@dataclass(frozen=True)
class Refused:
    """A request message refused before parsing, and why (for INVALID_ARGUMENT)."""
    reason: str


class _Malformed(Exception):
    pass


def _varint(data: bytes, i: int, end: int) -> tuple[int, int]:
    """(value, next index) of the varint at ``data[i]``; _Malformed past ``end`` or > 64 bits."""
    value = shift = 0
    while True:
        if i >= end:
            raise _Malformed("truncated varint")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise _Malformed("varint longer than 10 bytes")


def _message_fields(desc, cache: dict) -> dict:
    """{field number: sub-message descriptor or None} of ``desc`` (maps are repeated entries)."""
    table = cache.get(desc.full_name)
    if table is None:
        table = {f.number: f.message_type for f in desc.fields}
        cache[desc.full_name] = table
    return table


_TABLES: dict = {}


def wire_problem(data: bytes, desc, max_fields: int = MAX_REQUEST_FIELDS) -> Optional[str]:
    """Why ``data`` (a serialized message of type ``desc``) must not be parsed, or None."""
    count, i = 0, 0
    stack = [(len(data), _message_fields(desc, _TABLES))]  # (end of message, its fields)
    end, table = stack[-1]
    try:
        while True:
            if i >= end:
                if i > end:
                    raise _Malformed("field runs past the end of its message")
                stack.pop()
                if not stack:
                    return None
                end, table = stack[-1]
                continue
            b = data[i]
            if b < 0x80:  # one-byte tag: the usual case, without a call
                tag, i = b, i + 1
            else:
                tag, i = _varint(data, i, end)
            count += 1
            if count > max_fields:
                return (f"request has more than {max_fields} fields and repeated values "
                        "(send numeric tensors as tensor_content, as tf.make_tensor_proto does)")
            wire = tag & 7
            if wire == 0:
                _, i = _varint(data, i, end)
            elif wire == 1:
                i += 8
            elif wire == 5:
                i += 4
            elif wire == 2:
                b = data[i] if i < end else 0x80
                if b < 0x80:
                    n, i = b, i + 1
                else:
                    n, i = _varint(data, i, end)
                if i + n > end:
                    raise _Malformed("length-delimited field runs past the end of its message")
                sub = table.get(tag >> 3)
                if sub is not None and n:
                    if len(stack) >= MAX_DEPTH:
                        return f"request nests messages deeper than {MAX_DEPTH} levels"
                    end, table = i + n, _message_fields(sub, _TABLES)
                    stack.append((end, table))
                    continue
                i += n
            else:
                raise _Malformed(f"unsupported wire type {wire}")
    except _Malformed as e:
        return f"malformed request message: {e}"


def checked_parser(message_cls, max_fields: int = MAX_REQUEST_FIELDS) -> Callable[[bytes], object]:
    """A gRPC request deserializer: ``message_cls`` parsed, or :class:`Refused` (module docstring)."""
    desc = message_cls.DESCRIPTOR

    def parse(data: bytes):
        problem = wire_problem(data, desc, max_fields)
        if problem is not None:
            return Refused(problem)
        try:
            return message_cls.FromString(data)
        except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and kin: the client's bytes
            return Refused(f"malformed request message: {type(e).__name__}")

    return parse
