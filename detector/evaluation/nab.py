"""``outage-detector evaluate nab``: replay NAB-layout files through a metric model and score them.

Every CSV under ``--data-dir`` is streamed row by row through a fresh :class:`SeriesModel` (score
before learn, exactly as the service does), and the per-row scores are scored with NAB's method
(:mod:`detector.evaluation.nab_scoring`) for each profile.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from detector.commands.common import non_negative_int
from detector.errors import ConfigError
from detector.evaluation import nab_scoring as scoring
from detector.evaluation.nab_data import NabFile, read_corpus
from detector.series_model import SeriesModel
from detector.pipeline import load_checked
from detector.specs import MODELS_DIR, MetricModelSpec

DEFAULT_DATA_DIR = Path("data/nab/data")
DEFAULT_LABELS = Path("data/nab/labels/combined_windows.json")
DEFAULT_MODEL = MODELS_DIR / "metric-default.yaml"


def add_command(subparsers) -> None:
    p = subparsers.add_parser(
        "nab",
        help="score a metric model on NAB-layout data",
        description="Stream every CSV under DIR through the metric model (score before learn) and "
        "score the anomaly scores with NAB's method for each profile. Without --data-dir and --labels, "
        f"NAB's layout is looked for under the working directory ({DEFAULT_DATA_DIR}, {DEFAULT_LABELS}).",
    )
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, metavar="DIR",
                   help=f"NAB data/ folder (default: {DEFAULT_DATA_DIR} under the working directory)")
    p.add_argument("--labels", type=Path, default=DEFAULT_LABELS, metavar="FILE",
                   help=f"NAB combined_windows.json (default: {DEFAULT_LABELS} under the working directory)")
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="metric model spec (YAML)")
    p.add_argument("--profiles", type=Path, default=None,
                   help="NAB profiles.json (default: NAB's three profiles; also looked for next to the labels folder)")
    p.add_argument("--thresholds", type=Path, default=None,
                   help="score with these fixed thresholds (thresholds.json of an earlier run)")
    p.add_argument("--results-dir", type=Path, default=None, help="write NAB-format results here")
    p.add_argument("--reliability", action="store_true",
                   help="add a reliability table of the calibrated confidence (rows outside windows)")
    # 0 is a run of its own: the two halves of alternate files, without random splits.
    p.add_argument("--held-out", type=non_negative_int, default=None, metavar="SPLITS",
                   help="also score each half of the files with the thresholds optimised on the other half: "
                   "the two halves of alternate files, and SPLITS random half-splits (seeded, both ways; "
                   "0 for none); not with --thresholds")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def load_profiles(path: Path | None, labels_path: Path) -> list[scoring.Profile]:
    if path is None:
        guess = labels_path.parent.parent / "profiles.json"
        if not guess.is_file():
            return list(scoring.DEFAULT_PROFILES)
        path = guess
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return [scoring.Profile.from_nab(name, entry) for name, entry in data.items()]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a NAB profiles file: {exc}") from None


def load_thresholds(path: Path, detector_name: str, profiles) -> dict[str, float]:
    """Accepts this command's thresholds.json (NAB's layout: detector -> profile -> {threshold}; the entry
    of the model's detector, or the only entry) as well as a flat ``{profile: threshold}`` mapping. Every
    profile needs a threshold from 0 to 1."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read thresholds: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: thresholds are a JSON object, the thresholds.json of an earlier run "
                          f"({{detector: {{profile: {{\"threshold\": t}}}}}}) or {{profile: threshold}}; the file "
                          f"holds {'null' if data is None else 'a JSON ' + type(data).__name__}")
    if detector_name in data and isinstance(data[detector_name], dict):
        data = data[detector_name]
    elif data and all(isinstance(v, dict) and v and all(isinstance(e, dict) for e in v.values())
                      for v in data.values()):
        # Detector -> profile -> {threshold}: one detector's entry is used whatever its name (an earlier
        # run of another model); among several (NAB's own results file) none is ours to pick.
        if len(data) > 1:
            names = ", ".join(list(data)[:5]) + (", ..." if len(data) > 5 else "")
            raise ConfigError(f"{path}: holds the thresholds of {len(data)} detectors ({names}), none of them "
                              f"{detector_name!r}, the model's detector: keep only the entry whose thresholds to "
                              "use ({detector: {profile: {\"threshold\": t}}}), or give {profile: threshold}")
        data = next(iter(data.values()))
    out = {}
    for profile, entry in data.items():
        value = entry.get("threshold") if isinstance(entry, dict) else entry
        # Scores lie in [0, 1], so nothing else can be a threshold: json reads NaN (which compares false
        # with everything) and Infinity, and Python takes true for 1.
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ConfigError(f"{path}: threshold for profile {profile!r} is {json.dumps(value)}, not a number "
                              "from 0 to 1 (anomaly scores lie in [0, 1])")
        out[profile] = float(value)
    missing = [p.name for p in profiles if p.name not in out]
    if missing:
        raise ConfigError(f"{path}: no threshold for profile {missing[0]!r} (the file has "
                          f"{', '.join(map(repr, out)) or 'none'})")
    return out


def score_corpus(spec: MetricModelSpec, files: list[NabFile], progress: bool = True):
    """Replay every file through a fresh model. Returns (per-file (scores, confidences), seconds)."""
    from tqdm import tqdm

    unlabelled = [f.key for f in files if not f.labelled]
    if unlabelled:
        # Some files only (read_corpus refuses none): most likely files added to a NAB copy, or renamed.
        print(f"warning: {len(unlabelled)} of {len(files)} files have no entry in the labels file and are scored "
              f"as having no anomaly windows: {', '.join(unlabelled[:5])}{' ...' if len(unlabelled) > 5 else ''}",
              file=sys.stderr, flush=True)
    outputs = []
    elapsed = 0.0
    bar = tqdm(total=sum(len(f.values) for f in files), unit="row", file=sys.stderr,
               disable=None if progress else True, desc="nab")
    for f in files:
        model = SeriesModel.from_spec(spec)
        t0 = time.perf_counter()
        scores, confidences = model.update_many(f.timestamps, f.values)
        elapsed += time.perf_counter() - t0
        outputs.append((np.clip(np.asarray(scores, dtype=float), 0.0, 1.0), np.asarray(confidences, dtype=float)))
        bar.update(len(f.values))
    bar.close()
    return outputs, elapsed


def reliability_table(files, outputs, levels=(0.5, 0.8, 0.9, 0.95, 0.99, 0.999)) -> list[dict]:
    """How often confidence >= c outside the label windows (after each file's warm-up), next to 1 - c."""
    conf = []
    for f, (_, c) in zip(files, outputs):
        bounds = scoring.window_bounds(f.timestamps, f.windows)
        outside = np.ones(len(c), dtype=bool)
        for left, right in bounds:
            outside[left : right + 1] = False
        outside[: scoring.probation_length(len(c))] = False
        conf.append(c[outside])
    allc = np.concatenate(conf) if conf else np.zeros(0)
    return [
        {"confidence_at_least": lv, "expected_fraction": round(1 - lv, 6),
         "observed_fraction": round(float(np.mean(allc >= lv)) if len(allc) else 0.0, 6)}
        for lv in levels
    ]


def held_out_scores(prepared: list, profiles, splits: int, seed: int = 0) -> dict:
    """How the score holds on files the threshold was not chosen on.

    Half A is the files at even positions (sorted by path), half B the others; each is scored with the
    threshold optimised on the other half. Each of ``splits`` random half-splits is scored both ways,
    and the mean and minimum of those ``2 * splits`` scores are reported.
    """
    def score(test: list[int], train: list[int], profile) -> float:
        threshold, _ = scoring.optimise_threshold([prepared[i] for i in train], profile)
        chosen = [prepared[i] for i in test]
        null, perfect = scoring.null_and_perfect(chosen, profile)
        return scoring.normalise(scoring.score_at(chosen, profile, threshold), null, perfect)

    n = len(prepared)
    if n < 2:
        raise ConfigError("--held-out needs at least two files")
    even, odd = list(range(0, n, 2)), list(range(1, n, 2))
    rng = np.random.default_rng(seed)
    random_halves = []
    for _ in range(splits):
        order = rng.permutation(n).tolist()
        random_halves.append((order[: n // 2], order[n // 2 :]))
    out: dict = {"random_splits": splits, "seed": seed}
    for profile in profiles:
        both_ways = [score(a, b, profile) for x, y in random_halves for a, b in ((x, y), (y, x))]
        out[profile.name] = {
            "half_a": round(score(even, odd, profile), 4),
            "half_b": round(score(odd, even, profile), 4),
            "random_mean": round(float(np.mean(both_ways)), 4) if both_ways else None,
            "random_min": round(float(np.min(both_ways)), 4) if both_ways else None,
        }
    return out


def write_results(out_dir: Path, detector_name: str, files, outputs, thresholds_doc: dict) -> None:
    for f, (scores, _) in zip(files, outputs):
        category, _, name = f.key.rpartition("/")
        target = out_dir / category / f"{detector_name}_{name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        label = np.zeros(len(scores), dtype=int)
        for left, right in scoring.window_bounds(f.timestamps, f.windows):
            label[left : right + 1] = 1
        with target.open("w", encoding="utf-8") as fh:
            fh.write("timestamp,value,anomaly_score,label\n")
            for ts, v, s, lab in zip(f.raw_timestamps, f.values.tolist(), scores.tolist(), label.tolist()):
                fh.write(f"{ts},{v!r},{s!r},{lab}\n")
    (out_dir / "thresholds.json").write_text(json.dumps(nan_as_null(thresholds_doc), indent=2) + "\n",
                                             encoding="utf-8")


def nan_as_null(value):
    """``value`` with NaN and infinities as None: json.dumps writes them bare (NaN), which is not JSON and
    which strict parsers refuse. (A threshold is NaN when a detector scored every row NaN.)"""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: nan_as_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nan_as_null(v) for v in value]
    return value


def evaluate(spec: MetricModelSpec, data_dir: Path, labels_path: Path, profiles, fixed: dict | None = None,
             results_dir: Path | None = None, reliability: bool = False, progress: bool = True,
             held_out: int | None = None) -> dict:
    started = time.perf_counter()
    files = read_corpus(data_dir, labels_path)
    outputs, model_seconds = score_corpus(spec, files, progress)
    prepared = [
        scoring.prepare_file(scores, scoring.window_bounds(f.timestamps, f.windows))
        for f, (scores, _) in zip(files, outputs)
    ]
    windows_total = sum(len(scoring.window_bounds(f.timestamps, f.windows)) for f in files)
    result: dict = {}
    thresholds: dict[str, float] = {}
    raw: dict[str, float] = {}
    for profile in profiles:
        if fixed is not None:
            t = fixed[profile.name]
            total = scoring.score_at(prepared, profile, t)
        else:
            t, total = scoring.optimise_threshold(prepared, profile)
        null, perfect = scoring.null_and_perfect(prepared, profile)
        result[profile.name] = round(scoring.normalise(total, null, perfect), 4)
        thresholds[profile.name] = t
        raw[profile.name] = total
    rows = int(sum(len(f.values) for f in files))
    result.update(
        thresholds=thresholds,
        files=len(files),
        rows=rows,
        seconds=round(time.perf_counter() - started, 3),
        points_per_second=round(rows / model_seconds) if model_seconds > 0 else None,
        windows=windows_total,
        detector=spec.detector.name,
    )
    if reliability:
        result["reliability"] = reliability_table(files, outputs)
    if held_out is not None:
        result["held_out"] = held_out_scores(prepared, profiles, held_out)
    if results_dir is not None:
        doc = {spec.detector.name: {p: {"threshold": thresholds[p], "score": raw[p]} for p in thresholds}}
        write_results(results_dir, spec.detector.name, files, outputs, doc)
    return result


def run(args: argparse.Namespace) -> int:
    for option, value, default in (("--data-dir", args.data_dir, DEFAULT_DATA_DIR), ("--labels", args.labels, DEFAULT_LABELS)):
        if value == default and not value.exists():
            # The default is relative: run from elsewhere, it silently points at nothing.
            raise ConfigError(f"{option} not given and its default {default} does not exist under the working "
                              f"directory {Path.cwd()}; pass {option}")
    spec = load_checked(args.model, "metric")
    profiles = load_profiles(args.profiles, args.labels)
    if args.held_out is not None and args.thresholds is not None:
        raise ConfigError("--held-out optimises its own thresholds on each half: leave out --thresholds")
    fixed = load_thresholds(args.thresholds, spec.detector.name, profiles) if args.thresholds else None
    result = evaluate(spec, args.data_dir, args.labels, profiles, fixed, args.results_dir, args.reliability,
                      held_out=args.held_out)
    if args.json:
        print(json.dumps(nan_as_null(result)))
    else:
        for profile in profiles:
            print(f"{profile.name:>20}: {result[profile.name]:7.2f}  (threshold {result['thresholds'][profile.name]:.6g})")
        print(f"{result['files']} files, {result['rows']} rows, {result['seconds']} s, "
              f"{result['points_per_second']} points/s")
        held = result.get("held_out")
        if held:
            for profile in profiles:
                h = held[profile.name]
                line = f"{profile.name:>20}: held out, half A {h['half_a']:.2f}, half B {h['half_b']:.2f}"
                if h["random_mean"] is not None:
                    line += f", random splits mean {h['random_mean']:.2f} (min {h['random_min']:.2f})"
                print(line)
        for row in result.get("reliability", []):
            print(f"confidence >= {row['confidence_at_least']}: {row['observed_fraction']:.4f} "
                  f"of points (ideal {row['expected_fraction']:.4f})")
    return 0
