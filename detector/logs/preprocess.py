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
      | [a-z0-9-]+(?:\.[a-z0-9-]+)+:\d+                       # host.name:port (not Class.method:line)
      | [\w.-]*(?:/[\w.~@%+-]*){2,}/?                         # path with two or more separators
      | [A-Za-z]:\\\S*                                        # Windows path
      | \d{4}-\d{2}-\d{2}[T ]?(?:\d{2}:\d{2}(?::\d{2})?(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?  # ISO date/time
      | \d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?                       # clock time
      | [-+]?0[xX][0-9a-fA-F]+                                # hex literal
      | (?:[0-9a-fA-F]{2}[:-]){3,}[0-9a-fA-F]{2}              # MAC and similar byte strings
    )[\])>"'.,;:]*$""",
    re.VERBOSE,
)
# Delimiters that split a compound token into parts that are masked one by one.
_PARTS = re.compile(r"([=:,;()\[\]{}<>\"'|@#&]+|\.{2,})")
_DIGIT = re.compile(r"\d").search
# A run of hex digits long enough to be an id (commit hashes, request ids) even without a decimal.
_HEXID = re.compile(r"^[0-9a-fA-F]{8,}$").match
_HEXRUN = re.compile(r"(?<![\w])[0-9a-fA-F]{8,}(?![\w])")
_HEXRUN_SUB = _HEXRUN.sub
_HEXRUN = _HEXRUN.search

MESSAGE_KEYS = ("message", "msg", "log", "text", "@message", "event", "body", "description")


def _wordlike(tok: str) -> bool:
    """A name with a single trailing digit ("eth0", "ipv4") is a word, not a number: names like
    these usually tell events apart, where ids and counters carry several digits."""
    return len(tok) > 2 and tok[-1].isdigit() and tok[:-1].isalpha()


_EMPTY_VALUES = frozenset({"()", "[]", "{}", '""', "''", "<>", "(),", "[],", '"",', "'',"})


def mask_token(tok: str) -> str:
    """The masked form of one whitespace token."""
    if tok in _EMPTY_VALUES:
        return WILDCARD  # an empty value stands where other lines have one
    if tok[-1] == "=" and len(tok) > 1 and tok[-2].isalnum():
        return tok + WILDCARD  # "key=" with an empty value is "key=<*>"
    if not _DIGIT(tok) or _wordlike(tok):
        if (tok.count("/") >= 2 or tok.count(":") >= 3) and _WHOLE.match(tok):
            return WILDCARD
        if _HEXRUN(tok):
            return _HEXRUN_SUB(WILDCARD, tok)  # "ffffffff" in "mask=ffffffff" is a number
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
    # Variables joined only by punctuation are one variable: "<*>:<*>:<*>" and "<*>.<*>" alike.
    if not masked.replace(WILDCARD, "").strip(_GLUE):
        return WILDCARD
    while "<*><*>" in masked:
        masked = masked.replace("<*><*>", WILDCARD)
    return masked


_GLUE = ":.,-_/[]()"


# Month and day names next to a masked value are part of a timestamp ("Sun Jul 17 15:09:15 2005").
DATE_WORDS = frozenset(
    "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec Mon Tue Wed Thu Fri Sat Sun".split()
)
# A unit right after a masked number belongs to the value ("512 KB" and "3 MB" are one variable).
UNITS = frozenset(
    u + end
    for u in (
        "B KB MB GB TB PB KiB MiB GiB TiB kB bytes ns us µs ms s sec secs seconds mins minutes hrs hours %"
    ).split()
    for end in ("", ",", ";", ".", ")")
)


def _fold_dates_and_units(out: list[str]) -> None:
    last = len(out) - 1
    for i, tok in enumerate(out):
        if tok in DATE_WORDS:
            if (i < last and out[i + 1] == WILDCARD) or (i and out[i - 1] == WILDCARD) or (
                i < last - 1 and out[i + 1] in DATE_WORDS and out[i + 2] == WILDCARD
            ):
                out[i] = WILDCARD
        elif tok in UNITS and i and out[i - 1] == WILDCARD:
            out[i] = WILDCARD


# Longer tokens are masked afresh each time, not cached: an id or an encoded payload is seldom seen
# twice, and at up to max_chars each, a full cache of them held hundreds of MB per partition.
CACHED_TOKEN_CHARS = 64


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
                if len(tok) <= CACHED_TOKEN_CHARS:
                    if len(cache) >= self.cache_size:
                        cache.clear()
                    cache[tok] = m
            append(m)
        # Checked for the whole line at C speed; the rare lines with dates or units get a second look.
        if not (DATE_WORDS.isdisjoint(out) and UNITS.isdisjoint(out)):
            _fold_dates_and_units(out)
        return out


# A quoted field value (q="yoga mat") and a quoted string with spaces inside (a request line, a
# user agent) are free-form values: each becomes one masked token, so that values with different numbers of words neither change
# the line's token count nor look like new events. Quoted text that says what happened (msg="...",
# error="...") stays as it is, so different messages stay different templates.
_QUOTED = re.compile(r'(?:(?<=[\s(\[{,;])|^)(?:([\w.@-]+=)"([^"\n]*)"|"([^"\n]*\s[^"\n]*)")')
TEXT_KEYS = frozenset(MESSAGE_KEYS) | {"error", "err", "reason", "exception", "cause", "detail", "details"}


def _quoted_value(m: "re.Match") -> str:
    key = m.group(1)
    if key and key[:-1].lower() in TEXT_KEYS:
        return m.group(0)
    return (key or "") + WILDCARD


def mask_quoted(text: str) -> str:
    return _QUOTED.sub(_quoted_value, text) if '"' in text else text


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
    if raw is None:
        return "", True
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw[: max_chars * 4])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", errors="replace")
            damaged = True
    elif isinstance(raw, str):
        text = raw
    else:
        text, damaged = str(raw)[:max_chars], True
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
