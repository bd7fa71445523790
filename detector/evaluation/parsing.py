"""``outage-detector evaluate parsing``: grouping accuracy of the template miner on a labelled file.

Grouping accuracy is the Loghub/logparser benchmark's: a line is correct when the set of lines the
miner put in its group is exactly the set of lines in its ground-truth group; GA is the share of
correct lines.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from pathlib import Path

from detector.errors import ConfigError

STRUCTURED_COLUMNS = ("Content", "EventId")


def grouping_accuracy(truth: Sequence[Hashable], predicted: Sequence[Hashable]) -> float:
    """Share of lines whose predicted group equals their true group, as a set of lines."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true labels but {len(predicted)} predictions")
    if not truth:
        return 0.0
    truth_sizes = Counter(truth)
    members: dict[Hashable, list[Hashable]] = defaultdict(list)
    for t, p in zip(truth, predicted):
        members[p].append(t)
    correct = 0
    for labels in members.values():
        first = labels[0]
        # A predicted group is right when all its lines share one true group and cover all of it.
        if truth_sizes[first] == len(labels) and all(t == first for t in labels):
            correct += len(labels)
    return correct / len(truth)


def read_structured(path: str | Path) -> tuple[list[str], list[str]]:
    """Content and EventId columns of a Loghub ``*_structured.csv`` file."""
    import polars as pl

    path = Path(path)
    what = "cannot read a Loghub structured log (a CSV with Content and EventId columns)"
    try:
        columns = pl.scan_csv(path, infer_schema=False).collect_schema().names()
        missing = [c for c in STRUCTURED_COLUMNS if c not in columns]
        if missing:
            # Most often the raw log given for its *_structured.csv: its first line became the header.
            sibling = path.with_name(path.name + "_structured.csv")
            hint = f"; did you mean {sibling}?" if sibling.is_file() else " (give Loghub's *_structured.csv)"
            raise ConfigError(f"{path}: {what}: its header has no {' or '.join(missing)} column{hint}")
        df = pl.read_csv(path, columns=list(STRUCTURED_COLUMNS), infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as exc:
        # polars appends its query plan: the first line says what went wrong.
        raise ConfigError(f"{path}: {what}: {str(exc).splitlines()[0]}") from None
    if not df.height:
        # Nothing to group: the accuracy would be 0, like a miner that gets every line wrong.
        raise ConfigError(f"{path}: no log line after the header (expected Loghub's *_structured.csv rows)")
    content = [c if c is not None else "" for c in df["Content"].to_list()]
    return content, df["EventId"].to_list()


def run_parsing(content: list[str], truth: list[str], miner_params: dict | None = None) -> dict:
    from detector.logs.miner import TemplateMiner
    from detector.logs.params import MinerParams

    miner = TemplateMiner(**MinerParams.from_dict(miner_params or {}, "miner").kwargs())
    start = time.perf_counter()
    ids = [miner.add(line).template.id for line in content]
    elapsed = time.perf_counter() - start
    # Templates that merged later are one group: the grouping is the miner's at the end of the file.
    ids = [miner.resolve(i) for i in ids]
    return {
        "grouping_accuracy": round(grouping_accuracy(truth, ids), 4),
        "templates": len(miner),
        "lines": len(content),
        "lines_per_second": round(len(content) / elapsed, 1) if elapsed > 0 else None,
    }


def distinct_names(paths: Sequence[Path]) -> dict[Path, str]:
    """Each path's shortest trailing part that no other path ends with: the file name unless two files
    share it (``dev/HDFS_2k...``, ``test/HDFS_2k...``), so that every file keeps a row of its own."""
    parts = {p: p.parts for p in paths}
    out = {}
    for p, own in parts.items():
        n = 1
        while n < len(own) and any(q != p and other[-n:] == own[-n:] for q, other in parts.items()):
            n += 1
        out[p] = Path(*own[-n:]).as_posix()
    return out


def _run(args) -> int:
    params = None
    if args.model:
        from detector.logs.params import load_log_spec

        params = load_log_spec(args.model).miner
    results = {}
    for path in map(Path, args.structured):
        content, truth = read_structured(path)
        results[path] = run_parsing(content, truth, params)
    if len(results) == 1:
        result = next(iter(results.values()))
    else:
        # Several systems: each is mined by a fresh miner; the headline is the mean accuracy.
        lines = sum(r["lines"] for r in results.values())
        seconds = sum(r["lines"] / r["lines_per_second"] for r in results.values() if r["lines_per_second"])
        result = {
            "grouping_accuracy": round(sum(r["grouping_accuracy"] for r in results.values()) / len(results), 4),
            "templates": sum(r["templates"] for r in results.values()),
            "lines": lines,
            "lines_per_second": round(lines / seconds, 1) if seconds else None,
            "files": {name: results[p] for p, name in distinct_names(list(results)).items()},
        }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            if k == "files":
                for name, r in v.items():
                    print(f"  {name}: grouping_accuracy {r['grouping_accuracy']}, templates {r['templates']}")
            else:
                print(f"{k}: {v}")
    return 0


def add_command(subparsers) -> None:
    p = subparsers.add_parser("parsing", help="grouping accuracy of the template miner on a structured log")
    p.add_argument("--structured", required=True, nargs="+", metavar="FILE",
                   help="Loghub *_structured.csv (Content, EventId columns); several give their mean")
    p.add_argument("--model", help="log model spec (YAML); its miner section is used")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)
