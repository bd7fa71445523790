"""Pieces several commands share: the --pipeline option, logging set-up and SIGTERM handling."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import signal
import time

from detector.config import PipelineSpec, load_pipeline

PIPELINE_ENV = "OUTAGE_DETECTOR_PIPELINE"


def add_pipeline_option(parser: argparse.ArgumentParser, help_text: str | None = None) -> None:
    parser.add_argument(
        "--pipeline",
        metavar="SPEC.yaml",
        default=os.environ.get(PIPELINE_ENV),
        help=help_text or f"pipeline spec (default: ${PIPELINE_ENV}, else built-in defaults)",
    )


def _whole(text: str, least: int, rule: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be {rule}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    return _whole(text, 1, "at least 1")


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 for any free one."""
    value = _whole(text, 0, "0 or more")
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number of at least 0 (a count, a limit where 0 means "all")."""
    return _whole(text, 0, "0 or more")


def _finite_float(text: str) -> float:
    # float() takes "nan" and "inf": neither is a duration or a threshold, and nan compares false with
    # everything, so it would slip past every later range check.
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number above 0 (hours, seconds, speeds)."""
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse type: a finite number of at least 0 (a scale where 0 turns something off)."""
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def unit_interval(text: str) -> float:
    """An argparse type: a number from 0 to 1 (a confidence threshold)."""
    value = _finite_float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def pipeline_from_args(args: argparse.Namespace) -> PipelineSpec:
    return load_pipeline(args.pipeline)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # kafka-python logs every reconnect at INFO/WARNING; our own messages say what matters.
    logging.getLogger("kafka").setLevel(logging.ERROR)
    for handler in logging.getLogger().handlers:
        handler.addFilter(KafkaThrottle())


class KafkaThrottle(logging.Filter):
    """Lets each of kafka-python's messages through once a minute, with a count of those held back,
    and on one line: its exception, if any, without the traceback.

    With Kafka down it logs a connection ERROR for every retry: about 13,000 lines a day, which bury
    the service's own one line (``Kafka at ... does not answer``) and set off log-based alerts. Its
    tracebacks (a socket closed under its network thread at shutdown) read as crashes of the service."""

    def __init__(self, every: float = 60.0, clock=None):
        super().__init__()
        self.every = every
        self.clock = clock or time.monotonic
        self.last: dict[tuple[str, str], float] = {}  # (logger, message format): when last let through
        self.held: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("kafka"):
            return True
        key = (record.name, str(record.msg))  # the format, not the text: one per kind of message
        now = self.clock()
        last = self.last.get(key)
        if last is not None and now - last < self.every:
            self.held[key] = self.held.get(key, 0) + 1
            return False
        self.last[key] = now
        held = self.held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last {now - last:.0f}s not logged)"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text = f"{type(exc).__name__}: {exc}"
            record.msg = f"{record.msg}: {text.replace('%', '%%') if record.args else text}"
            record.exc_info = record.exc_text = None
        return True


def exit_on_signal(signum, frame) -> None:
    """A signal handler ending the command through ``SystemExit`` (128 + the signal number, the
    shell's code for it), so that cleanup runs as it does for Ctrl-C: by default SIGTERM ends the
    process on the spot, leaving behind whatever the command meant to remove."""
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def sigterm_unwinds():
    """SIGTERM (timeout, a CI job limit, a scheduler) ends the command through :func:`exit_on_signal`
    while inside the block; the previous handler is back afterwards."""
    previous = signal.signal(signal.SIGTERM, exit_on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
