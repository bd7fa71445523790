"""Offline tuning: search a space of model and alerting parameters against an objective on labelled data.

A search space is a YAML file validated by :class:`SearchSpace`::

    model: ../metric-default.yaml        # the spec whose parameters are searched (relative to this file)
    objective: nab                       # nab | alert_budget | f1
    method: random                       # random (``trials`` samples, seeded) | grid (every combination)
    trials: 30
    seed: 0
    params:
      model.detector.params.alpha: {low: 0.005, high: 0.1, log: true}
      model.detector.params.refractory: {values: [20, 50, 100, 200]}
      alerting.fire_after: {low: 1, high: 4, type: int}

Keys are dotted paths into the model spec (``model.``) or the pipeline's alerting settings
(``alerting.``). Trial 0 is always the unchanged spec, so the result says what tuning gained.

Objectives (higher is better):

- ``nab``: the NAB score of ``profile`` (thresholds optimised over the files, as NAB does);
- ``alert_budget``: recall of the label windows by alerts (after the alerting hysteresis) as long as
  no service gets more than ``pages_per_week`` alerts outside the windows; over budget, minus the
  worst overshoot, so any trial within budget beats every trial over it;
- ``f1``: session F1 on a labelled log (``evaluate sessions``), for log model specs;
- ``lead_time``: the simulated incident scenarios (``evaluate incidents``) replayed through the whole
  pipeline with the trial's model and alerting, from each of ``start_hours`` (those of
  ``evaluate incidents`` unless given): mean lead time in seconds over the disruption runs (a missed
  one counts 0) while false alerts stay within ``false_alerts_per_day``; over budget, minus the
  overshoot.

Every finished trial is appended to a JSON-lines journal; a rerun of the same study skips the trials
already there, so an interrupted search resumes where it stopped. An interruption (Ctrl-C, or SIGTERM
through the command) abandons the trials still running: their worker processes are terminated, not
waited for, and workers whose main process was killed outright exit by themselves.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import random
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, field_validator, model_validator

from detector.config import AlertingSettings
from detector.errors import ConfigError
from detector.evaluation.nab_data import find_csvs
from detector.loader import load_yaml_model, validate
from detector.specs import MODELS_DIR, ModelSpec, load_model_spec

WEEK = 7 * 86_400.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParamRange(_Strict):
    """Either a list of ``values``, or a range ``low``..``high`` (log-uniform with ``log``)."""

    values: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    type: Literal["float", "int"] = "float"
    steps: int = Field(5, ge=2, description="grid points over a range in grid search")

    @model_validator(mode="after")
    def _one_kind(self) -> "ParamRange":
        if self.values is not None:
            if not self.values:
                raise ValueError("values is empty")
            if self.low is not None or self.high is not None:
                raise ValueError("give either values or low/high, not both")
        else:
            if self.low is None or self.high is None:
                raise ValueError("give values, or both low and high")
            if not self.low < self.high:
                raise ValueError(f"low ({self.low}) must be below high ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError("a log range needs low > 0")
        return self

    def sample(self, rng: random.Random):
        if self.values is not None:
            return rng.choice(self.values)
        if self.type == "int":
            return rng.randint(int(self.low), int(self.high))
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        # Four significant digits: finer than any result can tell apart, and readable in a spec.
        return float(f"{value:.4g}")

    def grid(self) -> list:
        if self.values is not None:
            return list(self.values)
        if self.type == "int":
            return sorted({round(v) for v in _spaced(self.low, self.high, self.steps, self.log)})
        return [float(f"{v:.4g}") for v in _spaced(self.low, self.high, self.steps, self.log)]


def _spaced(low: float, high: float, steps: int, log: bool) -> list[float]:
    if log:
        a, b = math.log(low), math.log(high)
        return [math.exp(a + (b - a) * i / (steps - 1)) for i in range(steps)]
    return [low + (high - low) * i / (steps - 1) for i in range(steps)]


# Trials a study may plan: each is held in memory from the start, and at about a second of a core each
# (a NAB trial), more would run for days; a rerun with more trials runs only the new ones.
MAX_TRIALS = 100_000


class SearchSpace(_Strict):
    model: Path = Field(MODELS_DIR / "metric-default.yaml", description="spec to tune; relative to the space file")
    objective: Literal["nab", "alert_budget", "f1", "lead_time"] = "nab"
    method: Literal["random", "grid"] = "random"
    trials: int = Field(20, ge=1, le=MAX_TRIALS,
                        description="samples of a random search (trial 0, the unchanged spec, is extra)")
    seed: int = 0
    params: dict[str, ParamRange]
    alerting: dict[str, Any] = Field(default_factory=dict, description="alerting settings the trials start from")
    profile: str = Field("standard", description="nab: the profile whose score is the objective")
    pages_per_week: float = Field(1.0, gt=0, description="alert_budget: pages allowed per service and week")
    false_alerts_per_day: float = Field(2.0, ge=0, description="lead_time: false alerts allowed per simulated day")
    hours: float = Field(24.0, gt=0, description="lead_time: simulated hours per scenario")
    scenarios: list[str] = Field(default_factory=list, description="lead_time: scenarios to run (default: all)")
    start_hours: list[float] | None = Field(
        None, description="lead_time: UTC hours of the day the runs start at, one run per scenario each "
        "(default: those of evaluate incidents)",
    )

    # The base spec as first read: trials, the study id and the tuned spec written at the end all use
    # this, so a spec shipped over the same file while the study runs changes none of them.
    _base: dict | None = PrivateAttr(None)

    def base(self) -> dict:
        if self._base is None:
            self._base = load_model_spec(self.model).model_dump(mode="json")
        return self._base

    @model_validator(mode="after")
    def _grid_draws_nothing(self) -> "SearchSpace":
        # A grid runs every combination once: a trial count or a seed given for it would be ignored (the
        # seed would still change the study, so a rerun would not find its journalled trials).
        given = [k for k in ("trials", "seed") if k in self.model_fields_set]
        if self.method == "grid" and given:
            raise ValueError(f"{' and '.join(given)} appl{'y' if len(given) > 1 else 'ies'} to a random search; "
                             f"a grid search runs every combination once: remove {' and '.join(given)}")
        if self.method == "grid":
            combinations = math.prod(len(r.grid()) for r in self.params.values())
            if combinations > MAX_TRIALS:
                raise ValueError(f"the grid has {combinations} combinations, over {MAX_TRIALS}: give fewer steps or "
                                 f"values")
        return self

    @field_validator("start_hours")
    @classmethod
    def _hours_of_day(cls, hours: list[float] | None) -> list[float] | None:
        from detector.evaluation.incidents import hours_of_day

        if hours is not None and not hours_of_day(hours):
            raise ValueError("hours of the day, at least one, each from 0 up to 24")
        return hours

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, profile: str) -> str:
        from detector.evaluation.nab_scoring import DEFAULT_PROFILES

        names = [p.name for p in DEFAULT_PROFILES]
        if profile not in names:
            raise ValueError(f"{profile!r} is not a NAB profile; known: {', '.join(names)}")
        return profile

    @field_validator("params")
    @classmethod
    def _paths(cls, params: dict[str, ParamRange]) -> dict[str, ParamRange]:
        if not params:
            raise ValueError("no parameters to search")
        for key in params:
            head, _, rest = key.partition(".")
            if head not in ("model", "alerting") or not rest:
                raise ValueError(f"{key!r}: keys start with 'model.' or 'alerting.'")
            if head == "alerting" and rest not in AlertingSettings.model_fields:
                raise ValueError(f"{key!r}: alerting has {', '.join(AlertingSettings.model_fields)}")
        return params


def load_space(path: str | Path) -> SearchSpace:
    space = load_yaml_model(path, SearchSpace)
    if not space.model.is_absolute():
        space = space.model_copy(update={"model": (Path(path).resolve().parent / space.model).resolve()})
    return space


# -- trials ------------------------------------------------------------------------------------


def trial_params(space: SearchSpace) -> list[dict[str, Any]]:
    """Every trial's parameter overrides, in a fixed order; trial 0 changes nothing."""
    keys = sorted(space.params)
    if space.method == "grid":
        combos = itertools.product(*(space.params[k].grid() for k in keys))
        trials = [dict(zip(keys, c)) for c in combos]
    else:
        rng = random.Random(space.seed)
        trials = [{k: space.params[k].sample(rng) for k in keys} for _ in range(space.trials)]
    return [{}] + trials


def trial_id(params: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]


def apply(space: SearchSpace, base: dict, params: dict[str, Any]) -> tuple[Any, AlertingSettings]:
    """The model spec and alerting settings of one trial, validated (errors name the key)."""
    model = json.loads(json.dumps(base))
    alerting = dict(space.alerting)
    for key, value in params.items():
        head, _, rest = key.partition(".")
        if head == "alerting":
            alerting[rest] = value
        else:
            _set(model, rest.split("."), value)
    spec = validate(model, TypeAdapter(ModelSpec), "trial model")
    return spec, validate(alerting, AlertingSettings, "trial alerting")


def _set(obj: dict, path: list[str], value) -> None:
    for part in path[:-1]:
        nxt = obj.get(part)
        if nxt is None:
            nxt = obj[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"model.{'.'.join(path)}: {part!r} is not a mapping")
        obj = nxt
    obj[path[-1]] = value


# -- objectives (run in worker processes) ------------------------------------------------------


class Data(_Strict):
    """What a study is measured on; paths as given on the command line."""

    data_dir: Path | None = None
    labels: Path | None = None
    log: Path | None = None
    session_key: str | None = None
    pipeline: Path | None = None  # lead_time: the pipeline whose other model and alerting the trials use

    def fingerprint(self) -> list[dict]:
        """What the objective reads, by content: a label fixed in place keeps the file's size, and a
        journal kept across it would pass off trials measured on the old labels as current."""
        paths = [p for p in (self.data_dir, self.labels, self.log, self.pipeline) if p is not None]
        if self.pipeline is not None:
            from detector.config import load_pipeline

            models = load_pipeline(self.pipeline).models  # the trials run with the other kind's spec
            paths += [models.metric, models.log]
        out = []
        for p in paths:
            files = find_csvs(p) if p.is_dir() else [p]  # the files the evaluation reads
            digest = hashlib.sha1()
            for f in files:
                if f.is_file():
                    digest.update(f.read_bytes())
            out.append({"path": str(p.resolve()), "files": len(files), "bytes": sum(f.stat().st_size for f in files if f.is_file()),
                        "sha1": digest.hexdigest()})
        return out


_WORKER: dict[str, Any] = {}


def _init_worker(space: SearchSpace, data: Data) -> None:
    _WORKER.clear()
    _WORKER.update(space=space, data=data, base=space.base())
    if space.objective in ("nab", "alert_budget"):
        from detector.evaluation.nab_data import read_corpus

        if data.data_dir is None or data.labels is None:
            raise ConfigError(f"objective {space.objective} needs --data-dir and --labels (NAB layout)")
        _WORKER["files"] = read_corpus(data.data_dir, data.labels)
    elif space.objective == "lead_time":
        from detector.config import load_pipeline

        _WORKER["pipeline"] = load_pipeline(data.pipeline)
    elif data.log is None or data.labels is None or data.session_key is None:
        raise ConfigError("objective f1 needs --log, --labels and --session-key")


def _start_worker(space: SearchSpace, data: Data) -> None:
    """Initialiser of a worker process."""
    # The main process decides when a study stops: a Ctrl-C sent to the whole process group must
    # neither print a worker's traceback nor let the worker go on with its next trial.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A main process killed outright (SIGKILL, the OOM killer) cannot stop its workers: they stop
    # themselves, instead of running trials nobody will read and then waiting for ever on its pipe.
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    _init_worker(space, data)


def _exit_with_parent() -> None:
    import multiprocessing

    multiprocessing.parent_process().join()  # returns once the main process has exited
    os._exit(1)


def run_trial(index: int, params: dict[str, Any]) -> dict:
    space: SearchSpace = _WORKER["space"]
    started = time.perf_counter()
    out = {"index": index, "trial": trial_id(params), "params": params}
    try:
        spec, alerting = apply(space, _WORKER["base"], params)
        if space.objective == "nab":
            figures = _nab(spec)
            value = figures[space.profile]
        elif space.objective == "alert_budget":
            figures = _alert_budget(spec, alerting, space.pages_per_week)
            over = figures["worst_pages_per_week"] - space.pages_per_week
            value = figures["recall"] if over <= 0 else -over
        elif space.objective == "lead_time":
            figures = _lead_time(spec, alerting, space, index)
            over = figures["false_alerts_per_day"] - space.false_alerts_per_day
            value = figures["mean_lead_seconds"] if over <= 0 else -over
        else:
            figures = _sessions(spec, _WORKER["data"])
            value = figures["f1"]
        out.update(value=value, figures=figures, error=None)
    except Exception as exc:  # noqa: BLE001 - one bad combination is a result, not the end of the study
        out.update(value=None, figures={}, error=f"{type(exc).__name__}: {exc}")
    out["seconds"] = round(time.perf_counter() - started, 3)
    return out


def _metric_runs(spec):
    import numpy as np

    from detector.series_model import SeriesModel

    if spec.kind != "metric":
        raise ConfigError(f"this objective needs a metric model spec, not {spec.kind}")
    for f in _WORKER["files"]:
        scores, confidences = SeriesModel.from_spec(spec).update_many(f.timestamps, f.values)
        yield f, np.asarray(scores, dtype=float), np.asarray(confidences, dtype=float)


def _nab(spec) -> dict:
    import numpy as np

    from detector.evaluation import nab_scoring as ns

    prepared = [ns.prepare_file(np.clip(scores, 0.0, 1.0), ns.window_bounds(f.timestamps, f.windows))
                for f, scores, _ in _metric_runs(spec)]
    figures = {}
    for profile in ns.DEFAULT_PROFILES:
        _, total = ns.optimise_threshold(prepared, profile)
        null, perfect = ns.null_and_perfect(prepared, profile)
        figures[profile.name] = round(ns.normalise(total, null, perfect), 4)
    return figures


def _alert_budget(spec, alerting: AlertingSettings, budget: float) -> dict:
    from detector.alerting import Alerting
    from detector.records import Score

    found = windows = pages = false_pages = 0
    worst = 0.0
    for f, scores, confidences in _metric_runs(spec):
        key = f.key
        alerts = Alerting(alerting)
        stream = [Score(t, key, "value", s, c, None, key)
                  for t, s, c in zip(f.timestamps.tolist(), scores.tolist(), confidences.tolist())]
        fired = [t.timestamp for t in alerts.observe(stream) if t.state == "firing"]
        inside = [any(a <= t <= b for t in fired) for a, b in f.windows]
        false = sum(1 for t in fired if not any(a <= t <= b for a, b in f.windows))
        weeks = max(float(f.timestamps[-1] - f.timestamps[0]) / WEEK, 1 / 7) if len(f.timestamps) else 1.0
        worst = max(worst, false / weeks)
        found += sum(inside)
        windows += len(inside)
        pages += len(fired)
        false_pages += false
    return {"recall": round(found / windows, 4) if windows else 0.0, "windows": windows, "windows_found": found,
            "pages": pages, "false_pages": false_pages, "worst_pages_per_week": round(worst, 4),
            "within_budget": bool(worst <= budget)}


def _lead_time(spec, alerting: AlertingSettings, space: SearchSpace, index: int) -> dict:
    from detector.evaluation.incidents import START_HOURS, evaluate

    # The pipeline loads its models from files: the trial's spec goes to one of its own, removed after.
    with tempfile.TemporaryDirectory(prefix="outage-detector-trial-") as tmp:
        path = Path(tmp) / f"trial-{index}-{spec.kind}.yaml"
        path.write_text(yaml.safe_dump(spec.model_dump(mode="json")), encoding="utf-8")
        base = _WORKER["pipeline"]
        pipeline = base.model_copy(update={
            "models": base.models.model_copy(update={spec.kind: path}),
            "alerting": alerting if space.alerting or any(k.startswith("alerting.") for k in space.params)
            else base.alerting,
        })
        result = evaluate(pipeline, hours=space.hours, names=space.scenarios or None,
                          start_hours=space.start_hours or START_HOURS)
    rows = [r for r in result["scenarios"] if r["detected"] is not None]
    leads = [max(r["lead_seconds"], 0.0) if r["detected"] else 0.0 for r in rows]
    return {"mean_lead_seconds": round(sum(leads) / len(leads), 1) if leads else 0.0,
            "detection_rate": result["detection_rate"], "median_lead_seconds": result["median_lead_seconds"],
            "false_alerts_per_day": result["false_alerts_per_day"],
            "scenarios": len({r["name"] for r in result["scenarios"]}), "runs": len(result["scenarios"])}


def _sessions(spec, data: Data) -> dict:
    from detector.evaluation.sessions import run_sessions

    if spec.kind != "log":
        raise ConfigError(f"objective f1 needs a log model spec, not {spec.kind}")
    return run_sessions(data.log, data.labels, data.session_key, spec)


# -- the study ---------------------------------------------------------------------------------


def study_id(space: SearchSpace, data: Data) -> str:
    # The base spec's content too: trials journalled on an edited base spec measured another model.
    # Not the number of trials: a seeded random search draws the same first samples whatever their
    # number, so a rerun with more trials runs only the new ones.
    doc = {"space": space.model_dump(mode="json", exclude={"trials"}), "base": space.base(), "data": data.fingerprint()}
    return hashlib.sha1(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]


def journal_entries(path: Path) -> list[dict]:
    """The trials in a journal, in the order they finished. A line cut short by a crash is skipped
    (its trial runs again); a file none of whose lines is a trial is not a journal."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "trial" in entry:
            entries.append(entry)
    if lines and not entries:
        raise ConfigError(f"{path}: not a tuning journal (no line is a trial)")
    return entries


def read_journal(path: Path, study: str) -> dict[str, dict]:
    if not path.is_file():
        return {}
    return {e["trial"]: e for e in journal_entries(path) if e.get("study") == study}


class Interrupted(KeyboardInterrupt):
    """A study stopped by the signal ``signum`` (SIGINT or SIGTERM); :func:`tune` raises it with a message
    saying how many trials are journalled. A KeyboardInterrupt, so code unaware of it takes it for Ctrl-C."""

    def __init__(self, signum: int, detail: str = ""):
        super().__init__(f"stopped by {signal.Signals(signum).name}" + (f": {detail}" if detail else ""))
        self.signum = signum


def tune(space: SearchSpace, data: Data, journal: Path, jobs: int = 1, progress: bool = True) -> dict:
    """Run the trials not yet in the journal; returns {"best": entry, "baseline": entry, "trials": n, ...}.

    A KeyboardInterrupt (or :class:`Interrupted`) stops the study at once: trials still running are
    abandoned (a rerun runs them), every finished one is in the journal, and :class:`Interrupted` is
    raised saying how many."""
    from tqdm import tqdm

    study = study_id(space, data)
    planned = trial_params(space)
    ids = [trial_id(p) for p in planned]
    done = read_journal(journal, study)
    pending = [(i, p) for i, p in enumerate(planned) if ids[i] not in done]
    journal.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    bar = tqdm(total=len(planned), initial=len(planned) - len(pending), unit="trial", desc=f"tune {space.objective}",
               file=sys.stderr, disable=None if progress else True)
    try:
        with journal.open("a", encoding="utf-8") as fh:
            if journal.stat().st_size and not journal.read_bytes().endswith(b"\n"):
                fh.write("\n")  # end a line a crash cut short, so the next entry is not glued onto it

            def record(entry: dict) -> None:
                entry["study"] = study
                fh.write(json.dumps(entry, sort_keys=True) + "\n")
                fh.flush()  # a crash loses at most the trials still running
                done[entry["trial"]] = entry
                if entry["value"] is not None:
                    best = max((e["value"] for e in done.values() if e["value"] is not None), default=None)
                    bar.set_postfix(best=best)
                bar.update(1)

            _init_worker(space, data)  # here too when workers run the trials: bad arguments fail cleanly, once
            if jobs <= 1 or len(pending) <= 1:
                for i, p in pending:
                    record(run_trial(i, p))
            else:
                _run_in_workers(pending, min(jobs, len(pending)), space, data, record)
    except KeyboardInterrupt as exc:
        journalled = read_journal(journal, study)  # closed by now: exactly the trials a rerun will skip
        finished = sum(t in journalled for t in ids)
        raise Interrupted(getattr(exc, "signum", signal.SIGINT), (
            f"{finished} of {len(planned)} trials done ({finished - (len(planned) - len(pending))} in this run), "
            f"journalled in {journal}; run the same command again to resume")) from None
    finally:
        bar.close()
    results = [done[t] for t in ids]
    ok = [r for r in results if r["value"] is not None]
    if not ok:
        errors = {r["error"] for r in results}
        raise ConfigError(f"every trial failed: {'; '.join(sorted(errors))[:500]}")
    changed = results[1:]
    if changed and all(r["value"] is None for r in changed):
        # Only the unchanged spec ran: writing it as "tuned" would hide that the space is broken.
        first = min(changed, key=lambda r: r["index"])
        raise ConfigError(f"all {len(changed)} trials of the search space failed (only the unchanged spec ran; "
                          f"see {journal}); the first: {first['error'][:500]}")
    # Ties go to the earlier trial, so the unchanged spec wins unless a change really helps.
    best = max(ok, key=lambda r: (r["value"], -r["index"]))
    return {"study": study, "best": best, "baseline": results[0], "trials": len(results),
            "failed": len(results) - len(ok), "ran": len(pending), "seconds": round(time.perf_counter() - started, 3)}


def _run_in_workers(pending: list, workers: int, space: SearchSpace, data: Data, record) -> None:
    import multiprocessing

    # Spawned, not forked: polars' thread pool does not survive a fork of a process that used it.
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_start_worker, initargs=(space, data),
                               mp_context=multiprocessing.get_context("spawn"))
    try:
        # A few trials queued per worker, not all of them: a large study would otherwise hold a future
        # per trial before the first one ran.
        queue = iter(pending)
        running = {pool.submit(run_trial, i, p) for i, p in itertools.islice(queue, 2 * workers)}
        while running:
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                record(fut.result())
            running |= {pool.submit(run_trial, i, p) for i, p in itertools.islice(queue, len(finished))}
    except BaseException:
        # Interrupted, or a worker failed: the trials running or queued are abandoned, not waited for
        # (a worker would otherwise go on with the trials already sent to it). Before Python 3.14
        # (terminate_workers) a pool has no public way to end its workers: they are ended by PID.
        for process in list(pool._processes.values()):
            process.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # at once when the workers are gone


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def write_spec(space: SearchSpace, data: Data, outcome: dict, out: Path, space_path: Path | None) -> Path:
    """The tuned spec with what it measured and where it came from."""
    base = space.base()
    best = outcome["best"]
    spec, alerting = apply(space, base, best["params"])
    doc = spec.model_dump(mode="json")
    if space.objective == "f1":
        # Sessions were measured grouped by this key; without it the spec would not load, or group otherwise.
        doc["sessions"] = {**(doc.get("sessions") or {}), "key": data.session_key}
    doc["description"] = (doc.get("description") or "").strip() + (
        f" Tuned for {space.objective} ({space.method} search, {outcome['trials']} trials).")
    doc["measured"] = {
        "objective": space.objective, "value": best["value"], **best["figures"],
        "baseline": {"value": outcome["baseline"]["value"], **outcome["baseline"]["figures"]},
    }
    alert_params = {k.partition(".")[2]: v for k, v in best["params"].items() if k.startswith("alerting.")}
    doc["provenance"] = {
        "tool": "outage-detector tune",
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "objective": space.objective,
        "data": data.fingerprint(),
        "base_model": str(space.model),
        "search_space": {
            "file": str(space_path) if space_path else None,
            **space.model_dump(mode="json", exclude={"params"}),
            "params": {k: r.model_dump(mode="json", exclude_defaults=True) for k, r in space.params.items()},
        },
        "trials": outcome["trials"], "failed_trials": outcome["failed"],
        "best_trial": best["trial"], "params": best["params"],
        # Alerting lives in the pipeline spec: set these there to get the measured figures.
        "alerting": {**space.alerting, **alert_params} if (alert_params or space.alerting) else {},
        "study": outcome["study"],
    }
    validate(doc, TypeAdapter(ModelSpec), str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Written by outage-detector tune: {space.objective} = {best['value']} "
              f"(unchanged spec: {outcome['baseline']['value']}). See measured / provenance.\n")
    out.write_text(header + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    from detector.pipeline import load_checked

    load_checked(out, doc["kind"])  # what we wrote loads and runs, as the service will load it
    return out
