"""Which lines count as errors.

The decoder's level wins when it has one; otherwise a template that carries an error word is taken
as error-level. The template decision is made once per template and cached by id.
"""

from __future__ import annotations

import re

ERROR_LEVELS = frozenset({"error", "err", "fatal", "critical", "crit", "alert", "emerg", "severe", "panic"})

_ERROR_WORD = re.compile(
    r"(?i)(?:^|[^a-z])(?:[a-z]*(?:error|exception)s?|fatal|panic|failed|failure|critical|severe|refused|denied|"
    r"timed?[ -]?out|unreachable|abort(?:ed)?|corrupt(?:ed)?)(?:$|[^a-z])"
)


def template_is_error(text: str) -> bool:
    return _ERROR_WORD.search(text) is not None


def is_error_level(level: str | None) -> bool | None:
    """True/False from a decoder level; None when the record has no level."""
    if not level:
        return None
    return level.lower() in ERROR_LEVELS


_WARN_WORD = re.compile(r"(?i)(?:^|[^a-z])(?:warn|warning)(?:$|[^a-z])")


def template_is_alarm(text: str) -> bool:
    """Error words, or a warning level written into the line itself."""
    return _ERROR_WORD.search(text) is not None or _WARN_WORD.search(text) is not None
