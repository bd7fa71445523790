"""Command line: ``outage-detector <command>`` (also ``python -m detector``).

Each command lives in its own module, which exposes ``add_command(subparsers)``; the module's parser
sets ``func`` to a callable taking the parsed args and returning an exit code. A ``DetectorError``
becomes a one-paragraph message and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from detector import __version__
from detector.errors import DetectorError

# Modules that add top-level commands.
COMMANDS = [
    "detector.commands.run",
    "detector.commands.check_config",
    "detector.commands.demo",
    "detector.commands.templates",
    "detector.simulate.command",
    "detector.commands.replay",
    "detector.commands.tune",
    "detector.commands.report",
]

# Modules that add ``evaluate <what>`` sub-commands.
EVALUATIONS = [
    "detector.evaluation.nab",
    "detector.evaluation.parsing",
    "detector.evaluation.sessions",
    "detector.evaluation.incidents",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="outage-detector",
        description="Early warning of outages: online anomaly detection on logs and metrics.",
    )
    parser.add_argument("--version", action="version", version=f"outage-detector {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).add_command(sub)
    if EVALUATIONS:
        evaluate = sub.add_parser("evaluate", help="score models on labelled data")
        ev_sub = evaluate.add_subparsers(dest="evaluation", metavar="WHAT", required=True)
        for name in EVALUATIONS:
            importlib.import_module(name).add_command(ev_sub)
    return parser


# SIGHUPs that reached ``run`` before it could reload (see ``hold_hangups``).
EARLY_HANGUPS: list[int] = []


def hold_hangups(argv: list[str]) -> None:
    """For ``run``: a SIGHUP's default action ends the process, and one sent while the service starts
    (a spec shipped to a replica just restarted) must not kill it. From the first moment, before the
    commands' imports take their seconds, a SIGHUP is remembered; ``run`` then reloads."""
    if argv[:1] == ["run"]:
        signal.signal(signal.SIGHUP, lambda signum, frame: EARLY_HANGUPS.append(signum))


def main(argv: list[str] | None = None) -> int:
    hold_hangups(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (DetectorError, OSError) as exc:  # OSError: a path that cannot be read or written
        print(f"outage-detector: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
