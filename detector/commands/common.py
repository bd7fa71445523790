"""Pieces several commands share: the --pipeline option and logging set-up."""

from __future__ import annotations

import argparse
import logging
import os

from detector.config import PipelineSpec, load_pipeline

PIPELINE_ENV = "OUTAGE_DETECTOR_PIPELINE"


def add_pipeline_option(parser: argparse.ArgumentParser, help_text: str | None = None) -> None:
    parser.add_argument(
        "--pipeline",
        metavar="SPEC.yaml",
        default=os.environ.get(PIPELINE_ENV),
        help=help_text or f"pipeline spec (default: ${PIPELINE_ENV}, else built-in defaults)",
    )


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
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
