"""``tune``: a search on a few NAB files writes a spec whose measured figures ``evaluate nab``
reproduces; journalled trials are not run twice; parallel runs agree with serial ones; the alert
budget picks the best recall within budget; bad spaces are refused with their key; SIGTERM, Ctrl-C or
SIGKILL leave no worker process behind, and a stopped search keeps its finished trials."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import yaml

from detector.cli import main
from detector.specs import load_model_spec
from detector.tuning import Data, SearchSpace, load_space, trial_params, tune
from tests.test_alertmanager_push import wait_until

REPO = Path(__file__).resolve().parents[1]
FILES = ("artificialWithAnomaly/art_daily_jumpsup.csv", "realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv",
         "realAWSCloudwatch/rds_cpu_utilization_cc0c53.csv")


@pytest.fixture()
def nab_subset(data_dir, tmp_path) -> tuple[Path, Path]:
    """Three NAB files in NAB's layout, linked (not copied) from the development data."""
    root = tmp_path / "nab"
    for rel in FILES:
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(data_dir / "nab" / "data" / rel)
    return root, data_dir / "nab" / "labels" / "combined_windows.json"


def write_space(tmp_path: Path, **fields) -> Path:
    doc = {"model": str(REPO / "models" / "metric-default.yaml"), "objective": "nab", "method": "random",
           "trials": 3, "seed": 1, "params": {
               "model.detector.params.alpha": {"low": 0.005, "high": 0.1, "log": True},
               "model.detector.params.refractory": {"values": [25, 100, 200]}}}
    doc.update(fields)
    if doc["method"] == "grid":  # a grid draws no samples: it takes neither
        for key in ("trials", "seed"):
            if key not in fields:
                doc.pop(key)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_tune_writes_a_spec_whose_figures_evaluate_nab_reproduces(nab_subset, tmp_path, capsys):
    data, labels = nab_subset
    out = tmp_path / "models" / "tuned.yaml"
    space = write_space(tmp_path)
    assert main(["tune", "--space", str(space), "--data-dir", str(data), "--labels", str(labels),
                 "--output", str(out), "--jobs", "1", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["trials"] == 4 and summary["failed"] == 0

    spec = load_model_spec(out)
    assert spec.measured["objective"] == "nab" and spec.measured["value"] >= spec.measured["baseline"]["value"]
    prov = spec.provenance
    assert prov["objective"] == "nab" and prov["trials"] == 4 and prov["time"]
    assert prov["search_space"]["params"]["model.detector.params.refractory"] == {"values": [25, 100, 200]}
    assert {d["path"] for d in prov["data"]} == {str(data.resolve()), str(labels.resolve())}
    for key, value in prov["params"].items():
        assert spec.detector.params[key.rsplit(".", 1)[1]] == value

    assert main(["evaluate", "nab", "--data-dir", str(data), "--labels", str(labels), "--model", str(out), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["standard"] == pytest.approx(spec.measured["standard"], abs=1e-3)


def test_without_output_the_spec_and_journal_go_under_the_working_directory(nab_subset, tmp_path, monkeypatch,
                                                                             capsys):
    data, labels = nab_subset
    space = write_space(tmp_path, trials=1)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["tune", "--space", str(space), "--data-dir", str(data), "--labels", str(labels),
                 "--jobs", "1", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert Path(summary["spec"]) == Path("models/space-tuned.yaml")
    assert load_model_spec(work / "models" / "space-tuned.yaml").measured["objective"] == "nab"
    assert (work / "models" / "space-tuned.trials.jsonl").exists()
    assert not (REPO / "models" / "space-tuned.yaml").exists()


def test_a_rerun_skips_the_trials_in_the_journal(nab_subset, tmp_path):
    data, labels = nab_subset
    space = load_space(write_space(tmp_path, trials=4))
    journal = tmp_path / "trials.jsonl"
    first = tune(space, Data(data_dir=data, labels=labels), journal, progress=False)
    assert first["ran"] == 5
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])  # two trials lost, one cut short by a crash
    again = tune(space, Data(data_dir=data, labels=labels), journal, progress=False)
    assert again["ran"] == 2
    assert again["best"]["value"] == first["best"]["value"]
    assert tune(space, Data(data_dir=data, labels=labels), journal, progress=False)["ran"] == 0
    # More trials of the same search run only the new ones; fewer run none.
    more = SearchSpace(**{**space.model_dump(), "trials": 6})
    assert tune(more, Data(data_dir=data, labels=labels), journal, progress=False)["ran"] == 2
    fewer = SearchSpace(**{**space.model_dump(), "trials": 2})
    summary = tune(fewer, Data(data_dir=data, labels=labels), journal, progress=False)
    assert summary["ran"] == 0 and summary["trials"] == 3
    # A changed space is another study: none of the old trials count for it.
    other = SearchSpace(**{**space.model_dump(), "seed": 2})
    assert tune(other, Data(data_dir=data, labels=labels), journal, progress=False)["ran"] == 5
    # So is an edited base spec, at the same path: its trials measured another model.
    base = yaml.safe_load((REPO / "models" / "metric-default.yaml").read_text())
    base["detector"]["params"] = {"tail_quantile": 0.99}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    edited = SearchSpace(**{**space.model_dump(), "model": tmp_path / "base.yaml"})
    assert tune(edited, Data(data_dir=data, labels=labels), journal, progress=False)["ran"] == 5
    base["detector"]["params"] = {"tail_quantile": 0.98}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    rerun = SearchSpace(**{**space.model_dump(), "model": tmp_path / "base.yaml"})  # the command run again
    assert tune(rerun, Data(data_dir=data, labels=labels), journal, progress=False)["ran"] == 5
    # So are labels corrected in place, though the file keeps its size: the trials measured the old ones.
    fixed = tmp_path / "labels.json"
    fixed.write_text(labels.read_text())
    assert tune(space, Data(data_dir=data, labels=fixed), journal, progress=False)["ran"] == 5
    assert tune(space, Data(data_dir=data, labels=fixed), journal, progress=False)["ran"] == 0
    fixed.write_text(labels.read_text().replace('"2014-02-', '"2014-03-'))
    assert fixed.stat().st_size == labels.stat().st_size
    assert tune(space, Data(data_dir=data, labels=fixed), journal, progress=False)["ran"] == 5


def test_a_base_spec_shipped_over_while_the_study_runs_does_not_end_up_in_the_tuned_spec(nab_subset, tmp_path):
    from detector.tuning import write_spec

    data, labels = nab_subset
    base = tmp_path / "base.yaml"
    base.write_text((REPO / "models" / "metric-default.yaml").read_text())
    space = load_space(write_space(tmp_path, trials=1, model=str(base)))
    outcome = tune(space, Data(data_dir=data, labels=labels), tmp_path / "j.jsonl", progress=False)
    # The file the study tunes is the one the service runs: an operator ships another spec over it.
    shipped = yaml.safe_load(base.read_text())
    shipped["detector"]["params"] = {"alpha": 0.2, "period": 0}
    base.write_text(yaml.safe_dump(shipped))
    out = write_spec(space, Data(data_dir=data, labels=labels), outcome, tmp_path / "tuned.yaml", None)
    params = load_model_spec(out).detector.params
    assert params.get("period") != 0 and params.get("alpha") != 0.2


def test_parallel_trials_give_the_serial_results(nab_subset, tmp_path):
    data, labels = nab_subset
    space = load_space(write_space(tmp_path, trials=3))
    serial = tune(space, Data(data_dir=data, labels=labels), tmp_path / "a.jsonl", jobs=1, progress=False)
    parallel = tune(space, Data(data_dir=data, labels=labels), tmp_path / "b.jsonl", jobs=2, progress=False)

    def values(path):
        return sorted((e["trial"], e["value"]) for e in map(json.loads, path.read_text().splitlines()))

    assert values(tmp_path / "a.jsonl") == values(tmp_path / "b.jsonl")
    assert serial["best"]["trial"] == parallel["best"]["trial"]


def test_the_alert_budget_picks_the_best_recall_within_budget(nab_subset, tmp_path):
    data, labels = nab_subset
    space = load_space(write_space(tmp_path, objective="alert_budget", pages_per_week=2, trials=5, params={
        "alerting.confidence_threshold": {"values": [0.9, 0.99, 0.999]},
        "alerting.fire_after": {"low": 1, "high": 3, "type": "int"}}))
    journal = tmp_path / "t.jsonl"
    outcome = tune(space, Data(data_dir=data, labels=labels), journal, progress=False)
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    within = [e for e in entries if e["figures"]["within_budget"]]
    best = outcome["best"]
    if within:
        assert best["figures"]["within_budget"]
        assert best["figures"]["recall"] == max(e["figures"]["recall"] for e in within)
    else:
        assert best["figures"]["worst_pages_per_week"] == min(e["figures"]["worst_pages_per_week"] for e in entries)
    # Firing more easily never finds fewer windows: recall is monotone in the threshold.
    by = {(e["params"].get("alerting.confidence_threshold"), e["params"].get("alerting.fire_after")): e for e in entries}
    for (thr, fire), e in by.items():
        for (thr2, fire2), e2 in by.items():
            if thr is not None and thr2 is not None and fire == fire2 and thr2 < thr:
                assert e2["figures"]["recall"] >= e["figures"]["recall"]


def test_grid_search_runs_every_combination_once():
    space = SearchSpace(method="grid", params={
        "model.detector.params.refractory": {"values": [25, 50]},
        "model.detector.params.alpha": {"low": 0.01, "high": 0.1, "steps": 3, "log": True}})
    trials = trial_params(space)
    assert trials[0] == {} and len(trials) == 1 + 2 * 3
    assert len({json.dumps(t, sort_keys=True) for t in trials}) == len(trials)


def test_a_bad_space_is_refused_with_its_key(tmp_path, capsys):
    space = write_space(tmp_path, params={"detector.alpha": {"low": 1, "high": 0}})
    assert main(["tune", "--space", str(space), "--data-dir", str(tmp_path), "--labels", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "params.detector.alpha" in err


def test_a_category_folder_given_for_the_data_folder_is_refused_before_any_trial(nab_subset, tmp_path, capsys):
    data, labels = nab_subset
    out = tmp_path / "tuned.yaml"
    assert main(["tune", "--space", str(write_space(tmp_path)), "--data-dir", str(data / "realAWSCloudwatch"),
                 "--labels", str(labels), "--output", str(out), "--jobs", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"no file under {data / 'realAWSCloudwatch'} is named in the labels file" in err
    assert f"give {data} as --data-dir" in err
    assert not out.exists()


def test_a_trial_with_an_invalid_parameter_is_recorded_as_failed_not_fatal(nab_subset, tmp_path):
    data, labels = nab_subset
    space = load_space(write_space(tmp_path, method="grid",
                                   params={"model.detector.params.alpha": {"values": [0.05, "lots"]}}))
    outcome = tune(space, Data(data_dir=data, labels=labels), tmp_path / "t.jsonl", progress=False)
    assert outcome["failed"] == 1 and outcome["trials"] == 3
    errors = {e["params"].get("model.detector.params.alpha"): e["error"]
              for e in map(json.loads, (tmp_path / "t.jsonl").read_text().splitlines())}
    assert errors[0.05] is None and "alpha must be in" in errors["lots"]


def test_when_every_changed_trial_fails_no_spec_is_written_and_the_first_failure_is_named(nab_subset, tmp_path,
                                                                                           capsys):
    data, labels = nab_subset
    space = write_space(tmp_path, trials=2, params={"model.detector.params.no_such_knob": {"low": 0.01, "high": 0.1}})
    out = tmp_path / "tuned.yaml"
    assert main(["tune", "--space", str(space), "--data-dir", str(data), "--labels", str(labels),
                 "--output", str(out), "--jobs", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "all 2 trials of the search space failed" in err and "no_such_knob" in err
    assert not out.exists()


@pytest.mark.parametrize("path", sorted((REPO / "models" / "spaces").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_search_spaces_load(path):
    space = load_space(path)
    assert space.model.is_file()
    assert len(trial_params(space)) > 1


def test_lead_time_is_measured_on_the_simulated_incidents_as_evaluate_incidents_does(tmp_path, capsys,
                                                                                      monkeypatch):
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    space = load_space(write_space(tmp_path, objective="lead_time", hours=12, trials=1, false_alerts_per_day=1000,
                                   scenarios=["error_burst_after_deploy"],
                                   params={"alerting.fire_after": {"values": [2]}}))
    journal = tmp_path / "t.jsonl"
    outcome = tune(space, Data(), journal, progress=False)
    base = outcome["baseline"]
    # One run per start hour of evaluate incidents (00:00 and 09:00), as the command does.
    assert base["error"] is None and base["figures"]["scenarios"] == 1 and base["figures"]["runs"] == 2
    assert not list(scratch.iterdir())  # the trial's model spec file is not left behind

    assert main(["evaluate", "incidents", "--hours", "12", "--scenario", "error_burst_after_deploy", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    leads = [max(r["lead_seconds"], 0.0) if r["detected"] else 0.0 for r in report["scenarios"]]
    assert base["value"] == pytest.approx(sum(leads) / len(leads), abs=0.05)
    assert base["figures"]["false_alerts_per_day"] == report["false_alerts_per_day"]


def test_a_spec_tuned_for_session_f1_keeps_its_session_key_and_loads(data_dir, tmp_path):
    from detector.pipeline import load_checked

    hdfs = data_dir / "loghub" / "hdfs"
    space = tmp_path / "f1.yaml"
    space.write_text(yaml.safe_dump({"model": str(REPO / "models" / "log-default.yaml"), "objective": "f1",
                                     "method": "grid", "params": {"model.sessions.threshold": {"values": [2.2]}}}))
    out = tmp_path / "tuned.yaml"
    assert main(["tune", "--space", str(space), "--log", str(hdfs / "hdfs_dev.log"),
                 "--labels", str(hdfs / "hdfs_dev_labels.csv"), "--session-key", r"blk_-?\d+", "--jobs", "1",
                 "--output", str(out), "--no-progress"]) == 0
    spec = load_checked(out, "log")  # as the service loads it
    assert spec.sessions["key"] == r"blk_-?\d+" and spec.sessions["threshold"] == 2.2


def test_lead_time_uses_the_pipeline_named_by_the_environment(tmp_path, monkeypatch, capsys):
    space = write_space(tmp_path, objective="lead_time", hours=2, trials=1, scenarios=["error_burst_after_deploy"],
                        params={"alerting.fire_after": {"values": [2]}})
    missing = tmp_path / "missing-pipeline.yaml"
    monkeypatch.setenv("OUTAGE_DETECTOR_PIPELINE", str(missing))
    assert main(["tune", "--space", str(space), "--output", str(tmp_path / "t.yaml"), "--jobs", "1",
                 "--no-progress"]) == 2
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "t.yaml").exists()


def test_a_misspelt_nab_profile_is_refused_when_the_space_is_loaded(tmp_path, capsys):
    space = write_space(tmp_path, profile="reward_low_FN")
    assert main(["tune", "--space", str(space), "--data-dir", str(tmp_path), "--labels", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "profile: Value error, 'reward_low_FN' is not a NAB profile; known: standard, reward_low_FP_rate, " \
           "reward_low_FN_rate" in err


@pytest.mark.parametrize("options, expected", [(["--trials", "1"], "--trials applies"),
                                              (["--seed", "7"], "--seed applies"),
                                              (["--trials", "1", "--seed", "7"], "--trials and --seed apply")])
def test_trials_or_seed_with_a_grid_space_is_an_error_not_ignored(tmp_path, capsys, options, expected):
    space = write_space(tmp_path, method="grid", params={"alerting.fire_after": {"values": [1, 2, 3]}})
    out = tmp_path / "tuned.yaml"
    assert main(["tune", "--space", str(space), "--data-dir", str(tmp_path), "--labels", str(tmp_path / "x"),
                 *options, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{expected} to a random search" in err and "3 combinations" in err
    assert not out.exists() and not out.with_name("tuned.trials.jsonl").exists()


def test_a_grid_space_that_sets_trials_or_a_seed_is_refused_when_loaded(tmp_path, capsys):
    space = write_space(tmp_path, method="grid", trials=5, params={"alerting.fire_after": {"values": [1, 2, 3]}})
    assert main(["tune", "--space", str(space), "--data-dir", str(tmp_path), "--labels", str(tmp_path / "x")]) == 2
    assert "trials applies to a random search; a grid search runs every combination once: remove trials" \
        in capsys.readouterr().err


def test_a_study_too_large_to_hold_is_refused_before_anything_runs(tmp_path, capsys):
    # Each planned trial is held from the start: a million of them took 1.3 GB before the first ran.
    space = write_space(tmp_path)
    out = tmp_path / "tuned.yaml"
    assert main(["tune", "--space", str(space), "--data-dir", str(tmp_path), "--labels", str(tmp_path / "x"),
                 "--trials", "1000000", "--output", str(out)]) == 2
    assert "trials: Input should be less than or equal to 100000" in capsys.readouterr().err
    forty = {"low": 1, "high": 40, "steps": 40, "type": "int"}
    grid = write_space(tmp_path, method="grid", params={
        "alerting.fire_after": forty, "alerting.resolve_after": forty,
        "model.detector.params.alpha": {"low": 0.001, "high": 0.1, "steps": 100}})  # 40 x 40 x 100
    assert main(["tune", "--space", str(grid), "--data-dir", str(tmp_path), "--labels", str(tmp_path / "x")]) == 2
    assert "the grid has 160000 combinations, over 100000: give fewer steps or values" in capsys.readouterr().err
    assert not out.exists()


# -- stopping a search: real processes, signalled mid-run --------------------------------------------


@pytest.fixture(scope="module")
def slow_corpus(tmp_path_factory) -> tuple[Path, Path]:
    """Two long NAB-layout series (150,000 points each), so that a trial takes about a second."""
    import numpy as np
    import polars as pl

    root = tmp_path_factory.mktemp("slow-nab")
    rows, labels = 150_000, {}
    times = np.datetime64("2024-01-01T00:00:00", "ms") + np.arange(rows) * np.timedelta64(5, "m")
    for k in range(2):
        rng = np.random.default_rng(k)
        values = 10 + 3 * np.sin(np.arange(rows) / 288 * 2 * np.pi) + rng.normal(0, 0.5, rows)
        values[rows // 2: rows // 2 + 20] += 8
        rel = f"synthetic/series_{k}.csv"
        (root / "data" / "synthetic").mkdir(parents=True, exist_ok=True)
        pl.DataFrame({"timestamp": times, "value": values.round(3)}).write_csv(
            root / "data" / rel, datetime_format="%Y-%m-%d %H:%M:%S")
        labels[rel] = [np.datetime_as_string(times[[rows // 2 - 50, rows // 2 + 50]], unit="s").tolist()]
    (root / "labels.json").write_text(json.dumps(labels))
    return root / "data", root / "labels.json"


def _group(pgid: int) -> set[int]:
    """PIDs of the live processes of a process group, read from /proc (zombies are not running)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The fields after the command name, which may hold spaces: state, ppid, pgrp, ...
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except (OSError, ValueError):
            continue
        if fields and fields[0] != "Z" and int(fields[2]) == pgid:
            pids.add(int(entry.name))
    return pids


@contextmanager
def _tune_running(tmp_path, corpus):
    """``python -m detector tune`` (30 trials of about a second, 2 workers) in its own process group,
    yielded once two trials are journalled; every process of the group is killed at the end, whatever
    the test found."""
    data, labels = corpus
    space = write_space(tmp_path, trials=30)
    out = tmp_path / "out" / "tuned.yaml"
    stderr = (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "detector", "tune", "--space", str(space), "--data-dir", str(data),
                             "--labels", str(labels), "--jobs", "2", "--output", str(out), "--no-progress"],
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL, stderr=stderr,
                            start_new_session=True)
    journal = out.with_name("tuned.trials.jsonl")
    try:
        started = wait_until(lambda: journal.is_file() and len(journal.read_text().splitlines()) >= 2, 120)
        assert started, f"no trial journalled: {(tmp_path / 'stderr.txt').read_text()}"
        yield proc, journal, tmp_path / "stderr.txt"
    finally:
        if _group(proc.pid):
            with suppress(ProcessLookupError):  # gone meanwhile
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        stderr.close()


@pytest.mark.parametrize("signum, to_group, code", [
    (signal.SIGTERM, False, 143),  # timeout, kill PID, a supervisor
    (signal.SIGINT, True, 130),  # Ctrl-C in a terminal: the whole process group
    (signal.SIGINT, False, 130),
], ids=["sigterm", "ctrl-c", "sigint"])
def test_a_signal_stops_the_search_at_once_keeps_the_journal_and_leaves_no_worker(slow_corpus, tmp_path, signum,
                                                                                 to_group, code):
    with _tune_running(tmp_path, slow_corpus) as (proc, journal, stderr):
        children = _group(proc.pid) - {proc.pid}  # the workers (and multiprocessing's resource tracker)
        assert len(children) >= 2
        before = len(journal.read_text().splitlines())
        sent = time.monotonic()
        if to_group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        assert proc.wait(timeout=60) == code
        assert time.monotonic() - sent < 10  # not after the 28 queued trials of about a second

        entries = [json.loads(line) for line in journal.read_text().splitlines()]
        assert len(entries) >= before and all(e["value"] is not None for e in entries)
        err = stderr.read_text()
        assert err == (f"outage-detector: tune stopped by {signal.Signals(signum).name}: {len(entries)} of 31 "
                       f"trials done ({len(entries)} in this run), journalled in {journal}; run the same command "
                       "again to resume\n")  # one line: no worker traceback either
        assert wait_until(lambda: not _group(proc.pid), 5), f"left running: {_group(proc.pid)} of {children}"


def test_workers_exit_when_the_main_process_is_killed_outright(slow_corpus, tmp_path):
    with _tune_running(tmp_path, slow_corpus) as (proc, journal, stderr):
        children = _group(proc.pid) - {proc.pid}
        assert len(children) >= 2
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert wait_until(lambda: not _group(proc.pid), 10), f"left running: {_group(proc.pid)} of {children}"


def test_a_lead_time_study_is_another_study_when_a_model_spec_its_pipeline_names_changes(tmp_path):
    log_spec = tmp_path / "log.yaml"
    log_spec.write_text((REPO / "models" / "log-default.yaml").read_text())
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(f"inputs: [{{topic: logs, kind: log, format: ecs}}]\nmodels: {{log: {log_spec}}}\n")
    before = Data(pipeline=pipeline).fingerprint()
    log_spec.write_text(log_spec.read_text().replace("window_seconds: 60", "window_seconds: 90"))
    assert Data(pipeline=pipeline).fingerprint() != before
