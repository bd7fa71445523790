"""Severity normalisation to the five levels the log path counts: debug, info, warn, error, fatal."""

from __future__ import annotations

_NAMES = {
    "trace": "debug",
    "debug": "debug",
    "dbg": "debug",
    "verbose": "debug",
    "info": "info",
    "information": "info",
    "informational": "info",
    "notice": "info",
    "warn": "warn",
    "warning": "warn",
    "wrn": "warn",
    "error": "error",
    "err": "error",
    "eror": "error",
    "severe": "error",
    "fatal": "fatal",
    "critical": "fatal",
    "crit": "fatal",
    "emerg": "fatal",
    "emergency": "fatal",
    "alert": "fatal",
    "panic": "fatal",
    "dpanic": "fatal",
}
# Exact-case lookups first: most shippers repeat the same few spellings, so one dict hit does it.
_LEVELS = {**_NAMES, **{k.upper(): v for k, v in _NAMES.items()}, **{k.capitalize(): v for k, v in _NAMES.items()}}

# Only upper-case words count as a level inside free text: "connection error" in a message body is not
# a severity, "ERROR" next to the timestamp is.
SHOUTED = {k.upper(): v for k, v in _NAMES.items() if len(k) >= 4 or k in ("err", "dbg", "wrn")}

# Syslog severity (the PRI value modulo 8), RFC 5424 section 6.2.1.
SYSLOG_SEVERITY = ("fatal", "fatal", "fatal", "error", "warn", "info", "info", "debug")


def normalise_level(value: object) -> str | None:
    """A level field as a shipper wrote it -> one of the five levels, or None when it names none."""
    if isinstance(value, str):
        level = _LEVELS.get(value)
        if level is None:
            level = _NAMES.get(value.strip().lower())
        return level
    if type(value) is int:
        return _numeric_level(value)
    return None


def _numeric_level(number: int) -> str | None:
    # pino / bunyan numeric levels: 10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal.
    if 10 <= number < 70:
        return ("debug", "debug", "info", "warn", "error", "fatal")[number // 10 - 1]
    return None


def otlp_severity(number: int) -> str | None:
    """OTLP SeverityNumber ranges: 1-4 TRACE, 5-8 DEBUG, 9-12 INFO, 13-16 WARN, 17-20 ERROR, 21-24 FATAL."""
    if 1 <= number <= 24:
        return ("debug", "debug", "info", "warn", "error", "fatal")[(number - 1) // 4]
    return None


def level_in_text(text: str) -> str | None:
    """The severity a plain log line states in its first few words, if any.

    Recognises ``ERROR`` / ``WARN`` style words, ``[error]`` / ``<warn>`` in brackets, ``level=error``
    and a lower-case level as the line's first word (what zap and logrus print after the timestamp).
    """
    words = text[:256].split(None, 10)[:10]
    for index, word in enumerate(words):
        bare = word.strip("[]()<>{}:,|;")
        level = SHOUTED.get(bare)
        if level is not None:
            return level
        if "=" in bare:
            key, _, val = bare.partition("=")
            if key in ("level", "lvl", "severity", "loglevel", "log.level"):
                return _NAMES.get(val.strip("\"'").lower())
            continue
        if ":" in bare:
            level = SHOUTED.get(bare.partition(":")[0])
            if level is not None:
                return level
        if index == 0 or word[0] in "[<(":
            level = _NAMES.get(bare.lower())
            if level is not None:
                return level
    return None
