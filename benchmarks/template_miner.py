"""Template-mining throughput: our miner against Drain3 on the same lines, in the same run.

Both mine every line online, one at a time, with masks for the same kinds of values (UUIDs, IPs
with ports, MAC-like byte strings, hex, paths, timestamps, numbers); Drain3 applies its masks as a
sequence of regular expressions, ours masks in one cached pass over the tokens. Runs alternate and
the best of each is kept, since the machine is shared. Prints one JSON object.

    python benchmarks/template_miner.py [--data DIR] [--max-lines N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "loghub"

# Drain3 masks for the same kinds of values our miner masks, in Drain3's own instruction format.
DRAIN3_MASKS = [
    (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "UUID"),
    (r"((?<=[^A-Za-z0-9])|^)(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(:\d+)?)((?=[^A-Za-z0-9])|$)", "IP"),
    (r"((?<=[^A-Za-z0-9])|^)(([0-9a-fA-F]{2}:){3,}([0-9a-fA-F]{2}))((?=[^A-Za-z0-9])|$)", "ID"),
    (r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?", "TIME"),
    (r"((?<=[^A-Za-z0-9])|^)(\d{1,2}:\d{2}:\d{2})((?=[^A-Za-z0-9])|$)", "TIME"),
    (r"((?<=[^A-Za-z0-9])|^)(0x[a-fA-F0-9]+)((?=[^A-Za-z0-9])|$)", "HEX"),
    (r"((?<=\s)|^)((/[\w.~@%+-]*){2,})((?=\s)|$)", "PATH"),
    (r"((?<=[^A-Za-z0-9])|^)([\-\+]?\d+)((?=[^A-Za-z0-9])|$)", "NUM"),
]


def load_lines(data: Path, max_lines: int) -> list[str]:
    import polars as pl

    lines: list[str] = []
    for f in sorted((data / "2k").glob("*/*_2k.log_structured.csv")):
        lines += [c or "" for c in pl.read_csv(f, columns=["Content"], infer_schema=False)["Content"].to_list()]
    hdfs = data / "hdfs" / "hdfs_dev.log"
    if hdfs.exists():
        with open(hdfs, encoding="utf-8", errors="replace") as fh:
            for raw in fh:
                # Content after "date time pid level component: ", as in the structured files.
                parts = raw.rstrip("\n").split(" ", 5)
                lines.append(parts[5] if len(parts) == 6 else raw)
    return lines[:max_lines] if max_lines else lines


def run_ours(lines: list[str]) -> tuple[float, int]:
    from detector.logs.miner import TemplateMiner

    miner = TemplateMiner()
    add = miner.add
    start = time.perf_counter()
    for line in lines:
        add(line)
    return time.perf_counter() - start, len(miner)


def run_drain3(lines: list[str]) -> tuple[float, int]:
    from drain3 import TemplateMiner as Drain3
    from drain3.masking import MaskingInstruction
    from drain3.template_miner_config import TemplateMinerConfig

    config = TemplateMinerConfig()
    config.masking_instructions = [MaskingInstruction(p, m) for p, m in DRAIN3_MASKS]
    config.profiling_enabled = False
    miner = Drain3(config=config)
    add = miner.add_log_message
    start = time.perf_counter()
    for line in lines:
        add(line)
    return time.perf_counter() - start, len(miner.drain.clusters)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with 2k/ and hdfs/ (Loghub layout)")
    ap.add_argument("--max-lines", type=int, default=0, help="use only the first N lines (0: all)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating runs of each miner; the best counts")
    args = ap.parse_args(argv)
    lines = load_lines(args.data, args.max_lines)
    if not lines:
        print(f"no lines under {args.data}", file=sys.stderr)
        return 2
    ours, theirs = [], []
    for _ in range(args.rounds):
        ours.append(run_ours(lines))
        theirs.append(run_drain3(lines))
    t_ours, n_ours = min(ours)
    t_drain, n_drain = min(theirs)
    print(json.dumps({
        "lines": len(lines),
        "ours_lines_per_second": round(len(lines) / t_ours, 1),
        "drain3_lines_per_second": round(len(lines) / t_drain, 1),
        "ratio": round(t_drain / t_ours, 2),
        "ours_templates": n_ours,
        "drain3_templates": n_drain,
        "rounds": args.rounds,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
