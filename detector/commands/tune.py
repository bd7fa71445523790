"""``outage-detector tune``: search model and alerting parameters, write the best as a model spec."""

from __future__ import annotations

import json
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

from detector.commands.common import add_pipeline_option, positive_int
from detector.errors import ConfigError
from detector.loader import validate


def add_command(sub) -> None:
    p = sub.add_parser(
        "tune",
        help="search model/alerting parameters against an objective and write the tuned model spec",
        description="Run the trials of a search space (grid or seeded random) in parallel, scoring each "
        "with the chosen objective on labelled data; write the best as a model spec with its measured "
        "figures and provenance. Trials are journalled, so a rerun resumes where the last one stopped: "
        "Ctrl-C or SIGTERM stops the search at once (exit 130 or 143), abandoning the trials running. "
        "Objective lead_time runs the pipeline of --pipeline with the trial's model and alerting; the other "
        "objectives read no pipeline.",
    )
    p.add_argument("--space", required=True, type=Path, metavar="SPACE.yaml", help="search space (see models/spaces/)")
    p.add_argument("--data-dir", type=Path, help="nab, alert_budget: NAB-layout data folder")
    p.add_argument("--labels", type=Path, help="nab, alert_budget: combined_windows.json; f1: session labels CSV")
    p.add_argument("--log", type=Path, help="f1: raw log file, lines in time order")
    p.add_argument("--session-key", help="f1: regex naming a line's session")
    add_pipeline_option(p)
    p.add_argument("--output", type=Path,
                   help="tuned spec to write (default: models/<space name>-tuned.yaml under the working directory)")
    p.add_argument("--journal", type=Path, help="trial journal (default: <output>.trials.jsonl beside the output)")
    p.add_argument("--jobs", type=positive_int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--trials", type=positive_int,
                   help="override the space's trial count of a random search (the unchanged spec runs as one "
                   "more); an error with a grid search, which runs every combination")
    p.add_argument("--seed", type=int, help="override the space's seed (random search; an error with a grid search)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run)


def run(args) -> int:
    from detector import tuning

    space = tuning.load_space(args.space)
    overrides = {k: v for k, v in (("trials", args.trials), ("seed", args.seed)) if v is not None}
    if overrides and space.method == "grid":
        options = " and ".join(f"--{k}" for k in overrides)
        raise ConfigError(f"{options} appl{'y' if len(overrides) > 1 else 'ies'} to a random search; {args.space} "
                          f"is a grid search of {len(tuning.trial_params(space)) - 1} combinations, all of which "
                          f"run: drop {options}, or narrow the grid")
    if overrides:
        space = validate({**space.model_dump(exclude_unset=True), **overrides}, tuning.SearchSpace, "tune")
    # Only lead_time runs a pipeline: for the others, a $OUTAGE_DETECTOR_PIPELINE left in the shell
    # must not change the study (and so which journalled trials a rerun reuses).
    pipeline = Path(args.pipeline) if args.pipeline and space.objective == "lead_time" else None
    data = tuning.Data(data_dir=args.data_dir, labels=args.labels, log=args.log, session_key=args.session_key,
                       pipeline=pipeline)
    # Relative to the working directory: the installed package's own folder is no place for results.
    out = args.output or Path("models") / f"{args.space.stem}-tuned.yaml"
    journal = args.journal or out.with_name(out.stem + ".trials.jsonl")
    jobs = args.jobs if args.jobs is not None else tuning.default_jobs()
    try:
        with _signals_stop():
            outcome = tuning.tune(space, data, journal, jobs, progress=not args.no_progress)
    except tuning.Interrupted as stop:
        print(f"outage-detector: tune {stop}", file=sys.stderr)
        return 128 + stop.signum  # what a shell reports for a process the signal ended
    tuning.write_spec(space, data, outcome, out, args.space)
    best, base = outcome["best"], outcome["baseline"]
    print(json.dumps({
        "objective": space.objective, "best": best["value"], "baseline": base["value"],
        "figures": best["figures"], "params": best["params"], "trials": outcome["trials"],
        "ran": outcome["ran"], "failed": outcome["failed"], "seconds": outcome["seconds"],
        "spec": str(out), "journal": str(journal),
    }))
    return 0


@contextmanager
def _signals_stop():
    """SIGINT and SIGTERM raise tuning.Interrupted in the main thread, so that ``timeout``, ``kill`` or a
    supervisor stop a search as Ctrl-C does: workers ended, journal kept. Only the first one: a second
    Ctrl-C must not cut short the ending of the workers (SIGKILL still ends everything)."""
    from detector.tuning import Interrupted

    received = []

    def handler(signum, frame):
        if not received:
            received.append(signum)
            raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
