"""What one attempt comes back with, read under the limits that protect the client.

Both transports (http.client, or urllib3 through a proxy, in
:mod:`numberyo_provider.api.client`; httpx in :mod:`numberyo_provider.api.async_client`) read an
answer's body through :class:`_Body`, the one reading rule: a 2xx larger than the size limit is
refused (announced, or as it grows), an error answer is cut at 64 KiB. They hand the rules
(:mod:`numberyo_provider.api.core`) one of three results: an :class:`_Answer` read whole, a
:class:`_Failed` transport failure, or a :class:`_TooLarge` refusal. The JSON guards (nesting
depth, the excerpt of a body that is not JSON) are here too, so that no transport reads an answer
by rules of its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from requests.structures import CaseInsensitiveDict

from numberyo_provider.api.retry import Failure

#: JSON nested deeper than this is refused: a real answer is about 4 levels deep.
MAX_JSON_DEPTH = 64

_MAX_SNIPPET = 300
#: How much of an error answer (non-2xx) is read: enough for any message, never a flood.
_MAX_ERROR_BODY = 64 * 1024
#: The size of the pieces both transports read a body in.
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class _Answer:
    status: int
    reason: str
    headers: CaseInsensitiveDict[str]
    content: bytes | bytearray


@dataclass(frozen=True)
class _Failed:
    failure: Failure
    detail: str


@dataclass(frozen=True)
class _TooLarge:
    """A 2xx answer over the size limit: refused, never retried (it would be as large again)."""

    status: int
    declared: int | None
    received: int


class _Body:
    """An answer's body as it arrives, under the size limit: the one reading rule of both the
    sync and the async transport (a 2xx over the limit is refused, an error answer is cut)."""

    __slots__ = ("content", "declared", "limit", "size", "status", "success")

    def __init__(self, status: int, headers: Mapping[str, str], max_bytes: int) -> None:
        self.status = status
        self.success = 200 <= status < 300
        self.limit = max_bytes if self.success else min(max_bytes, _MAX_ERROR_BODY)
        self.declared = _content_length(headers)
        # One piece (the usual, small answer) stays as it came; more are appended to one
        # bytearray, which grows in place (no second copy of a large body at the end).
        self.content: bytes | bytearray = b""
        self.size = 0

    def refused(self) -> _TooLarge | None:
        """A 2xx announcing more than the limit: refused before a byte of its body is read."""
        if self.success and self.declared is not None and self.declared > self.limit:
            return _TooLarge(self.status, self.declared, 0)
        return None

    def add(self, chunk: bytes) -> _TooLarge | bool:
        """Take one piece; ``True`` when reading must stop (an error answer cut at its limit),
        a ``_TooLarge`` for a 2xx that grew past the limit, ``False`` to read on."""
        self.size += len(chunk)
        if self.size > self.limit:
            if self.success:
                return _TooLarge(self.status, self.declared, self.size)
            self.content = bytes(self.content) + chunk[: len(chunk) - (self.size - self.limit)]
            return True
        if not self.content:
            self.content = chunk
        else:
            if isinstance(self.content, bytes):
                self.content = bytearray(self.content)
            self.content += chunk
        return False


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_SNIPPET else text[: _MAX_SNIPPET - 3] + "..."


def _snippet(content: bytes | bytearray) -> str:
    return _clip(" ".join(content.decode("utf-8", "replace").split()))


def _error_body(content: bytes | bytearray) -> Any:
    """An error answer's body: its JSON when it has some, else a short excerpt of the text."""
    if not content:
        return None
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        return _snippet(content)
    return body if _depth_at_most(body, MAX_JSON_DEPTH) else _snippet(content)


def _depth_at_most(value: Any, limit: int) -> bool:
    """Whether parsed JSON nests at most ``limit`` levels; iterative, so it cannot recurse."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return True


def _content_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("Content-Length")
    if value is None or not value.strip().isdigit() or len(value.strip()) > 30:
        return None  # absent or unreadable: http.client then reads to the end; we still count
    return int(value.strip())


__all__ = ["MAX_JSON_DEPTH"]
