"""``outage-detector check-config FILE``: validate a pipeline spec and its model specs, or one model spec."""

from __future__ import annotations

import sys

import yaml

from detector.config import PipelineSpec, environment_overrides, load_pipeline
from detector.errors import ConfigError
from detector.loader import read_yaml
from detector.specs import effective, load_model_spec
from detector.pipeline import Pipeline, load_checked


def add_command(sub) -> None:
    p = sub.add_parser(
        "check-config",
        help="validate a pipeline spec (or a model spec) and print it resolved (secrets masked)",
        description="Validate a pipeline spec, with environment overrides applied, and the model specs it "
        "names, by building everything the service would build from them (decoders, models run on a few "
        "test points, the drift detector). Prints the resolved config (and, on stderr, the keys the "
        "environment set over the file), or the error with its key path (exit 2). "
        "A model spec (kind: metric or log, such as a tuned one) is checked on its own the same way.",
    )
    p.add_argument("file", metavar="FILE", help="pipeline spec (YAML), or a model spec")
    p.set_defaults(func=run)


# Keys only a model spec has: a file with one of them and no pipeline section is a model spec, even
# with its kind missing or misspelt, and is told so rather than that its keys are unknown.
MODEL_KEYS = {"kind", "detector", "calibrator", "max_series", "miner", "signals", "sessions"}


def run(args) -> int:
    doc = read_yaml(args.file)
    if doc == {}:
        raise ConfigError(f"{args.file}: the file is empty: nothing to check")
    if isinstance(doc, dict) and MODEL_KEYS & set(doc) and not set(PipelineSpec.model_fields) & set(doc):
        # A model spec (a pipeline spec has no kind): checking it against the pipeline schema would only
        # call each of its keys unknown.
        spec = load_model_spec(args.file)  # a missing or misspelt kind is said to be one
        return check_model(args.file, spec.kind)
    spec = load_pipeline(args.file).require_inputs()
    pipeline = Pipeline.from_spec(spec)  # builds what the service builds, so what fails there fails here
    resolved = spec.masked()
    resolved["resolved_models"] = {"metric": effective(pipeline.metric_spec), "log": effective(pipeline.log_spec)}
    print(yaml.safe_dump(resolved, sort_keys=False), end="")
    overridden = environment_overrides()
    if overridden:  # on stderr: stdout stays the resolved config alone
        print(f"check-config: set from the environment, over {args.file}: {', '.join(overridden)}", file=sys.stderr)
    return 0


def check_model(path: str, kind: str) -> int:
    spec = load_checked(path, kind)  # built, and a metric model run on a few test points, as at start-up
    print(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False), end="")
    print(f"check-config: {path} is a {kind} model spec and is valid; a pipeline spec runs it when its "
          f"models.{kind} names this file", file=sys.stderr)
    return 0
