"""``outage-detector templates``: list the mined log templates, from a running service or its checkpoints."""

from __future__ import annotations

import json
import sys
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from detector.checkpoint import CheckpointStore
from detector.commands.common import non_negative_int
from detector.errors import DetectorError

TEMPLATE_FIELDS = ("id", "template", "count", "first_seen")


def add_command(sub) -> None:
    p = sub.add_parser(
        "templates",
        help="list the mined log templates with their counts and first-seen time",
        description="List the log templates a service has mined: from its /templates endpoint (--url) or "
        "from its checkpoint directory (--checkpoint-dir), most frequent first.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--url", help="the service's base URL, e.g. http://127.0.0.1:9108")
    src.add_argument("--checkpoint-dir", type=Path,
                     help="the service's checkpoint.directory (its default ./state is relative to the "
                     "service's working directory)")
    p.add_argument("--top", type=non_negative_int, default=50, help="how many to print (default 50; 0 for all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def from_url(url: str) -> list[dict]:
    endpoint = url.rstrip("/") + "/templates"
    try:
        with urllib.request.urlopen(endpoint, timeout=10) as resp:
            rows = json.loads(resp.read())
    except OSError as exc:
        raise DetectorError(f"cannot read templates from {url}: {exc}") from None
    except ValueError:
        raise DetectorError(f"{endpoint} did not answer with JSON: is {url} the base URL of an outage-detector "
                            "service?") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and all(f in r for f in TEMPLATE_FIELDS)
                                             for r in rows):
        raise DetectorError(f"{endpoint} answered JSON that is not a list of templates (each with "
                            f"{', '.join(TEMPLATE_FIELDS)}): is {url} the base URL of an outage-detector service?")
    if not rows:
        # Said on stderr, as for checkpoints without a log model: stdout keeps the empty table (or []).
        print(f"templates: the service at {url} has mined no templates: it has no log input, or has not "
              "consumed a log record yet", file=sys.stderr)
    return rows


def from_checkpoints(directory: Path) -> list[dict]:
    if not directory.is_dir():
        raise DetectorError(f"{directory} is not a directory")
    store = CheckpointStore(directory)
    out = []
    topics, log_topics = set(), set()
    for path in sorted(directory.glob("*.ckpt")):
        topic, _, partition = path.stem.rpartition("-")
        if not partition.isdigit():
            continue  # not a partition's checkpoint (<topic>-<partition>.ckpt)
        topics.add(topic)
        state = store.load(topic, int(partition))
        if getattr(state, "kind", None) == "log":
            log_topics.add(topic)
            out.extend({"topic": topic, "partition": int(partition), **t} for t in state.model.templates())
    if not topics:
        # An empty table would read as "no templates mined"; most often it is the wrong directory.
        raise DetectorError(f"{directory} holds no partition checkpoints (<topic>-<partition>.ckpt); give the "
                            "service's checkpoint.directory (the default ./state is relative to the directory "
                            "the service was started in)")
    if not log_topics:
        # The right directory, and a true answer: a service with no log input mines no templates. Said on
        # stderr, so the empty table (or []) is still what stdout holds.
        print(f"templates: {directory} holds no log model, so there are no templates to list: its checkpoints "
              f"are of metric partitions only (topics: {', '.join(sorted(topics))})", file=sys.stderr)
    return out


def run(args) -> int:
    rows = from_url(args.url) if args.url else from_checkpoints(args.checkpoint_dir)
    rows.sort(key=lambda t: (-t["count"], t["first_seen"]))
    if args.top:
        rows = rows[: args.top]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'count':>10}  {'first seen (UTC)':19}  {'partition':>12}  {'id':>6}  template")
    for t in rows:
        seen = datetime.fromtimestamp(t["first_seen"], tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        where = f"{t.get('topic', '')}[{t.get('partition', '')}]"
        print(f"{t['count']:>10}  {seen:19}  {where[-12:]:>12}  {t['id']:>6}  {t['template']}")
    return 0
