"""A self-contained HTML report of a replay: series with scores, thresholds and labelled windows, alert
timelines, template counts, evaluation tables, batch baselines and tuning results.

Plots are plotly figures with plotly.js inlined once in the page, so the file opens anywhere (an
incident review, an air-gapped laptop) without fetching anything, and SREs can zoom into the minutes
around an alert. Inputs are the outputs of ``replay`` (``OUT.parquet`` and its ``.alerts`` and
``.templates`` siblings), optionally labels and a tuning journal.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

from detector.decoders.timestamps import parse_timestamp
from detector.errors import ConfigError
from detector.logs.model import SIGNALS as LOG_MODEL_SIGNALS
from detector.evaluation.nab_data import label_window, read_labels
from detector.replay import sibling
from detector.tuning import journal_entries

LOG_SIGNALS = ("log_template_rate", "log_error_ratio", "log_session")
# Log scores name their input topic as series too: a metric score is one the log model did not make.
IS_METRIC = ~pl.col("signal").is_in(LOG_MODEL_SIGNALS)


def series_name(signal: str, series: str | None) -> str:
    """A stream's readable name: a metric's series (its signal when it has none); a log signal with the
    input topic it came from, since one entity's signals on two log inputs are separate streams."""
    if signal in LOG_MODEL_SIGNALS:
        return f"{signal} ({series})" if series else signal
    return series or signal


SCORE_COLUMNS = ("timestamp", "entity", "signal", "series", "score", "confidence", "value")
LABEL_COLUMNS = ("key", "start", "end", "reference")  # of a labels CSV; reference is optional


# -- inputs ------------------------------------------------------------------------------------


@dataclass
class Window:
    start: float
    end: float
    reference: float  # when impact began: lead time is measured against it

    @property
    def label(self) -> str:
        return f"{_iso(self.start)} .. {_iso(self.end)}"


def load_labels(path: str | Path) -> dict[str, list[Window]]:
    """Label windows per key: NAB's ``{"<key>": [[start, end], ...]}`` JSON, read as ``evaluate nab`` reads
    it, or a CSV whose header is ``key,start,end[,reference]``. ``reference`` (default: the start) is what
    lead time counts to."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return {key: [Window(s, e, s) for s, e in windows] for key, windows in read_labels(path).items()}
    try:
        frame = pl.read_csv(path, infer_schema=False)
        # Without the header, polars would take the first window for column names and drop it.
        if tuple(frame.columns[:3]) != LABEL_COLUMNS[:3] or not set(frame.columns) <= set(LABEL_COLUMNS):
            raise ValueError("a labels CSV starts with the header line key,start,end (optionally ,reference); "
                             f"its first line is {','.join(frame.columns)!r}")
        out: dict[str, list[Window]] = {}
        for key, start, end, *rest in frame.select(c for c in LABEL_COLUMNS if c in frame.columns).rows():
            try:
                s, e = label_window(start, end)
            except ValueError as exc:
                raise ValueError(f"window {start} .. {end} of {key!r}: {exc}") from None
            ref = parse_timestamp(rest[0]) if rest and rest[0] not in (None, "") else s
            out.setdefault(str(key), []).append(Window(s, e, ref))
        return out
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
        raise ConfigError(f"{path}: cannot read label windows: {exc}") from None


def windows_for(labels: dict[str, list[Window]], *names: str) -> list[Window]:
    """The windows whose key is one of ``names``, or whose file name stem is."""
    for n in names:
        if n and n in labels:
            return labels[n]
    stems = {Path(k).stem: k for k in labels}
    for n in names:
        if n and n in stems:
            return labels[stems[n]]
    return []


@dataclass
class ReplayOutput:
    scores: pl.LazyFrame
    alerts: pl.DataFrame
    templates: pl.DataFrame | None
    path: Path
    incidents: pl.DataFrame | None = None

    @classmethod
    def read(cls, path: str | Path) -> "ReplayOutput":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such scores file (write one with outage-detector replay)")
        alerts_path, templates_path = sibling(path, "alerts"), sibling(path, "templates")
        alerts = pl.read_parquet(alerts_path) if alerts_path.is_file() else pl.DataFrame(
            schema={"timestamp": pl.Float64, "entity": pl.String, "signal": pl.String, "series": pl.String,
                    "state": pl.String, "confidence": pl.Float64, "since": pl.Float64})
        templates = pl.read_parquet(templates_path) if templates_path.is_file() else None
        incidents_path = sibling(path, "incidents")
        incidents = pl.read_parquet(incidents_path) if incidents_path.is_file() else None
        scores = pl.scan_parquet(path)
        try:
            columns = scores.collect_schema().names()
        except pl.exceptions.PolarsError as exc:
            raise ConfigError(f"{path}: not the scores Parquet file of a replay ({str(exc).splitlines()[0]})") from None
        missing = [c for c in SCORE_COLUMNS if c not in columns]
        if missing:
            # Most often a sibling (OUT.alerts.parquet, ...) given instead of OUT.parquet itself.
            raise ConfigError(f"{path}: not the scores Parquet file of a replay: it lacks the column(s) "
                              f"{', '.join(missing)} (a scores file has {', '.join(SCORE_COLUMNS)}); pass the "
                              "OUT.parquet that replay wrote, not one of its .alerts/.templates/.incidents siblings")
        return cls(scores, alerts, templates, path, incidents)


# -- pieces of the page --------------------------------------------------------------------------


@dataclass
class Page:
    title: str
    sections: list[str] = field(default_factory=list)
    figures: int = 0

    def add(self, heading: str, *parts: str, note: str = "") -> None:
        body = "".join(parts)
        intro = f"<p class='note'>{html.escape(note)}</p>" if note else ""
        self.sections.append(f"<section><h2>{html.escape(heading)}</h2>{intro}{body}</section>")

    def figure(self, fig) -> str:
        self.figures += 1
        return fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{self.figures}",
                           config={"displaylogo": False, "responsive": True})

    def render(self) -> str:
        from plotly.offline import get_plotlyjs

        return (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{CSS}</style>"
            f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
            f"<h1>{html.escape(self.title)}</h1>{''.join(self.sections)}</body></html>"
        )


CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem auto;max-width:1200px;color:#222}
h1{font-size:1.5rem} h2{font-size:1.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.85rem} td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:right}
th{background:#f4f4f4} td.text{text-align:left;max-width:40rem;overflow-wrap:anywhere} .note{color:#555;font-size:.9rem}
"""


def table(rows: list[dict], text_cols: tuple[str, ...] = ()) -> str:
    if not rows:
        return "<p class='note'>nothing to show</p>"
    cols = list(dict.fromkeys(c for r in rows for c in r))  # every column any row has, in first-seen order
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            cls = " class='text'" if c in text_cols or isinstance(v, str) else ""
            cells.append(f"<td{cls}>{html.escape(_fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e6 else f"{v:.0f}"
    return str(v)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _dt(ts) -> list[datetime]:
    return [datetime.fromtimestamp(t, timezone.utc) for t in ts]


def firing_intervals(alerts: pl.DataFrame, end: float) -> list[tuple[tuple, float, float]]:
    """(key, from, to) of every firing period; one still firing at the end runs to ``end``."""
    out, open_ = [], {}
    for row in alerts.sort("timestamp").iter_rows(named=True):
        key = (row["entity"], row["signal"], row["series"])
        if row["state"] == "firing":
            open_[key] = row["timestamp"]
        elif key in open_:
            out.append((key, open_.pop(key), row["timestamp"]))
    out.extend((k, t, end) for k, t in open_.items())
    return out


# -- the report ----------------------------------------------------------------------------------


@dataclass
class Options:
    threshold: float = 0.99
    max_series: int = 8
    max_points: int = 5000
    baselines: bool = True
    baseline_series: int = 4
    baseline_points: int = 4000  # IsolationForest scores point by point (about 2 ms each): bound the wait


def build_report(out: ReplayOutput, labels: dict[str, list[Window]] | None = None, journal: Path | None = None,
                 options: Options = Options(), title: str | None = None) -> str:
    page = Page(title or f"outage-detector report: {out.path.name}")
    summary = out.scores.select(
        pl.len().alias("scores"), pl.col("timestamp").min().alias("first"), pl.col("timestamp").max().alias("last"),
        pl.col("entity").n_unique().alias("entities"), pl.col("series").filter(IS_METRIC).n_unique().alias("series"),
    ).collect().row(0, named=True)
    if not summary["scores"]:
        page.add("Summary", "<p>The replay produced no scores.</p>")
        return page.render()
    section_summary(page, out, summary, options)
    chosen = section_metric_series(page, out, labels or {}, options)
    section_log_signals(page, out, options)
    section_alert_timeline(page, out, summary["last"])
    if out.incidents is not None and out.incidents.height:
        section_incidents(page, out.incidents)
    if out.templates is not None and out.templates.height:
        section_templates(page, out.templates)
    if labels:
        section_alert_evaluation(page, out, labels, chosen)
    if options.baselines and chosen:
        section_baselines(page, out, labels or {}, chosen, options)
    if journal is not None:
        section_tuning(page, journal)
    return page.render()


def write_report(scores: str | Path, output: str | Path, labels: str | Path | None = None,
                 journal: str | Path | None = None, options: Options = Options()) -> Path:
    out = ReplayOutput.read(scores)
    doc = build_report(out, load_labels(labels) if labels else None, Path(journal) if journal else None, options)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(doc, encoding="utf-8")
    return output


def downsample(df: pl.DataFrame, max_points: int, threshold: float) -> pl.DataFrame:
    """Every k-th point, plus every point at or above the threshold: anomalies are never thinned out."""
    if df.height <= max_points:
        return df
    k = -(-df.height // max_points)
    idx = np.arange(df.height)
    keep = (idx % k == 0) | (df["confidence"].to_numpy() >= threshold)
    return df.filter(pl.Series(keep))


# -- sections --------------------------------------------------------------------------------------


def section_summary(page: Page, out: ReplayOutput, summary: dict, options: Options) -> None:
    by_signal = (out.scores.group_by("signal").agg(
        pl.len().alias("scores"), (pl.col("confidence") >= options.threshold).sum().alias("anomalous"),
        pl.col("confidence").max().alias("max confidence")).sort("scores", descending=True).collect())
    firing = out.alerts.filter(pl.col("state") == "firing").height
    rows = [{"from": _iso(summary["first"]), "to": _iso(summary["last"]), "scores": summary["scores"],
             "entities": summary["entities"], "metric series": summary["series"], "alerts fired": firing,
             "threshold": options.threshold}]
    page.add("Summary", table(rows), "<h3>Per signal</h3>", table(by_signal.head(30).to_dicts()),
             note=f"Scores from {out.path.name}; a point is anomalous when its confidence is at least the threshold.")


def top_series(out: ReplayOutput, n: int, labels=None) -> list[tuple[str, str, str]]:
    """The series to show: labelled ones first, then those that alerted most, then the most confident."""
    stats = out.scores.filter(IS_METRIC).group_by("entity", "signal", "series").agg(
        pl.col("confidence").max().alias("c")).collect()
    fired: dict[tuple, int] = {}
    for r in out.alerts.filter(pl.col("state") == "firing").iter_rows(named=True):
        k = (r["entity"], r["signal"], r["series"])
        fired[k] = fired.get(k, 0) + 1
    rows = []
    for e, sig, ser, c in stats.iter_rows():
        labelled = bool(labels) and bool(windows_for(labels, ser, sig, e))
        rows.append(((not labelled, -fired.get((e, sig, ser), 0), -c, ser), (e, sig, ser)))
    return [key for _, key in sorted(rows)[:n]]


def series_frame(out: ReplayOutput, key: tuple[str, str, str]) -> pl.DataFrame:
    entity, signal, series = key
    return (out.scores.filter((pl.col("entity") == entity) & (pl.col("signal") == signal) & (pl.col("series") == series))
            .select("timestamp", "value", "score", "confidence").collect().sort("timestamp", maintain_order=True))


def section_metric_series(page: Page, out: ReplayOutput, labels, options: Options) -> list[tuple]:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    keys = top_series(out, options.max_series, labels)
    if not keys:
        return []
    last = out.scores.select(pl.col("timestamp").max()).collect().item()
    intervals = firing_intervals(out.alerts, last)
    parts = []
    for key in keys:
        df = downsample(series_frame(out, key), options.max_points, options.threshold)
        x = _dt(df["timestamp"].to_list())
        fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.04, row_heights=[0.5, 0.2, 0.3])
        fig.add_trace(go.Scatter(x=x, y=df["value"].to_list(), name="value", line={"width": 1}), 1, 1)
        fig.add_trace(go.Scatter(x=x, y=df["score"].to_list(), name="score", line={"width": 1, "color": "#8c564b"}), 2, 1)
        fig.add_trace(go.Scatter(x=x, y=df["confidence"].to_list(), name="confidence",
                                 line={"width": 1, "color": "#2ca02c"}, opacity=0.45), 3, 1)
        hot = df.filter(pl.col("confidence") >= options.threshold)
        fig.add_trace(go.Scatter(x=_dt(hot["timestamp"].to_list()), y=hot["confidence"].to_list(), mode="markers",
                                 name="at or above threshold", marker={"color": "#d62728", "size": 5}), 3, 1)
        fig.add_hline(y=options.threshold, line={"dash": "dash", "color": "#d62728"}, row=3, col=1,
                      annotation_text=f"threshold {options.threshold}")
        for w in windows_for(labels, key[2], key[1], key[0]):
            fig.add_vrect(x0=_dt([w.start])[0], x1=_dt([w.end])[0], fillcolor="#ff7f0e", opacity=0.18, line_width=0)
        for k, t0, t1 in intervals:
            if k == key:
                fig.add_vrect(x0=_dt([t0])[0], x1=_dt([t1])[0], fillcolor="#d62728", opacity=0.25, line_width=0,
                              row=3, col=1)
        fig.update_layout(title=f"{key[2]} ({key[0]})", height=520, margin={"l": 50, "r": 20, "t": 50, "b": 30},
                          legend={"orientation": "h"})
        fig.update_yaxes(range=[0, 1.02], row=3, col=1)
        parts.append(page.figure(fig))
    page.add("Metric series", *parts, note=f"{len(keys)} series: labelled ones first, then those that alerted most. "
             "Value, raw score, and calibrated confidence with the alert threshold (red points at or above it); "
             "orange bands are labelled windows, red bands alerts firing.")
    return keys


def section_log_signals(page: Page, out: ReplayOutput, options: Options) -> None:
    import plotly.graph_objects as go

    logs = out.scores.filter(pl.col("signal").is_in(LOG_SIGNALS))
    entities = (logs.group_by("entity").agg(pl.col("confidence").max().alias("c")).sort(["c", "entity"], descending=[True, False])
                .head(options.max_series).collect()["entity"].to_list())
    if not entities:
        return
    parts = []
    for entity in entities:
        df = (logs.filter(pl.col("entity") == entity).select("timestamp", "signal", "series", "confidence").collect()
              .sort("timestamp"))
        topics = sorted(set(df["series"].to_list()), key=lambda t: t or "")
        fig = go.Figure()
        # One line per signal and input topic: two topics' windows interleaved on one line would zigzag.
        for signal in LOG_SIGNALS:
            for topic in topics:
                sd = downsample(df.filter((pl.col("signal") == signal) & pl.col("series").eq_missing(topic)),
                                options.max_points, options.threshold)
                if sd.height:
                    fig.add_trace(go.Scatter(x=_dt(sd["timestamp"].to_list()), y=sd["confidence"].to_list(),
                                             name=series_name(signal, topic),
                                             mode="lines+markers" if sd.height < 200 else "lines", line={"width": 1}))
        news = out.scores.filter((pl.col("signal") == "log_new_template") & (pl.col("entity") == entity)).select(
            "timestamp", "series", "confidence").collect()
        for topic in sorted(set(news["series"].to_list()), key=lambda t: t or ""):
            nd = news.filter(pl.col("series").eq_missing(topic))
            fig.add_trace(go.Scatter(x=_dt(nd["timestamp"].to_list()), y=nd["confidence"].to_list(), mode="markers",
                                     name=f"new template ({topic})" if topic else "new template",
                                     marker={"symbol": "star", "size": 10}))
        fig.add_hline(y=options.threshold, line={"dash": "dash", "color": "#d62728"})
        fig.update_layout(title=f"log signals of {entity}", height=320, yaxis={"range": [0, 1.02], "title": "confidence"},
                          margin={"l": 50, "r": 20, "t": 50, "b": 30})
        parts.append(page.figure(fig))
    page.add("Log signals", *parts, note="Confidence of the per-window template-rate and error-ratio signals, and "
             "new templates, for the entities with the most anomalous log windows.")


def section_alert_timeline(page: Page, out: ReplayOutput, last: float) -> None:
    import plotly.graph_objects as go

    intervals = firing_intervals(out.alerts, last)
    if not intervals:
        page.add("Alerts", "<p>No alert fired.</p>")
        return
    counts: dict[tuple, int] = {}
    for k, _, _ in intervals:
        counts[k] = counts.get(k, 0) + 1
    keys = sorted(counts, key=lambda k: (-counts[k], k))[:40]
    fig = go.Figure()
    for key in keys:
        label = f"{key[0]} · {series_name(key[1], key[2])}"
        xs, ys = [], []
        for k, t0, t1 in intervals:
            if k == key:
                xs += [*_dt([t0, max(t1, t0 + 1)]), None]
                ys += [label, label, None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", line={"width": 10}, marker={"size": 6},
                                 name=label, showlegend=False))
    fig.update_layout(title="alert firing periods", height=max(250, 28 * len(keys) + 120),
                      margin={"l": 260, "r": 20, "t": 50, "b": 30})
    rows = [{"entity": k[0], "signal": k[1], "series": k[2] or "", "firing periods": counts[k],
             "first": _iso(min(t0 for kk, t0, _ in intervals if kk == k))} for k in keys]
    page.add("Alerts", page.figure(fig), table(rows), note="Each bar is one firing period, from the alert firing to it resolving.")


def section_incidents(page: Page, incidents: pl.DataFrame) -> None:
    events = incidents.sort("timestamp")
    last = events.group_by("id", maintain_order=True).last().sort("start")
    # When it paged and when it cleared are the times of the opened and resolved events; start and end
    # are when its signals turned anomalous and quiet, which is earlier (hysteresis, fire_after).
    opened = dict(events.filter(pl.col("kind") == "opened").group_by("id").agg(pl.col("timestamp").min()).iter_rows())
    resolved = dict(events.filter(pl.col("kind") == "resolved").group_by("id").agg(pl.col("timestamp").max()).iter_rows())
    rows = []
    for r in last.head(50).iter_rows(named=True):
        signals = sorted({s.get("signal", "") for s in json.loads(r["signals"] or "[]")})
        rows.append({"id": r["id"], "entity": r["entity"], "severity": r["severity"],
                     "anomalous from": _iso(r["start"]),
                     "opened": _iso(opened[r["id"]]) if r["id"] in opened else "-",
                     "resolved": _iso(resolved[r["id"]]) if r["id"] in resolved else "open",
                     "confidence": r["confidence"], "signals": ", ".join(signals)})
    page.add("Incidents", table(rows, ("signals",)), note=f"{last.height} incidents: signals of one entity grouped "
             "across logs and metrics, as the service pages them.")


def section_templates(page: Page, templates: pl.DataFrame) -> None:
    import plotly.graph_objects as go

    top = templates.sort(["count", "id"], descending=[True, False]).head(25)
    texts = top["template"].to_list()
    short = [t if len(t) <= 70 else t[:67] + "..." for t in texts]
    # Ids are numbered per topic and partition (one miner each), so the id alone repeats across them.
    where = [f"{t}[{p}]" for t, p in zip(top["topic"].to_list(), top["partition"].to_list())]
    fig = go.Figure(go.Bar(x=top["count"].to_list()[::-1],
                           y=[f"{w} #{i} {s}" for w, i, s in zip(where, top["id"].to_list(), short)][::-1],
                           orientation="h", hovertext=texts[::-1]))
    fig.update_layout(title="lines per template", height=max(300, 24 * top.height + 100), margin={"l": 420, "r": 20, "t": 50, "b": 30})
    rows = [{"topic[partition]": w, "id": r["id"], "count": r["count"], "first seen": _iso(r["first_seen"]), "template": r["template"]}
            for w, r in zip(where, top.iter_rows(named=True))]
    page.add("Log templates", page.figure(fig), table(rows, ("template",)),
             note=f"{templates.height} templates mined from {int(templates['count'].sum())} lines.")


def section_alert_evaluation(page: Page, out: ReplayOutput, labels, chosen) -> None:
    firing = out.alerts.filter(pl.col("state") == "firing")
    keys = sorted({(r["entity"], r["signal"], r["series"]) for r in firing.iter_rows(named=True)} | set(chosen))
    # One row per labelled metric series: the alerts of all its signals (the metric's own and its drift)
    # count together, so a labelled window is counted once. Each log signal of each topic is a row.
    groups: dict[tuple[str, str], list] = {}
    for key in keys:
        groups.setdefault((key[0], series_name(key[1], key[2])), []).append(key)
    rows, all_leads = [], []
    for (entity, name), members in groups.items():
        wins = next((w for w in (windows_for(labels, k[2], k[1], k[0]) for k in members) if w), None)
        # A window no scored point of the series falls in (a labels file covering more than was
        # replayed) could never be found: it is left out, as the NAB scorer leaves it out.
        wins = windows_with_a_point(out, members, wins or [])
        if not wins:
            continue
        times = sorted(t for k in members for t in firing.filter(
            (pl.col("entity") == k[0]) & (pl.col("signal") == k[1]) & (pl.col("series") == k[2]))["timestamp"].to_list())
        hits = [next((t for t in times if w.start <= t <= w.end), None) for w in wins]
        inside = sum(1 for t in times if any(w.start <= t <= w.end for w in wins))
        leads = [w.reference - h for w, h in zip(wins, hits) if h is not None]
        all_leads += leads
        rows.append({"series": name, "entity": entity, "windows": len(wins), "found": sum(h is not None for h in hits),
                     "alerts": len(times), "precision": inside / len(times) if times else None,
                     "recall": sum(h is not None for h in hits) / len(wins),
                     "median lead (min)": float(np.median(leads)) / 60 if leads else None})
    if not rows:
        page.add("Alerts against labels", "<p class='note'>No labelled window matches a scored series.</p>")
        return
    total_w = sum(r["windows"] for r in rows)
    found = sum(r["found"] for r in rows)
    alerts = sum(r["alerts"] for r in rows)
    hits_in = sum((r["precision"] or 0) * r["alerts"] for r in rows)
    rows.append({"series": "all", "entity": "", "windows": total_w, "found": found, "alerts": alerts,
                 "precision": hits_in / alerts if alerts else None, "recall": found / total_w if total_w else None,
                 "median lead (min)": float(np.median(all_leads)) / 60 if all_leads else None})
    page.add("Alerts against labels", table(rows), note="An alert counts for a window when it fires inside it; "
             "windows in which the series has no scored point (outside the replayed data) are not counted. "
             "Lead is the window's reference time (its start unless the labels give one) minus the first alert: "
             "positive when the alert came first.")


def windows_with_a_point(out: ReplayOutput, members: list[tuple], windows: list[Window]) -> list[Window]:
    """The ``windows`` in which any of the series ``members`` (entity, signal, series) has a score, all
    checked in one pass over the scores."""
    if not windows:
        return []
    in_members = pl.any_horizontal(
        (pl.col("entity") == e) & (pl.col("signal") == sig) & (pl.col("series") == ser) for e, sig, ser in members)
    hits = out.scores.filter(in_members).select(
        pl.col("timestamp").is_between(w.start, w.end).any().alias(str(i)) for i, w in enumerate(windows)
    ).collect().row(0)
    return [w for w, hit in zip(windows, hits) if hit]


def section_baselines(page: Page, out: ReplayOutput, labels, chosen, options: Options) -> None:
    from detector import baselines
    from detector.evaluation import nab_scoring as ns

    keys = chosen[: options.baseline_series]
    methods = ["online", *baselines.BASELINES]
    per_method: dict[str, list] = {m: [] for m in methods}
    agreement = {m: [] for m in baselines.BASELINES}
    windows_total = 0
    for key in keys:
        df = series_frame(out, key).filter(pl.col("value").is_not_null()).head(options.baseline_points)
        if df.height < 50:
            continue
        ts, values = df["timestamp"].to_numpy(), df["value"].to_numpy()
        scored = {"online": df["score"].to_numpy()}
        for m in baselines.BASELINES:
            scored[m] = baselines.run(m, values)
        top = max(1, len(values) // 100)
        online_top = set(np.argsort(-df["confidence"].to_numpy(), kind="stable")[:top].tolist())
        for m in baselines.BASELINES:
            mine = set(np.argsort(-scored[m], kind="stable")[:top].tolist())
            agreement[m].append(len(mine & online_top) / top)
        wins = windows_for(labels, key[2], key[1], key[0])
        bounds = ns.window_bounds(ts, [(w.start, w.end) for w in wins])
        windows_total += len(bounds)
        for m in methods:
            per_method[m].append(ns.prepare_file(scored[m], bounds))
    rows = []
    points = sum(len(f.scores) for f in per_method["online"])
    profile = ns.DEFAULT_PROFILES[0]
    for m in methods:
        files = per_method[m]
        if not files:
            continue
        row = {"method": m, "series": len(files), "points": points}
        if windows_total:
            t, total = ns.optimise_threshold(files, profile)
            null, perfect = ns.null_and_perfect(files, profile)
            row["NAB standard"] = ns.normalise(total, null, perfect)
            found = sum(len({int(w) for w in f.window[f.scored & (f.scores >= t) & (f.window >= 0)]}) for f in files)
            det = sum(int((f.scored & (f.scores >= t)).sum()) for f in files)
            inside = sum(int((f.scored & (f.scores >= t) & (f.window >= 0)).sum()) for f in files)
            row.update({"recall": found / windows_total, "precision": inside / det if det else None})
        if m != "online":
            row["top-1% overlap with online"] = float(np.mean(agreement[m])) if agreement[m] else None
        rows.append(row)
    note = ("The same series scored by scikit-learn's IsolationForest (periodic refits, score before learn) and a "
            f"trailing rolling z-score, on the first {options.baseline_points} points of each of the "
            f"{len(keys)} most anomalous series, all methods on the same points. ")
    note += ("With labels: NAB standard score with each method's own best threshold, and recall/precision of "
             "detections at it. " if windows_total else "Without labels, the share of each baseline's top 1% points "
             "that are also among the online model's most confident 1%. ")
    page.add("Batch baselines", table(rows), note=note)


def section_tuning(page: Page, journal: Path) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    try:
        entries = journal_entries(journal)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{journal}: cannot read the tuning journal: {exc}") from None
    # A journal keeps every search run against it; the last one is shown, the others are only counted:
    # their objectives were measured on another space, spec or data.
    latest = entries[-1].get("study") if entries else None
    earlier = sum(1 for e in entries if e.get("study") != latest)
    entries = [e for e in entries if e.get("study") == latest]
    ok = sorted((e for e in entries if e.get("value") is not None), key=lambda e: -e["value"])
    if not ok:
        page.add("Tuning", "<p>No finished trial in the journal.</p>")
        return
    params = sorted({k for e in ok for k in e["params"]})
    fig = make_subplots(rows=1, cols=max(1, len(params)), shared_yaxes=True,
                        subplot_titles=[p.rsplit(".", 1)[-1] for p in params] or ["trials"])
    base = next((e for e in ok if not e["params"]), None)
    for i, p in enumerate(params, 1):
        pts = [(e["params"][p], e["value"]) for e in ok if p in e["params"]]
        fig.add_trace(go.Scatter(x=[a for a, _ in pts], y=[b for _, b in pts], mode="markers", name=p, showlegend=False), 1, i)
        if base is not None:
            fig.add_hline(y=base["value"], line={"dash": "dot", "color": "#888"}, row=1, col=i)
    fig.update_layout(title="objective per trial against each parameter (dotted: the unchanged spec)", height=360,
                      margin={"l": 50, "r": 20, "t": 70, "b": 40})
    rows = [{"rank": i + 1, "value": e["value"], **{k.rsplit(".", 1)[-1]: e["params"].get(k) for k in params},
             "seconds": e.get("seconds")} for i, e in enumerate(ok[:20])]
    failed = len(entries) - len(ok)
    page.add("Tuning", page.figure(fig), table(rows),
             note=f"{len(entries)} trials of the last search in {journal.name}" + (f", {failed} failed" if failed else "")
             + (f" ({earlier} trials of earlier searches not shown)" if earlier else "") + "; best first.")
