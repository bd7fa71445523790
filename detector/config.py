"""The pipeline spec: topics -> decoders -> models -> alerting -> sinks.

Loaded from one YAML file in ``pipelines/``; any key can be overridden from the environment with
``OUTAGE_DETECTOR_`` and ``__`` between nested keys, e.g.
``OUTAGE_DETECTOR_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092``. Environment values win over the file.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, TypeAdapter,
                      ValidationError, field_validator, model_validator)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from detector.errors import ConfigError
from detector.loader import format_validation_error, read_yaml
from detector.records import MAX_VALUE_CHARS
from detector.specs import MODELS_DIR

LOG_FORMATS = ("json", "vector", "fluentbit", "ecs", "otlp_json", "logfmt", "plain")
METRIC_FORMATS = ("metric_json", "telegraf", "influx")

# Kafka's own rule for a topic name (kafka.util.ensure_valid_topic_name, the broker's Topic.validate):
# the client or the broker would refuse any other name at run time, or only on the first dead letter.
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def _topic_name(name: str) -> str:
    if not _TOPIC_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"{name!r} is not a Kafka topic name (1 to 249 characters of a-z, A-Z, 0-9, '.', '_', '-'; "
                         "not '.' or '..')")
    return name


TopicName = Annotated[str, AfterValidator(_topic_name)]


class Section(BaseModel):
    # No inf or nan: an infinite interval or lateness would switch a part of the service off in silence.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class KafkaSettings(Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    group_id: str = "outage-detector"
    client_id: str = "outage-detector"
    dead_letter_topic: TopicName = "outage-detector-dead-letter"
    session_timeout_ms: int = Field(10_000, gt=0)
    max_poll_records: int = Field(5_000, gt=0)
    poll_timeout_ms: int = Field(500, gt=0)
    # A short broker-side fetch wait keeps a consumer that has caught up from stalling each poll, and
    # large partition fetches mean fewer round trips per poll batch (both measured in
    # benchmarks/service_throughput.py).
    fetch_max_wait_ms: int = Field(100, gt=0)
    max_partition_fetch_bytes: int = Field(8 * 1024 * 1024, gt=0)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    # The mechanisms that authenticate with a username and password, the only credentials taken here.
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_ports(cls, servers: str) -> str:
        # Checked here, not found out as an unreachable broker after the client's timeout.
        for server in servers.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{servers!r} is not a comma-separated list of host:port")
        return servers

    @model_validator(mode="after")
    def _sasl_complete(self) -> "KafkaSettings":
        sasl = self.security_protocol.startswith("SASL_")
        if sasl and None in (self.sasl_mechanism, self.sasl_username, self.sasl_password):
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism, sasl_username and "
                             "sasl_password")
        if self.sasl_mechanism and not sasl:
            raise ValueError(f"sasl_mechanism {self.sasl_mechanism} needs security_protocol SASL_PLAINTEXT or "
                             "SASL_SSL")
        return self


class FieldMapping(Section):
    """Where a JSON log line keeps each field (dotted paths reach into nested objects), or which key of
    a logfmt line holds it."""

    message: str | None = None
    timestamp: str | None = None
    level: str | None = None
    entity: str | None = None


class InputSpec(Section):
    topic: TopicName
    kind: Literal["log", "metric"]
    format: str
    fields: FieldMapping = FieldMapping()
    # Bounded as any entity a record names (records.py): it becomes a label value.
    default_entity: str = Field("unknown", max_length=MAX_VALUE_CHARS,
                                description="entity for records that name none")
    timezone: str = Field(
        "UTC", description="IANA zone (e.g. Europe/Berlin) for timestamps written without an offset: "
        "log4j's %d, Python's asctime, BSD syslog"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        # Checked at load, not found out as every record of the input dead-lettered or hours off.
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{name!r} is not an IANA time zone name (e.g. UTC, Europe/Berlin, America/New_York)") from None
        return name

    @model_validator(mode="after")
    def _format_fits_kind(self) -> "InputSpec":
        allowed = LOG_FORMATS if self.kind == "log" else METRIC_FORMATS
        if self.format not in allowed:
            raise ValueError(f"format {self.format!r} is not a {self.kind} format; use one of {', '.join(allowed)}")
        return self


class ModelsSection(Section):
    """Paths of the model specs; relative paths resolve against the pipeline file's folder, or against
    the working directory when an environment variable sets them."""

    metric: Path = MODELS_DIR / "metric-default.yaml"
    log: Path = MODELS_DIR / "log-default.yaml"


class AlertingSettings(Section):
    confidence_threshold: float = Field(0.99, ge=0.0, le=1.0, description="a score at or above this is anomalous")
    sustain_confidence: float = Field(
        0.95, ge=0.0, le=1.0, description="a signal already anomalous stays so while its score is at or above this (at most the threshold)"
    )
    fire_after: int = Field(3, ge=1, description="consecutive anomalous evaluations before an alert fires")
    resolve_after: int = Field(5, ge=1, description="consecutive quiet evaluations before it resolves")
    incident_window_seconds: float = Field(900.0, gt=0, description="signals of one entity this close join one incident")

    @property
    def sustain(self) -> float:
        """The confidence a run of anomalous scores must keep: at most the threshold, so that lowering
        ``confidence_threshold`` alone (in a file that also sets ``sustain_confidence``, or in a tuning
        trial) takes the bar down with it rather than making the pair an error."""
        return min(self.sustain_confidence, self.confidence_threshold)


class IncidentSettings(Section):
    """How anomalous signals of one entity become one incident (see docs/alerting.md).

    The floors are absolute: a signal must show a real change, not only a confident one, so a few
    odd lines or a flat series wiggling within noise never page.
    """

    enabled: bool = True
    min_log_lines: int = Field(
        10, ge=0, description="log rate and error signals need this many lines more (or fewer) than expected"
    )
    min_relative_deviation: float = Field(
        0.2, ge=0, description="a metric must be this far from its expected value, as a share of it"
    )
    min_absolute_deviation: float = Field(0.0, ge=0, description="and at least this far in its own units")
    min_duration_seconds: float = Field(
        300.0, ge=0, description="event time a signal must stay hot before it opens or joins an incident"
    )
    new_template_min_lines: int = Field(
        3, ge=1, le=16, description="lines a new warning/error template needs within the window to count as a fault"
    )
    new_template_window_seconds: float = Field(900.0, gt=0, description="that window, in event time")
    new_template_min_seconds: float = Field(
        180.0, ge=0, description="event time between the first and the latest of those lines"
    )
    drift_detector: str | None = Field(
        "trend_drift", description="detector of slow drifts run beside the metric model on every series; null: off"
    )
    drift_params: dict[str, Any] = Field(default_factory=dict, description="its hyperparameters")
    drift_max_series: int = Field(
        100_000, gt=0, description="series followed for drift per partition; least recently seen evicted"
    )
    drift_min_relative_deviation: float = Field(
        0.1, ge=0, description="a slow drift must move this far from its baseline, as a share of it"
    )
    drift_min_duration_seconds: float = Field(
        900.0, ge=0, description="event time a drift must stay hot (drifts are slow; so is their evidence)"
    )
    critical_signals: int = Field(2, ge=1, description="distinct signals that make an incident critical")
    critical_confidence: float = Field(0.999, ge=0.0, le=1.0, description="and the confidence it needs")
    evidence_templates: int = Field(5, ge=0, description="templates kept as evidence per incident")
    evidence_series: int = Field(5, ge=0, description="metric series kept as evidence per incident")
    max_keys: int = Field(100_000, gt=0, description="signal states held; quiet ones are evicted first")
    stream_stall_seconds: float = Field(
        300.0, gt=0, description="a partition with records left to read that delivers none for this long "
        "(wall clock) no longer holds incident resolution back"
    )
    runbook_url: str = Field("docs/alerting.md#incident-runbook", description="set to your own runbook page")


class PrometheusSink(Section):
    enabled: bool = Field(True, description="serve /metrics; false turns only /metrics off: /healthz, /readyz "
                                             "and /templates stay served on host and port, for the probes")
    host: str = "127.0.0.1"
    port: int = Field(9108, ge=0, le=65535)
    series_budget: int = Field(10_000, gt=0, description="model series exported; the rest are counted as dropped")
    # Two hours: a series scraped hourly stays exported across its gaps, with an hour to spare for a
    # late scrape; the series of a pod replaced by another leave /metrics within two hours.
    stale_after_seconds: float = Field(
        7200.0, gt=0, description="a metric series whose newest point is this much older (event time) than its "
                                  "partition's newest event time is no longer exported nor counted over budget")


class AlertmanagerSink(Section):
    url: str | None = None  # e.g. http://127.0.0.1:9093; push is off when unset
    username: str | None = Field(None, description="HTTP basic auth, as Alertmanager's web.config.file sets it")
    password: SecretStr | None = None
    ca_file: Path | None = Field(None, description="CA certificate(s) that signed an https url's server certificate "
                                 "(default: the system's)")
    resend_seconds: float = Field(60.0, gt=0)
    timeout_seconds: float = Field(5.0, gt=0, description="one push; a slower Alertmanager counts as down")
    max_pending: int = Field(1000, gt=0, description="incidents held for delivery while Alertmanager is down")
    max_backoff_seconds: float = Field(30.0, gt=0, description="longest wait between retries")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        # Anything else would only fail on the first push, as an unreachable Alertmanager, retried forever.
        if url and not re.fullmatch(r"https?://[^/\s]+(/\S*)?", url):
            raise ValueError(f"{url!r} is not an http:// or https:// URL (e.g. http://alertmanager:9093)")
        if url and "@" in url.split("/")[2]:
            # user:password@host would be taken for the host name (and printed, logged): not echoed here.
            raise ValueError("credentials in the URL are not used: give them as username and password "
                             "(OUTAGE_DETECTOR_SINKS__ALERTMANAGER__PASSWORD for the secret)")
        return url or None

    @field_validator("ca_file")
    @classmethod
    def _readable(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"{str(path)!r} is not a file")
        return path

    @model_validator(mode="after")
    def _both_or_neither(self) -> "AlertmanagerSink":
        if (self.username is None) != (self.password is None):
            raise ValueError("basic auth needs both username and password")
        return self


class ConsoleSink(Section):
    enabled: bool = True
    signals: bool = Field(False, description="also print per-signal alert transitions, not only incidents")


class SinksSection(Section):
    prometheus: PrometheusSink = PrometheusSink()
    alertmanager: AlertmanagerSink = AlertmanagerSink()
    console: ConsoleSink = ConsoleSink()
    # Empty is off, as null is: the environment cannot set null (OUTAGE_DETECTOR_SINKS__ALERTS_TOPIC=).
    alerts_topic: Annotated[TopicName | None, BeforeValidator(lambda v: None if v == "" else v)] = Field(
        None, description="also publish incident events (JSON, keyed by entity) here")


class CheckpointSettings(Section):
    directory: Path = Path("./state")
    interval_seconds: float = Field(10.0, gt=0, description="checkpoint then commit at most this often")

    @field_validator("directory")
    @classmethod
    def _can_be_a_directory(cls, path: Path) -> Path:
        # Found out here rather than by the service after it has joined the group, when the first
        # checkpoint it reads or writes fails "Not a directory". A directory not there yet is made then.
        for existing in (path, *path.parents):
            if existing.exists():
                if not existing.is_dir():
                    raise ValueError(f"{str(path)!r} is not a directory" if existing == path else
                                     f"{str(path)!r} cannot be a directory: {str(existing)!r} is a file")
                break
        return path


class PipelineSpec(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OUTAGE_DETECTOR_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
    )

    name: str = "default"
    kafka: KafkaSettings = KafkaSettings()
    inputs: list[InputSpec] = Field(default_factory=list)
    models: ModelsSection = ModelsSection()
    alerting: AlertingSettings = AlertingSettings()
    incidents: IncidentSettings = IncidentSettings()
    sinks: SinksSection = SinksSection()
    checkpoint: CheckpointSettings = CheckpointSettings()
    lateness_seconds: float = Field(30.0, ge=0, description="how late a record may arrive and still join its window")

    @field_validator("inputs")
    @classmethod
    def _unique_topics(cls, inputs: list[InputSpec]) -> list[InputSpec]:
        seen = set()
        for spec in inputs:
            if spec.topic in seen:
                raise ValueError(f"topic {spec.topic!r} is listed twice")
            seen.add(spec.topic)
        return inputs

    @model_validator(mode="after")
    def _outputs_are_their_own_topics(self) -> "PipelineSpec":
        """The service writes to the dead-letter and alerts topics; reading one of them as an input
        would feed its output back in: a dead letter is read again, fails again and is dead-lettered
        again, without end (incident events, the same way, become input lines). The two outputs share
        no topic either: whatever reads incident events would get raw undecodable records among them."""
        inputs = {spec.topic: i for i, spec in enumerate(self.inputs)}
        errors = []

        def refuse(loc, topic, reason):
            # Raised as a ValidationError at that key, so that it is reported like any other key's
            # error, with the variable that set it (a ValueError here would be at the spec's root).
            errors.append(InitErrorDetails(type=PydanticCustomError("topic_clash", "{reason}", {"reason": reason}),
                                           loc=loc, input=topic))

        for loc, topic, what in [(("kafka", "dead_letter_topic"), self.kafka.dead_letter_topic, "its dead letters"),
                                 (("sinks", "alerts_topic"), self.sinks.alerts_topic, "its incident events")]:
            if topic in inputs:
                refuse(loc, topic, f"{topic!r} is also the topic of inputs.{inputs[topic]}: the service would read "
                                   f"{what} back as input; use another topic")
        if self.sinks.alerts_topic == self.kafka.dead_letter_topic and self.sinks.alerts_topic not in inputs:
            refuse(("sinks", "alerts_topic"), self.sinks.alerts_topic,
                   f"{self.sinks.alerts_topic!r} is also kafka.dead_letter_topic: incident events and dead letters "
                   "would be mixed on one topic; use another topic")
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init kwargs; the environment must win over it.
        return (env_settings, init_settings)

    def require_inputs(self) -> "PipelineSpec":
        """The service and a replay read only the listed topics: a spec without any has nothing to do
        (allowed to load, so that a command that sets the inputs itself, such as the demo, can start
        from the defaults)."""
        if not self.inputs:
            raise ConfigError(f"pipeline {self.name!r} has no inputs: list at least one topic under 'inputs', "
                              "as pipelines/default.yaml does (the built-in defaults, used without --pipeline "
                              "or $OUTAGE_DETECTOR_PIPELINE, have none)")
        return self

    def input_for(self, topic: str) -> InputSpec:
        for spec in self.inputs:
            if spec.topic == topic:
                return spec
        raise KeyError(topic)

    def masked(self) -> dict[str, Any]:
        """The resolved config as plain data with secrets masked, for printing."""
        return self.model_dump(mode="json")  # SecretStr dumps as '**********'

    def pinned(self, **sections: dict[str, Any]) -> "PipelineSpec":
        """This spec with the given keys of these sections set over the file and the environment
        alike: what a command sets from its own flags (the demo's port, broker, consumer group and
        state folder) must not be taken over by a variable left in the shell. The sections are
        validated again; building them as plain models reads no environment."""
        def merge(base: dict, new: dict) -> dict:
            return {**base, **{k: merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
                               for k, v in new.items()}}
        update = {}
        for name, values in sections.items():
            current = getattr(self, name)
            try:
                if isinstance(current, BaseModel):
                    update[name] = type(current).model_validate(merge(current.model_dump(), values))
                else:  # a list (the inputs): replaced whole
                    update[name] = TypeAdapter(type(self).model_fields[name].annotation).validate_python(values)
            except ValidationError as exc:
                raise ConfigError(format_validation_error(exc, f"command line, {name}")) from None
        return self.model_copy(update=update)


ENV_PREFIX = "OUTAGE_DETECTOR_"
# Variables with the prefix that are not spec overrides: the default pipeline file, the broker binary.
ENV_NOT_SPEC = frozenset({"OUTAGE_DETECTOR_PIPELINE", "OUTAGE_DETECTOR_BROKER_BIN"})


def _overrides() -> dict[str, list[str]]:
    """The environment's spec overrides: variable name -> the key path it sets."""
    return {name: name[len(ENV_PREFIX):].lower().split("__") for name in os.environ
            if name.upper().startswith(ENV_PREFIX) and name.upper() not in ENV_NOT_SPEC}


def environment_overrides() -> list[str]:
    """The keys the environment sets over the pipeline file, each with its variable, for the one line
    that ``run`` logs and ``check-config`` prints: a value in the file that a variable overrides is
    otherwise a dead setting nothing points at. Names only, never values (some are secrets)."""
    return [f"{'.'.join(path)} (${name})" for name, path in sorted(_overrides().items())]


def _check_environment() -> None:
    """A variable with the prefix that names no section is a typo (one underscore where two are
    needed, a section misspelt); ignoring it would leave the setting silently at its default. Keys
    inside a section are checked by the schema itself."""
    sections = set(PipelineSpec.model_fields)
    for name, path in _overrides().items():
        if path[0] not in sections:
            raise ConfigError(f"${name}: {path[0]!r} is not a section of the pipeline spec (sections: "
                              f"{', '.join(sorted(sections))}; nested keys are joined with '__')")


def _set_by_environment(loc: tuple) -> str | None:
    """The variable whose value a validation error at ``loc`` is about, if the environment set it."""
    keys = [str(k).lower() for k in loc]
    for name, path in _overrides().items():
        # Either way round: an error inside the variable's value, or about the container it went into
        # (a list item set by index, ``INPUTS__0__FORMAT``, leaves ``inputs`` a mapping, not a list).
        n = min(len(keys), len(path))
        if n and keys[:n] == path[:n]:
            return f"${name}"
    return None


def _environment_error(exc: SettingsError, source: str) -> str:
    """pydantic-settings parses a variable that sets a section or a list whole (``INPUTS='[...]'``) as
    JSON before anything is validated, and names only the section when that fails: find the variable
    by the text that failed, and report it as a validation error would be."""
    cause = exc.__cause__
    if isinstance(cause, json.JSONDecodeError):
        where = f"line {cause.lineno} column {cause.colno}" if "\n" in cause.doc else f"character {cause.pos + 1}"
        reason = f"not valid JSON: {cause.msg} at {where}"
        for name, path in _overrides().items():
            if os.environ[name] == cause.doc:
                return f"{source}: 1 error(s)\n  {'.'.join(path)}: {reason} (set by ${name})"
    else:
        reason = str(cause or exc)
    return f"{source}: the environment: {exc}: {reason}"


def load_pipeline(path: str | Path | None = None, **overrides: Any) -> PipelineSpec:
    """Load and validate a pipeline spec; relative model paths resolve against the file's folder."""
    _check_environment()
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        data = read_yaml(path)
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: the top level must be a mapping, not {type(data).__name__}")
    data.update(overrides)
    try:
        spec = PipelineSpec(**data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, _set_by_environment)) from None
    except SettingsError as exc:
        raise ConfigError(_environment_error(exc, source)) from None
    if path is not None:
        # A path written in the file is relative to the file; one set from the environment, to the
        # working directory the command was started in, as any path typed in a shell.
        from_env: set[str] = set()
        for key in _overrides().values():
            if key[0] == "models":  # one model (MODELS__METRIC) or the whole section as JSON
                from_env.update(key[1:2] or ModelsSection.model_fields)
        base = Path(path).resolve().parent
        models = {k: (v if v.is_absolute() else ((Path.cwd() if k in from_env else base) / v).resolve())
                  for k, v in spec.models.model_dump().items()}
        spec = spec.model_copy(update={"models": ModelsSection(**models)})
    return spec
