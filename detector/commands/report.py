"""``outage-detector report``: a self-contained HTML report of a replay."""

from __future__ import annotations

from pathlib import Path

from detector.commands.common import positive_int, unit_interval


def add_command(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write a self-contained HTML report of replay scores (plots, alerts, templates, baselines)",
        description="Plot the series a replay scored with their scores, confidence, threshold, labelled windows "
        "and alerts; the alert timeline; template counts; precision/recall/lead time against labels; batch "
        "baselines (IsolationForest, rolling z-score) on the same series; and tuning results. One HTML file "
        "that needs no network.",
    )
    p.add_argument("--scores", required=True, type=Path, metavar="OUT.parquet",
                   help="scores written by replay (OUT.parquet itself; its .alerts and .templates siblings are "
                   "read beside it)")
    p.add_argument("--labels", type=Path, help="label windows: NAB combined_windows.json, or a CSV whose first line is the header "
                   "key,start,end[,reference]")
    p.add_argument("--journal", type=Path, help="a tuning journal (trials.jsonl) to show")
    p.add_argument("--output", required=True, type=Path, metavar="REPORT.html")
    p.add_argument("--threshold", type=unit_interval, default=0.99,
                   help="confidence threshold drawn and counted, from 0 to 1 (default 0.99)")
    p.add_argument("--max-series", type=positive_int, default=8, help="series and entities plotted, most anomalous first (default 8)")
    p.add_argument("--max-points", type=positive_int, default=5000, help="points per plotted series, anomalies always kept (default 5000)")
    p.add_argument("--baseline-series", type=positive_int, default=4, help="series scored by the batch baselines (default 4)")
    p.add_argument("--baseline-points", type=positive_int, default=4000, help="points per series scored by the baselines (default 4000)")
    p.add_argument("--no-baselines", action="store_true", help="skip the batch baselines")
    p.set_defaults(func=run)


def run(args) -> int:
    from detector.report import Options, write_report

    options = Options(threshold=args.threshold, max_series=args.max_series, max_points=args.max_points,
                      baselines=not args.no_baselines, baseline_series=args.baseline_series,
                      baseline_points=args.baseline_points)
    out = write_report(args.scores, args.output, args.labels, args.journal, options)
    print(out)
    return 0
