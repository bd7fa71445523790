"""``outage-detector check-config FILE``: validate a pipeline spec and its model specs."""

from __future__ import annotations

import yaml

from detector.config import load_pipeline
from detector.pipeline import Pipeline


def add_command(sub) -> None:
    p = sub.add_parser(
        "check-config",
        help="validate a pipeline spec and print it resolved (secrets masked)",
        description="Validate a pipeline spec, with environment overrides applied, and the model specs it "
        "names, by building everything the service would build from them (decoders, models run on a few "
        "test points, the drift detector). Prints the resolved config, or the error with its key path (exit 2).",
    )
    p.add_argument("file", metavar="FILE", help="pipeline spec (YAML)")
    p.set_defaults(func=run)


def run(args) -> int:
    spec = load_pipeline(args.file).require_inputs()
    pipeline = Pipeline.from_spec(spec)  # builds what the service builds, so what fails there fails here
    resolved = spec.masked()
    resolved["resolved_models"] = {"metric": pipeline.metric_spec.model_dump(mode="json"),
                                   "log": pipeline.log_spec.model_dump(mode="json")}
    print(yaml.safe_dump(resolved, sort_keys=False), end="")
    return 0
