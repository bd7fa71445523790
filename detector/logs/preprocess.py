"""Turn one raw log message into the tokens the miner groups on.

Work per line is bounded before anything else happens: the text is cut to ``max_chars`` characters
and ``max_tokens`` tokens, so a 10 MB line costs the same as a long normal one. JSON lines are
templated on their message field, because splitting a JSON object on whitespace gives one template
per combination of values.

Masking is a single pass over the whitespace tokens with a cache: a token seen before (most tokens
of most lines) costs one dict lookup. A token is masked to ``<*>`` when it is an IP address, UUID,
hex number, path, timestamp or any other token that carries digits; inside a compound token such as
``key=value`` or ``name:123`` only the digit-bearing parts are masked, so the constant key survives
and keeps different events apart.
"""

from __future__ import annotations

import re

import orjson

WILDCARD = "<*>"
EMPTY = "<empty>"  # the template of a message with no tokens

# Whole-token patterns: a token matching one of these is a variable as a whole, even where a
# delimiter inside it (the ':' of a port or a time, the '/' of a path) would otherwise split it.
_WHOLE = re.compile(
    r"""^[\[(<"']*(?:
        (?:\d{1,3}\.){3}\d{1,3}(?::\d+)?                       # IPv4, optional port
      | [0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}  # UUID
      | (?:[0-9a-fA-F]{1,4}:){3,7}[0-9a-fA-F]{1,4}           # IPv6 (full form)
      | [A-Za-z][\w.+-]*://\S+                                # URL
      | [\w.-]*(?:/[\w.~@%+-]*){2,}/?                         # path with two or more separators
      | [A-Za-z]:\\\S*                                        # Windows path
      | \d{4}-\d{2}-\d{2}[T ]?(?:\d{2}:\d{2}(?::\d{2})?(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?  # ISO date/time
      | \d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?                       # clock time
      | [-+]?0[xX][0-9a-fA-F]+                                # hex literal
    )[\])>"'.,;:]*$""",
    re.VERBOSE,
)
# Delimiters that split a compound token into parts that are masked one by one.
_PARTS = re.compile(r"([=:,;()\[\]{}<>\"'|@#&]+)")
_DIGIT = re.compile(r"\d").search
# A run of hex digits long enough to be an id (commit hashes, request ids) even without a decimal.
_HEXID = re.compile(r"^[0-9a-fA-F]{8,}$").match

MESSAGE_KEYS = ("message", "msg", "log", "text", "@message", "event", "body", "description")


def mask_token(tok: str) -> str:
    """The masked form of one whitespace token."""
    if not _DIGIT(tok):
        if _HEXID(tok) or (tok.count("/") >= 2 and _WHOLE.match(tok)):
            return WILDCARD
        return tok
    if _WHOLE.match(tok):
        return WILDCARD
    parts = _PARTS.split(tok)
    if len(parts) == 1:
        return WILDCARD
    out = []
    for i, p in enumerate(parts):
        if i % 2 == 0 and p and (_DIGIT(p) or _HEXID(p)):
            p = WILDCARD
        out.append(p)
    masked = "".join(out)
    # Several adjacent variables collapse into one, so that "a:1:2" and "a:1" look alike.
    while "<*><*>" in masked:
        masked = masked.replace("<*><*>", WILDCARD)
    return masked


class Masker:
    """Cached token masking; the cache is cleared when full, which keeps memory bounded without
    any per-hit bookkeeping."""

    __slots__ = ("cache", "cache_size")

    def __init__(self, cache_size: int = 100_000):
        self.cache: dict[str, str] = {}
        self.cache_size = cache_size

    def mask(self, tokens: list[str]) -> list[str]:
        cache = self.cache
        out = []
        append = out.append
        for tok in tokens:
            m = cache.get(tok)
            if m is None:
                m = mask_token(tok)
                if len(cache) >= self.cache_size:
                    cache.clear()
                cache[tok] = m
            append(m)
        return out


def json_message(line: str) -> str | None:
    """The message field of a JSON object line, or a stand-in naming its keys; None when the line
    is not a JSON object."""
    try:
        obj = orjson.loads(line)
    except (orjson.JSONDecodeError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    for key in MESSAGE_KEYS:
        val = obj.get(key)
        if isinstance(val, str):
            return val
    # No message field: the set of keys is what stays constant between lines of one kind.
    return "json{" + ",".join(sorted(str(k)[:64] for k in list(obj)[:32])) + "}"


def clean_text(raw: str | bytes, max_chars: int) -> tuple[str, bool]:
    """Decode and trim a message. Returns (text, damaged) where damaged is True when the input
    was truncated, not valid UTF-8, or carried control characters."""
    damaged = False
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw[: max_chars * 4])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", errors="replace")
            damaged = True
    else:
        text = raw
    if len(text) > max_chars:
        text = text[:max_chars]
        damaged = True
    if not text.isprintable():
        # Binary junk and control characters become spaces: they must not glue tokens together
        # or reach the templates shown to people.
        cleaned = _CONTROL.sub(" ", text)
        if cleaned != text:
            damaged = True
            text = cleaned
    return text, damaged


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffd]")
