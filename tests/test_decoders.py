"""Decoders: what each shipper's payload becomes, and how every kind of bad input is refused."""

from __future__ import annotations

import random
import re

import orjson
import pytest

from detector.config import FieldMapping, InputSpec
from detector.decoders import MAX_MESSAGE_CHARS, MAX_RECORD_BYTES, build_decoder
from detector.errors import (
    ConfigError, DecodeError, EmptyRecord, InvalidField, MalformedRecord, MissingField, NotText, OversizedRecord,
)
from detector.records import LogRecord, MetricPoint, RawRecord

BROKER_TS = 1705312900.0  # the Kafka record's own timestamp, 100 s after the events below
EVENT_TS = 1705312800.0  # 2024-01-15T10:00:00Z


def raw(value, *, timestamp=BROKER_TS, key=None) -> RawRecord:
    if not isinstance(value, bytes):
        value = orjson.dumps(value)
    return RawRecord("in", 3, 42, timestamp, key, value)


def decoder(fmt: str, kind: str = "log", **kwargs):
    fields = kwargs.pop("fields", None)
    if fields is not None:
        kwargs["fields"] = FieldMapping(**fields)
    return build_decoder(InputSpec(topic="in", kind=kind, format=fmt, **kwargs))


def decode_one(fmt, value, kind="log", **kwargs):
    records = decoder(fmt, kind, **kwargs).decode(raw(value))
    assert len(records) == 1
    return records[0]


# --- sample payloads, shaped as the shippers emit them ----------------------------------------------------

VECTOR_FILE = {
    "file": "/var/log/nginx/error.log",
    "host": "web-01",
    "message": "2024/01/15 10:00:00 [error] 1234#0: *45 connect() failed (111: Connection refused) while "
    "connecting to upstream",
    "source_type": "file",
    "timestamp": "2024-01-15T10:00:00.123456789Z",
}

VECTOR_KUBERNETES = {
    "file": "/var/log/pods/shop_checkout-7d9c8b-x2x9k_0b6e/checkout/0.log",
    "kubernetes": {
        "container_name": "checkout",
        "pod_labels": {"app.kubernetes.io/name": "checkout-svc", "pod-template-hash": "7d9c8b"},
        "pod_name": "checkout-7d9c8b-x2x9k",
        "pod_namespace": "shop",
        "pod_node_name": "node-3",
    },
    "message": '{"msg":"cart saved"}',
    "severity": "Warning",
    "source_type": "kubernetes_logs",
    "stream": "stderr",
    "timestamp": "2024-01-15T10:00:00+00:00",
}

FLUENTBIT_KUBERNETES = {
    "@timestamp": 1705312800.25,
    "log": "2024-01-15T10:00:00.250Z ERROR payment declined for order 42\n",
    "stream": "stdout",
    "time": "2024-01-15T10:00:00.250113Z",
    "kubernetes": {
        "pod_name": "payments-5f7b9c-abcde",
        "namespace_name": "shop",
        "pod_id": "6a1f0c2e-1111-2222-3333-444455556666",
        "labels": {"app": "payments", "pod-template-hash": "5f7b9c"},
        "host": "node-1",
        "container_name": "payments-api",
        "docker_id": "f00dfeed",
        "container_image": "registry.local/payments:1.4.2",
    },
}

FLUENTBIT_SYSTEMD = {
    "date": 1705312800.5,
    "MESSAGE": "Started Daily apt download activities.",
    "PRIORITY": "6",
    "_HOSTNAME": "bastion-1",
    "SYSLOG_IDENTIFIER": "systemd",
}

ECS_FILEBEAT = {
    "@timestamp": "2024-01-15T10:00:00.123Z",
    "@metadata": {"beat": "filebeat", "type": "_doc", "version": "8.12.0"},
    "log": {"level": "warning", "file": {"path": "/var/log/inventory/app.log"}, "offset": 1024},
    "message": "disk usage above 90% on /data",
    "service": {"name": "inventory"},
    "host": {"name": "db-02", "hostname": "db-02.internal"},
    "agent": {"type": "filebeat", "version": "8.12.0", "name": "db-02"},
    "ecs": {"version": "8.0.0"},
    "input": {"type": "filestream"},
}

ECS_LOGGER_FLAT = {
    "@timestamp": "2024-01-15T11:00:00.000+01:00",
    "log.level": "ERROR",
    "message": "Order 981 could not be charged",
    "ecs.version": "1.6.0",
    "service.name": "orders",
    "event.dataset": "orders.log",
    "process.thread.name": "http-nio-8080-exec-3",
    "log.logger": "com.example.orders.Billing",
}

OTLP_REQUEST = {
    "resourceLogs": [
        {
            "resource": {
                "attributes": [
                    {"key": "service.name", "value": {"stringValue": "cart"}},
                    {"key": "k8s.namespace.name", "value": {"stringValue": "shop"}},
                ]
            },
            "scopeLogs": [
                {
                    "scope": {"name": "cart.logger", "version": "1.0.0"},
                    "logRecords": [
                        {
                            "timeUnixNano": "1705312800000000000",
                            "observedTimeUnixNano": "1705312800100000000",
                            "severityNumber": 9,
                            "severityText": "Information",
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "eee19b7ec3c1b174",
                            "body": {"stringValue": "item added to cart"},
                            "attributes": [{"key": "user.tier", "value": {"stringValue": "gold"}}],
                        },
                        {
                            "timeUnixNano": "0",
                            "observedTimeUnixNano": "1705312801000000000",
                            "severityNumber": 17,
                            "severityText": "ERROR",
                            "body": {"stringValue": "redis timeout after 500ms"},
                        },
                    ],
                }
            ],
        },
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "payments"}}]},
            "scopeLogs": [
                {
                    "scope": {},
                    "logRecords": [
                        {
                            "timeUnixNano": "1705312802000000000",
                            "severityNumber": 21,
                            "body": {"kvlistValue": {"values": [{"key": "event", "value": {"stringValue": "crash"}}]}},
                        }
                    ],
                }
            ],
        },
    ]
}

TELEGRAF_ONE = {
    "fields": {"usage_idle": 97.5, "usage_user": 1.25, "usage_system": 1.25},
    "name": "cpu",
    "tags": {"cpu": "cpu-total", "host": "raynor"},
    "timestamp": 1705312800,
}

INFLUX_LINES = (
    b"# written by telegraf\n"
    b"cpu,cpu=cpu-total,host=raynor usage_idle=97.5,usage_user=1.25 1705312800000000000\n"
    b"mem,host=raynor used=8123456789i,available_percent=61.2,swap_enabled=true,kernel=\"6.1 lts\" "
    b"1705312800000000000\n"
)


# --- log formats ---------------------------------------------------------------------------------------------


def test_vector_file_event_uses_host_and_nanosecond_timestamp_and_level_from_the_line():
    record = decode_one("vector", VECTOR_FILE)
    assert record == LogRecord(pytest.approx(EVENT_TS + 0.123456, abs=1e-6), "web-01", VECTOR_FILE["message"], "error")


def test_vector_kubernetes_event_names_the_app_label_and_normalises_severity():
    record = decode_one("vector", VECTOR_KUBERNETES)
    assert (record.entity, record.level, record.timestamp) == ("checkout-svc", "warn", EVENT_TS)


def test_fluentbit_kubernetes_record_uses_app_label_float_seconds_and_strips_the_newline():
    record = decode_one("fluentbit", FLUENTBIT_KUBERNETES)
    assert record.entity == "payments"
    assert record.timestamp == pytest.approx(EVENT_TS + 0.25)
    assert record.message == "2024-01-15T10:00:00.250Z ERROR payment declined for order 42"
    assert record.level == "error"


def test_fluentbit_container_name_is_the_entity_when_the_pod_has_no_app_label():
    payload = orjson.loads(orjson.dumps(FLUENTBIT_KUBERNETES))
    del payload["kubernetes"]["labels"]
    assert decode_one("fluentbit", payload).entity == "payments-api"


def test_fluentbit_systemd_record_with_date_key():
    record = decode_one("fluentbit", FLUENTBIT_SYSTEMD)
    assert record == LogRecord(EVENT_TS + 0.5, "bastion-1", "Started Daily apt download activities.", None)


def test_ecs_as_filebeat_nests_it():
    record = decode_one("ecs", ECS_FILEBEAT)
    assert record == LogRecord(pytest.approx(EVENT_TS + 0.123), "inventory", "disk usage above 90% on /data", "warn")


def test_ecs_as_loggers_write_it_with_flat_dotted_keys_and_an_offset():
    record = decode_one("ecs", ECS_LOGGER_FLAT)
    assert record == LogRecord(EVENT_TS, "orders", "Order 981 could not be charged", "error")


def test_ecs_without_service_falls_back_to_host_name():
    payload = {k: v for k, v in ECS_FILEBEAT.items() if k != "service"}
    assert decode_one("ecs", payload).entity == "db-02"


def test_otlp_request_yields_every_log_record_with_its_resource_service():
    records = decoder("otlp_json").decode(raw(OTLP_REQUEST))
    assert records == [
        LogRecord(EVENT_TS, "cart", "item added to cart", "info"),
        # timeUnixNano "0" means unknown: the collector's observed time stands in
        LogRecord(EVENT_TS + 1, "cart", "redis timeout after 500ms", "error"),
        LogRecord(EVENT_TS + 2, "payments", '{"event":"crash"}', "fatal"),
    ]


@pytest.mark.parametrize(
    "number, level",
    [(1, "debug"), (4, "debug"), (5, "debug"), (9, "info"), (12, "info"), (13, "warn"), (17, "error"), (21, "fatal"), (24, "fatal")],
)
def test_otlp_severity_number_ranges(number, level):
    request = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "1705312800000000000", "severityNumber": number, "body": {"stringValue": "x"}}]}]}]}
    assert decoder("otlp_json").decode(raw(request))[0].level == level


def test_otlp_severity_text_is_used_when_the_number_is_unset():
    request = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"severityText": "WARNING", "body": {"stringValue": "x"}}]}]}]}
    record = decoder("otlp_json").decode(raw(request))[0]
    assert (record.level, record.timestamp, record.entity) == ("warn", BROKER_TS, "unknown")


def test_otlp_field_mapping_names_attributes():
    record = decoder("otlp_json", fields={"entity": "k8s.namespace.name"}).decode(raw(OTLP_REQUEST))[0]
    assert record.entity == "shop"
    record = decoder("otlp_json", fields={"entity": "user.tier"}).decode(raw(OTLP_REQUEST))[0]
    assert record.entity == "gold"


def test_generic_json_finds_common_field_names():
    record = decode_one("json", {"time": "2024-01-15T10:00:00Z", "level": "INFO", "msg": "listening on :8080", "service": "api"})
    assert record == LogRecord(EVENT_TS, "api", "listening on :8080", "info")


def test_generic_json_numeric_pino_levels():
    record = decode_one("json", {"level": 50, "time": 1705312800000, "pid": 7, "hostname": "api-1", "msg": "request failed"})
    assert record == LogRecord(EVENT_TS, "api-1", "request failed", "error")


def test_field_mapping_with_nested_paths_overrides_the_defaults():
    payload = {
        "message": "decoy",
        "event": {"text": "upstream reset", "at": "2024-01-15T12:00:00+02:00", "sev": "crit"},
        "ctx": {"svc": "gateway"},
        "service": "decoy",
    }
    mapping = {"message": "event.text", "timestamp": "event.at", "level": "event.sev", "entity": "ctx.svc"}
    for fmt in ("json", "vector", "fluentbit", "ecs"):
        record = decode_one(fmt, payload, fields=mapping)
        assert record == LogRecord(EVENT_TS, "gateway", "upstream reset", "fatal"), fmt


def test_field_mapping_reaches_dotted_keys_inside_nested_objects():
    payload = {"log": "ready", "kubernetes": {"labels": {"app.kubernetes.io/part-of": "shop"}}}
    record = decode_one("fluentbit", payload, fields={"entity": "kubernetes.labels.app.kubernetes.io/part-of"})
    assert record.entity == "shop"


def test_mapped_message_missing_is_an_error_naming_the_path():
    with pytest.raises(DecodeError, match="no message: none of 'event.text'"):
        decoder("json", fields={"message": "event.text"}).decode(raw({"message": "hi"}))


def test_mapped_entity_pointing_at_an_object_is_an_error():
    with pytest.raises(DecodeError, match="'service' is an object"):
        decoder("json", fields={"entity": "service"}).decode(raw({"message": "hi", "service": {"name": "x"}}))


def test_json_log_entity_falls_back_to_record_key_then_default_entity():
    dec = decoder("json", default_entity="fallback")
    assert dec.decode(raw({"message": "hi"}, key=b"billing"))[0].entity == "billing"
    assert dec.decode(raw({"message": "hi"}))[0].entity == "fallback"


def test_structured_message_is_kept_as_json_text():
    assert decode_one("json", {"message": {"op": "GET", "status": 503}}).message == '{"op":"GET","status":503}'


# --- plain text ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, timestamp, message, level",
    [
        (b"2024-01-15T10:00:00.500Z ERROR db pool exhausted\n", EVENT_TS + 0.5, "ERROR db pool exhausted", "error"),
        (b"2024-01-15 10:00:00,123 WARN [main] c.e.App - slow query", EVENT_TS + 0.123, "WARN [main] c.e.App - slow query", "warn"),
        (b"[2024-01-15T11:00:00+01:00] production.INFO: job done", EVENT_TS, "production.INFO: job done", None),
        (b"2024-01-15T10:00:00Z\tinfo\tserver/main.go:42\tstarted", EVENT_TS, "info\tserver/main.go:42\tstarted", "info"),
        (b'time="2024-01-15T10:00:00Z" level=warning msg="retrying"', BROKER_TS, 'time="2024-01-15T10:00:00Z" level=warning msg="retrying"', "warn"),
        (b"Jan 15 10:00:00 web-01 sshd[811]: Failed password for root", EVENT_TS, "web-01 sshd[811]: Failed password for root", None),
        (b"<11>Jan 15 10:00:00 web-01 app: disk failure", EVENT_TS, "web-01 app: disk failure", "error"),
        (b"<165>1 2024-01-15T10:00:00.003Z host.example evntslog - ID47 - event", EVENT_TS + 0.003, "host.example evntslog - ID47 - event", "info"),
        (b"[Mon Jan 15 10:00:00 2024] [error] [client 10.0.0.5] File does not exist", BROKER_TS, "[Mon Jan 15 10:00:00 2024] [error] [client 10.0.0.5] File does not exist", "error"),
        (b"081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating", BROKER_TS, "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating", "info"),
        (b"a connection error was logged upstream", BROKER_TS, "a connection error was logged upstream", None),
    ],
)
def test_plain_text_timestamp_and_level(line, timestamp, message, level):
    record = decoder("plain").decode(raw(line, key=b"web"))[0]
    assert record == LogRecord(pytest.approx(timestamp, abs=1e-6), "web", message, level)


def test_plain_syslog_stamp_from_december_arriving_in_january_belongs_to_last_year():
    record = decoder("plain").decode(raw(b"Dec 31 23:59:58 h app: tick", timestamp=EVENT_TS))[0]
    assert record.timestamp == 1704067198.0  # 2023-12-31T23:59:58Z


def test_plain_entity_is_default_without_a_key():
    assert decoder("plain", default_entity="edge").decode(raw(b"hello"))[0].entity == "edge"


def test_plain_invalid_utf8_is_kept_with_replacement_characters():
    record = decoder("plain").decode(raw(b"user M\xfcller logged in"))[0]
    assert record.message == "user M\ufffdller logged in"


def test_plain_multiline_stack_trace_stays_one_record():
    text = b"2024-01-15T10:00:00Z ERROR boom\njava.lang.IllegalStateException: x\n\tat A.b(A.java:1)\n"
    records = decoder("plain").decode(raw(text))
    assert len(records) == 1 and records[0].message.endswith("at A.b(A.java:1)")


# --- logfmt ------------------------------------------------------------------------------------------------


def test_logfmt_go_kit_line_keeps_the_pairs_beside_the_message():
    line = (b'ts=2024-01-15T10:00:00.123Z level=error caller=charge.go:42 msg="payment failed" '
            b'err="context deadline exceeded" order=42 service=payments')
    assert decode_one("logfmt", line) == LogRecord(
        pytest.approx(EVENT_TS + 0.123), "payments",
        'payment failed caller=charge.go:42 err="context deadline exceeded" order=42', "error",
    )


def test_logfmt_access_line_without_msg_is_its_pairs_and_takes_the_key_and_record_time():
    record = decoder("logfmt").decode(raw(b"method=GET path=/api/users/12 status=200 duration=12.3ms", key=b"edge"))[0]
    assert record == LogRecord(BROKER_TS, "edge", "method=GET path=/api/users/12 status=200 duration=12.3ms", None)


def test_logfmt_logrus_line_unescapes_the_message_and_keeps_a_stack_trace():
    line = b'time="2024-01-15T11:00:00+01:00" level=warning msg="slow query \\"users\\"" took=3s\n\tat db.query\n'
    assert decode_one("logfmt", line) == LogRecord(EVENT_TS, "unknown", 'slow query "users" took=3s\n\tat db.query', "warn")


def test_logfmt_field_mapping_names_the_keys():
    line = b"at=1705312800 component=scheduler severity=info msg=tick sev=debug"
    record = decode_one("logfmt", line, fields={"timestamp": "at", "entity": "component", "level": "sev"})
    assert record == LogRecord(EVENT_TS, "scheduler", "tick severity=info", "debug")


@pytest.mark.parametrize(
    "line, reason",
    [
        (b'level=info msg="half a message', "not logfmt: the quoted value of 'msg' is not closed"),
        (b"a plain sentence, not logfmt", "not logfmt: no key=value pair in 'a plain sentence, not logfmt'"),
        (b'a=1 "b" c=2', "not logfmt: unexpected '\"' at character 4"),
        (b"ts=2024-01-15T10:00:00Z level=info", "no message: none of 'msg', 'message' and no other pair in the line"),
        (b"ts=yesterday msg=m", "field 'ts' is not a timestamp: 'yesterday'"),
    ],
)
def test_logfmt_bad_lines_say_why(line, reason):
    with pytest.raises(DecodeError, match=re.escape(reason)):
        decoder("logfmt").decode(raw(line))


# --- metrics -----------------------------------------------------------------------------------------------


def test_metric_json_point_with_millisecond_timestamp_and_job_as_entity():
    payload = {"name": "http_requests_total", "labels": {"job": "api", "instance": "10.0.0.1:9090", "code": 500}, "value": 12, "timestamp": 1705312800000}
    point = decode_one("metric_json", payload, kind="metric")
    assert point == MetricPoint(EVENT_TS, "api", "http_requests_total", (("code", "500"), ("instance", "10.0.0.1:9090"), ("job", "api")), 12.0)
    assert type(point.value) is float


def test_metric_json_array_and_numeric_string_values():
    payload = [
        {"name": "queue_depth", "labels": {"host": "mq-1"}, "value": "17.5", "timestamp": "2024-01-15T10:00:00Z"},
        {"name": "queue_depth", "labels": {"host": "mq-2"}, "value": 3},
    ]
    points = decoder("metric_json", "metric").decode(raw(payload))
    assert [(p.entity, p.value, p.timestamp) for p in points] == [("mq-1", 17.5, EVENT_TS), ("mq-2", 3.0, BROKER_TS)]


def test_metric_entity_from_configured_label_else_default():
    payload = {"name": "up", "labels": {"region": "eu", "host": "h1"}, "value": 1, "timestamp": EVENT_TS}
    assert decode_one("metric_json", payload, kind="metric", fields={"entity": "region"}).entity == "eu"
    bare = {"name": "up", "value": 1, "timestamp": EVENT_TS}
    assert decode_one("metric_json", bare, kind="metric", default_entity="fleet").entity == "fleet"


def test_telegraf_one_point_per_numeric_field():
    points = decoder("telegraf", "metric").decode(raw(TELEGRAF_ONE))
    labels = (("cpu", "cpu-total"), ("host", "raynor"))
    assert sorted(points) == sorted(
        [
            MetricPoint(EVENT_TS, "raynor", "cpu_usage_idle", labels, 97.5),
            MetricPoint(EVENT_TS, "raynor", "cpu_usage_user", labels, 1.25),
            MetricPoint(EVENT_TS, "raynor", "cpu_usage_system", labels, 1.25),
        ]
    )


def test_telegraf_batch_skips_string_fields_and_counts_booleans():
    batch = {
        "metrics": [
            TELEGRAF_ONE,
            {"fields": {"status": "running", "healthy": True, "restarts": 2}, "name": "docker_container", "tags": {"container_name": "db"}, "timestamp": 1705312800},
        ]
    }
    points = decoder("telegraf", "metric").decode(raw(batch))
    names = {p.name: p.value for p in points}
    assert names["docker_container_healthy"] == 1.0 and names["docker_container_restarts"] == 2.0
    assert "docker_container_status" not in names and len(points) == 5


def test_influx_lines_with_integer_boolean_and_string_fields():
    points = decoder("influx", "metric").decode(raw(INFLUX_LINES))
    assert [(p.name, p.value) for p in points] == [
        ("cpu_usage_idle", 97.5),
        ("cpu_usage_user", 1.25),
        ("mem_used", 8123456789.0),
        ("mem_available_percent", 61.2),
        ("mem_swap_enabled", 1.0),
    ]
    assert {p.timestamp for p in points} == {EVENT_TS}
    assert points[0].labels == (("cpu", "cpu-total"), ("host", "raynor"))
    assert points[0].entity == "raynor"


def test_influx_escaping_rules():
    line = rb'disk\ io,host=db\,1,path=C:\\data\ 1,label\=x=y free\ bytes=12u,note="say \"hi\", ok" 1705312800000000000'
    points = decoder("influx", "metric").decode(raw(line))
    assert len(points) == 1
    point = points[0]
    assert point.name == "disk io_free bytes"
    assert dict(point.labels) == {"host": "db,1", "path": "C:\\\\data 1", "label=x": "y"}
    assert (point.entity, point.value) == ("db,1", 12.0)


def test_influx_without_timestamp_uses_the_record_timestamp():
    assert decoder("influx", "metric").decode(raw(b"load,host=a value=0.5"))[0].timestamp == BROKER_TS


# --- timestamps and levels ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stamp",
    [1705312800, 1705312800.0, 1705312800000, 1705312800000000, 1705312800000000000, "1705312800", "1705312800000",
     "2024-01-15T10:00:00Z", "2024-01-15T10:00:00.000000000Z", "2024-01-15T11:30:00+01:30", "2024-01-15T05:00:00-05:00",
     "2024-01-15T10:00:00", "2024-01-15 10:00:00z"],
)
def test_every_timestamp_unit_and_form_gives_the_same_event_time(stamp):
    assert decode_one("json", {"message": "m", "timestamp": stamp}).timestamp == pytest.approx(EVENT_TS)


@pytest.mark.parametrize(
    "given, level",
    [("warning", "warn"), ("WARN", "warn"), ("Err", "error"), ("critical", "fatal"), ("CRIT", "fatal"), ("emerg", "fatal"),
     ("alert", "fatal"), ("panic", "fatal"), ("trace", "debug"), ("notice", "info"), ("Information", "info"), ("loud", None)],
)
def test_levels_are_normalised(given, level):
    assert decode_one("json", {"message": "m", "level": given}).level == level


def test_timestamp_falls_back_to_the_kafka_record_timestamp():
    assert decode_one("vector", {"message": "m", "host": "h"}).timestamp == BROKER_TS


# --- bad input -------------------------------------------------------------------------------------------------

ALL_FORMATS = [(f, "log") for f in ("json", "vector", "fluentbit", "ecs", "otlp_json", "logfmt", "plain")] + [
    (f, "metric") for f in ("metric_json", "telegraf", "influx")
]
JSON_FORMATS = [(f, k) for f, k in ALL_FORMATS if f not in ("plain", "logfmt", "influx")]


@pytest.mark.parametrize("fmt", ["json", "ecs", "vector", "fluentbit"])
def test_a_message_object_nested_too_deep_to_write_as_text_is_malformed_and_one_shallower_is_kept(fmt):
    def message(depth):
        return b'{"message": ' + b'{"a":' * depth + b"1" + b"}" * depth + b', "timestamp": 1705312800}'

    kept = decoder(fmt, "log").decode(raw(message(200)))
    assert kept[0].message.startswith('{"a":{"a":')
    with pytest.raises(MalformedRecord, match="a field nested deeper than 254 levels cannot be kept as text"):
        decoder(fmt, "log").decode(raw(message(1000)))


@pytest.mark.parametrize("fmt, kind", ALL_FORMATS)
@pytest.mark.parametrize("value", [b"", b"  \n", None])
def test_empty_message_is_refused(fmt, kind, value):
    with pytest.raises(EmptyRecord, match="empty message"):
        decoder(fmt, kind).decode(RawRecord("in", 0, 0, BROKER_TS, None, value))


@pytest.mark.parametrize("fmt, kind", ALL_FORMATS)
def test_oversized_record_is_refused_before_parsing(fmt, kind):
    with pytest.raises(OversizedRecord, match="over the 1048576 byte limit"):
        decoder(fmt, kind).decode(raw(b"a" * (MAX_RECORD_BYTES + 1)))


@pytest.mark.parametrize("fmt, kind", JSON_FORMATS)
def test_invalid_json_names_the_byte(fmt, kind):
    with pytest.raises(MalformedRecord, match=r"^invalid JSON at byte 12: "):
        decoder(fmt, kind).decode(raw(b'{"message": oops}'))


@pytest.mark.parametrize("fmt, kind", JSON_FORMATS)
def test_deeply_nested_json_is_refused(fmt, kind):
    with pytest.raises(MalformedRecord, match="nested deeper than 1024 levels"):
        decoder(fmt, kind).decode(raw(b'{"a":' * 1100 + b"1" + b"}" * 1100))


@pytest.mark.parametrize("fmt, kind", ALL_FORMATS)
def test_binary_garbage_is_refused(fmt, kind):
    garbage = bytes(random.Random(7).randrange(256) for _ in range(512))
    with pytest.raises(DecodeError):
        decoder(fmt, kind).decode(raw(b"\x1f\x8b\x08\x00" + garbage))


def test_plain_binary_garbage_says_so():
    with pytest.raises(NotText, match="binary data"):
        decoder("plain").decode(raw(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"))
    with pytest.raises(NotText, match="binary data"):
        decoder("plain").decode(raw(bytes(range(1, 32)) * 4))


def test_invalid_utf8_in_json_is_refused_as_invalid_json():
    with pytest.raises(NotText, match=r"invalid JSON at byte 14: not valid UTF-8 \(byte 0xfc\)"):
        decoder("json").decode(raw(b'{"message": "M\xfcller"}'))


@pytest.mark.parametrize("fmt, kind", ALL_FORMATS)
def test_no_timestamp_anywhere_is_refused(fmt, kind):
    payloads = {
        "otlp_json": {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": "m"}}]}]}]},
        "plain": b"no stamp here",
        "logfmt": b"level=info msg=m",
        "metric_json": {"name": "up", "value": 1},
        "telegraf": {"name": "cpu", "fields": {"idle": 1}, "tags": {}},
        "influx": b"cpu idle=1",
    }
    payload = payloads.get(fmt, {"message": "m", "log": "m"})
    with pytest.raises(MissingField, match="no timestamp"):
        decoder(fmt, kind).decode(raw(payload, timestamp=None))


def test_bad_timestamp_value_names_the_field():
    with pytest.raises(InvalidField, match="field '@timestamp' is not a timestamp: 'yesterday'"):
        decoder("ecs").decode(raw({"message": "m", "@timestamp": "yesterday"}))
    with pytest.raises(InvalidField, match="field 'timestamp' is not a timestamp: True"):
        decoder("metric_json", "metric").decode(raw({"name": "up", "value": 1, "timestamp": True}))


def test_a_timestamp_beyond_the_year_9999_is_refused():
    # 3e20 read as nanoseconds is the year 11476: no date an alert could print.
    with pytest.raises(InvalidField, match="field 'timestamp' is not a timestamp: 3e\\+20"):
        decoder("metric_json", "metric").decode(raw({"name": "up", "value": 1, "timestamp": 3e20}))
    with pytest.raises(InvalidField, match="timestamp not a date between the years 1 and 9999: 300000000000000000000"):
        decoder("influx", "metric").decode(raw(b"cpu idle=1 300000000000000000000"))
    assert decode_one("json", {"message": "m", "timestamp": 1.7e18}).timestamp == pytest.approx(1.7e9)


def test_syslog_stamp_without_year_needs_the_record_timestamp():
    with pytest.raises(MissingField, match="has no year and the record carries no timestamp"):
        decoder("plain").decode(raw(b"Jan 15 10:00:00 h app: x", timestamp=None))


@pytest.mark.parametrize(
    "payload, reason",
    [
        ({"name": "up", "value": "abc", "timestamp": EVENT_TS}, "field 'value' is not a number: 'abc'"),
        ({"name": "up", "value": "NaN", "timestamp": EVENT_TS}, "field 'value' is not finite: 'NaN'"),
        ({"name": "up", "value": "-inf", "timestamp": EVENT_TS}, "field 'value' is not finite"),
        ({"name": "up", "value": None, "timestamp": EVENT_TS}, "field 'value' is not a number: None"),
        ({"name": "up", "timestamp": EVENT_TS}, "metric 'up' has no 'value'"),
        ({"value": 1, "timestamp": EVENT_TS}, "no metric 'name'"),
        ({"name": "", "value": 1, "timestamp": EVENT_TS}, "^field 'name' is an empty string$"),
        ({"name": 7, "value": 1, "timestamp": EVENT_TS}, "^field 'name' is not a string: 7$"),
        ({"name": "up", "value": 1, "labels": ["a"]}, "field 'labels' is not an object"),
        ([{"name": "up", "value": 1}, {"name": "up", "value": "x"}], r"^\[1\]: field 'value' is not a number"),
        ("just a string", "expected a metric object"),
    ],
)
def test_metric_json_bad_points(payload, reason):
    with pytest.raises(DecodeError, match=reason):
        decoder("metric_json", "metric").decode(raw(payload))


@pytest.mark.parametrize(
    "payload, reason",
    [
        ({"name": "cpu", "tags": {}, "timestamp": 1}, "metric 'cpu' has no 'fields' object"),
        ({"fields": {"a": 1}, "timestamp": 1}, "no metric 'name'"),
        ({"name": "cpu", "fields": {"state": "ok"}, "timestamp": 1}, "no numeric fields"),
        ({"metrics": [TELEGRAF_ONE, {"name": "x", "fields": {"a": [1]}, "timestamp": 1}]}, r"^metrics\[1\]: field 'a' is not a number"),
        ({"metrics": {"name": "x"}}, "field 'metrics' is not an array"),
    ],
)
def test_telegraf_bad_metrics(payload, reason):
    with pytest.raises(DecodeError, match=reason):
        decoder("telegraf", "metric").decode(raw(payload))


def test_an_empty_telegraf_batch_is_an_empty_record_not_a_schema_problem():
    with pytest.raises(EmptyRecord, match="empty batch"):
        decoder("telegraf", "metric").decode(raw({"metrics": []}))


@pytest.mark.parametrize(
    "lines, reason",
    [
        (b"cpu,host=a idle=1 1\ncpu,host=a idle=abc 1", "line 2: field 'idle' is not a number: 'abc'"),
        (b"cpu,host=a idle=1.5i", "line 1: field 'idle' is not a number: '1.5i'"),
        (b"cpu,host=a idle=-1u", "line 1: field 'idle' is an unsigned integer below zero"),
        (b"cpu,host=a idle=nan", "line 1: field 'idle' is not finite"),
        (b"cpu,host=a", "line 1: no fields"),
        (b"cpu,host idle=1", "line 1: tag 'host' is not key=value"),
        (b"cpu idle=1 noon", "line 1: timestamp 'noon' is not an integer"),
        (b'cpu msg="unterminated', "line 1: unterminated string"),
        (b'cpu msg="only strings" 1', "no numeric fields"),
        (b"cpu idle=1 \xff\xfe", "invalid UTF-8 at byte 11"),
    ],
)
def test_influx_bad_lines_name_the_line(lines, reason):
    with pytest.raises(DecodeError, match=reason):
        decoder("influx", "metric").decode(raw(lines))


@pytest.mark.parametrize(
    "lines, kind, reason",
    [
        # Python's number syntax is not line protocol's: an underscore is a typo or another format.
        (b"q v=1_000", InvalidField, "line 1: field 'v' is not a number: '1_000'"),
        (b"q v=1_000i", InvalidField, "line 1: field 'v' is not a number: '1_000i'"),
        (b"q v=99999999999999999999999i", InvalidField, "line 1: field 'v' is out of range for a 64-bit integer"),
        (b"q v=18446744073709551616u", InvalidField, "line 1: field 'v' is out of range for an unsigned 64-bit"),
        (b"q v=1e999", InvalidField, "line 1: field 'v' is out of range: '1e999'"),
        (b"dup,host=e1,host=e2 v=1", MalformedRecord, "line 1: duplicate tag key 'host'"),
        (b"q v=1,v=2", MalformedRecord, "line 1: duplicate field key 'v'"),
        (b"q v=1\nq a\\ b=1,a\\ b=2", MalformedRecord, "line 2: duplicate field key 'a b'"),
    ],
)
def test_influx_refuses_what_line_protocol_does_not_allow(lines, kind, reason):
    with pytest.raises(kind, match="^" + re.escape(reason)):
        decoder("influx", "metric").decode(raw(lines))


def test_influx_accepts_the_protocol_number_limits_and_forms():
    lines = b"q a=9223372036854775807i,b=-9223372036854775808i,c=18446744073709551615u,d=-1.5e3,e=.5,f=+2.,g=0 1"
    values = [p.value for p in decoder("influx", "metric").decode(raw(lines))]
    assert values == [2.0**63, -(2.0**63), 2.0**64, -1500.0, 0.5, 2.0, 0.0]


@pytest.mark.parametrize(
    "fmt, payload",
    [
        ("influx", b"cpu idle=1 1\ncpu idle=abc 1"),
        ("metric_json", [{"name": "up", "value": 1}, {"name": "up", "value": "x"}]),
        ("telegraf", {"metrics": [TELEGRAF_ONE, {"name": "x", "fields": {"a": [1]}, "timestamp": 1}]}),
    ],
)
def test_naming_the_line_or_entry_keeps_the_kind(fmt, payload):
    with pytest.raises(InvalidField, match=r"^(line 2|\[1\]|metrics\[1\]): field '\w+' is not a number"):
        decoder(fmt, "metric").decode(raw(payload))


@pytest.mark.parametrize(
    "fmt, payload, reason",
    [
        ("json", [{"message": "m"}], "expected a JSON object, got an array"),
        ("vector", {"host": "h", "timestamp": "2024-01-15T10:00:00Z"}, "no message: none of 'message'"),
        ("otlp_json", {"resourceSpans": []}, "no 'resourceLogs' array"),
        ("otlp_json", {"resourceLogs": []}, "holds no log records"),
        ("otlp_json", {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "soon"}]}]}]}, r"resourceLogs\[0\]\.scopeLogs\[0\]\.logRecords\[0\]: timeUnixNano is not an integer"),
        ("otlp_json", {"resourceLogs": [{"scopeLogs": {"logRecords": []}}]}, r"resourceLogs\[0\]\.scopeLogs is not an array"),
    ],
)
def test_log_payloads_of_the_wrong_shape(fmt, payload, reason):
    with pytest.raises(DecodeError, match=reason):
        decoder(fmt).decode(raw(payload))


@pytest.mark.parametrize("fmt", ["json", "plain"])
def test_long_message_is_truncated_with_a_marker(fmt):
    body = "x" * (MAX_MESSAGE_CHARS + 5000)
    value = orjson.dumps({"message": body}) if fmt == "json" else body.encode()
    message = decoder(fmt).decode(raw(value))[0].message
    assert message.startswith("x" * MAX_MESSAGE_CHARS)
    assert message.endswith("[truncated 5000 chars]")
    assert len(message) < MAX_MESSAGE_CHARS + 40


@pytest.mark.parametrize("fmt, kind", ALL_FORMATS)
def test_only_decode_errors_escape_whatever_the_bytes(fmt, kind):
    """Mutated shipper payloads either decode or raise DecodeError: no other exception stops the stream."""
    samples = [VECTOR_FILE, FLUENTBIT_KUBERNETES, ECS_FILEBEAT, OTLP_REQUEST, TELEGRAF_ONE,
               {"name": "up", "labels": {"job": "a"}, "value": 1, "timestamp": 1705312800}]
    seeds = [orjson.dumps(s) for s in samples] + [INFLUX_LINES, b"<34>Jan 15 10:00:00 h a: ERROR x",
                                                  b'ts=2024-01-15T10:00:00Z level=error msg="a \\"b\\"" err="x y" n=1']
    rng = random.Random(fmt)
    dec = decoder(fmt, kind)
    for _ in range(400):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(3)
            pos = rng.randrange(len(data))
            if op == 0:
                data[pos] = rng.randrange(256)
            elif op == 1:
                del data[pos : pos + rng.randint(1, 8)]
            else:
                data[pos:pos] = rng.choice([b"{", b"]", b'"', b"\\", b",", b" ", b"=", b"null", b"-1e999", b"\x00", b"\n"])
        try:
            records = dec.decode(raw(bytes(data), timestamp=rng.choice([BROKER_TS, None])))
        except DecodeError as exc:
            assert "\n" not in str(exc) and str(exc)
        else:
            assert records and all(isinstance(r, (LogRecord, MetricPoint)) for r in records)


# --- configuration -------------------------------------------------------------------------------------------


def test_field_mappings_that_cannot_apply_are_config_errors():
    with pytest.raises(ConfigError, match="fields.message does not apply to metric inputs"):
        decoder("influx", "metric", fields={"message": "m"})
    with pytest.raises(ConfigError, match="fields.entity does not apply to plain text"):
        decoder("plain", fields={"entity": "host"})


def _mutate_tree(node, rng: random.Random):
    """A copy of a decoded payload with one value swapped for something of the wrong type or shape."""
    odd = [None, "", "abc", "NaN", "1e999", -1, 0, 2**63, 1e308, True, [], {}, [None], {"stringValue": 5}, "0"]
    if isinstance(node, dict) and node:
        key = rng.choice(list(node))
        copy = dict(node)
        copy[key] = rng.choice(odd) if rng.random() < 0.4 else _mutate_tree(node[key], rng)
        return copy
    if isinstance(node, list) and node:
        i = rng.randrange(len(node))
        copy = list(node)
        copy[i] = rng.choice(odd) if rng.random() < 0.4 else _mutate_tree(node[i], rng)
        return copy
    return rng.choice(odd)


@pytest.mark.parametrize("fmt, kind", JSON_FORMATS)
def test_wrong_types_anywhere_in_valid_json_give_a_reason_not_a_crash(fmt, kind):
    samples = {
        "json": {"time": "2024-01-15T10:00:00Z", "level": "INFO", "msg": "m", "service": "api"},
        "vector": VECTOR_KUBERNETES,
        "fluentbit": FLUENTBIT_KUBERNETES,
        "ecs": ECS_FILEBEAT,
        "otlp_json": OTLP_REQUEST,
        "metric_json": [{"name": "up", "labels": {"job": "a"}, "value": 1, "timestamp": 1705312800}],
        "telegraf": {"metrics": [TELEGRAF_ONE]},
    }
    rng = random.Random(fmt)
    dec = decoder(fmt, kind)
    for _ in range(300):
        payload = samples[fmt]
        for _ in range(rng.randint(1, 3)):
            payload = _mutate_tree(payload, rng)
        try:
            records = dec.decode(raw(orjson.dumps(payload)))
        except DecodeError as exc:
            # The guard's catch-all names an "unexpected" error: that would be a decoder bug.
            assert not str(exc).startswith(f"{fmt}: unexpected"), (payload, str(exc))
        else:
            for r in records:
                assert isinstance(r.timestamp, float) and isinstance(r.entity, str)
                assert isinstance(r.message, str) if kind == "log" else isinstance(r.value, float)


# --- bounded names and values -----------------------------------------------------------------------------------

LONG = "svc0-" + "x" * 99_995  # 100,000 characters, as a producer bug or an attacker writes them


def _otlp(service: str, bodies=("item added",)) -> dict:
    records = [{"timeUnixNano": "1705312800000000000", "body": {"stringValue": b}} for b in bodies]
    return {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                              "scopeLogs": [{"logRecords": records}]}]}


@pytest.mark.parametrize(
    "fmt, payload, reason",
    [
        # A label value: it is the entity and part of the series label of every model family on /metrics.
        ("metric_json", {"name": "cpu", "labels": {"service": LONG}, "value": 1, "timestamp": EVENT_TS},
         "label 'service' value is 100000 characters, over the 1024 character limit: 'svc0-xxx"),
        ("telegraf", {"name": "cpu", "tags": {"host": LONG}, "fields": {"idle": 1}, "timestamp": 1705312800},
         "label 'host' value is 100000 characters, over the 1024 character limit: 'svc0-xxx"),
        ("influx", f"cpu,host={LONG} idle=1 1705312800000000000".encode(),
         "label 'host' value is 100000 characters, over the 1024 character limit: 'svc0-xxx"),
        # A metric name: the signal label, and the head of the series label.
        ("metric_json", {"name": LONG, "value": 1, "timestamp": EVENT_TS},
         "metric name is 100000 characters, over the 200 character limit: 'svc0-xxx"),
        ("telegraf", {"name": LONG, "tags": {}, "fields": {"idle": 1}, "timestamp": 1705312800},
         "metric name is 100005 characters, over the 200 character limit: 'svc0-xxx"),
        ("telegraf", {"name": "cpu", "tags": {}, "fields": {LONG: 1}, "timestamp": 1705312800},
         "metric name is 100004 characters, over the 200 character limit: 'cpu_svc0-xxx"),
        ("influx", f"{LONG} idle=1 1705312800000000000".encode(),
         "metric name is 100005 characters, over the 200 character limit: 'svc0-xxx"),
        # A label name.
        ("metric_json", {"name": "cpu", "labels": {LONG: "a"}, "value": 1, "timestamp": EVENT_TS},
         "label name is 100000 characters, over the 200 character limit: 'svc0-xxx"),
        ("influx", f"cpu,{LONG}=a idle=1 1705312800000000000".encode(),
         "label name is 100000 characters, over the 200 character limit: 'svc0-xxx"),
    ],
    ids=["metric_json-label-value", "telegraf-tag-value", "influx-tag-value", "metric_json-name", "telegraf-name",
         "telegraf-field-key", "influx-measurement", "metric_json-label-name", "influx-tag-key"],
)
def test_a_name_or_label_value_over_its_bound_is_refused_naming_it(fmt, payload, reason):
    with pytest.raises(InvalidField, match="^" + re.escape(reason)):
        decoder(fmt, "metric").decode(raw(payload))


@pytest.mark.parametrize(
    "fmt, payload, key",
    [
        ("json", {"message": "m", "service": LONG}, None),
        ("vector", {"message": "m", "host": LONG}, None),
        ("fluentbit", {"log": "m", "kubernetes": {"labels": {"app": LONG}}}, None),
        ("ecs", {"message": "m", "service": {"name": LONG}}, None),
        ("otlp_json", _otlp(LONG), None),
        ("logfmt", f"msg=m service={LONG}".encode(), None),
        ("json", {"message": "m"}, LONG.encode()),  # the entity from the Kafka record key
        ("plain", b"just a line", LONG.encode()),
    ],
    ids=["json", "vector", "fluentbit", "ecs", "otlp_json", "logfmt", "json-record-key", "plain-record-key"],
)
def test_a_log_entity_over_its_bound_is_refused_naming_it(fmt, payload, key):
    # The entity is the entity label of every log signal and of incident_open.
    with pytest.raises(InvalidField, match="^" + re.escape(
            "entity is 100000 characters, over the 1024 character limit: 'svc0-xxx")):
        decoder(fmt).decode(raw(payload, key=key))


def test_names_and_values_at_their_bounds_are_kept():
    name, key, value = "n" * 200, "k" * 200, "v" * 1024
    point = decode_one("metric_json", {"name": name, "labels": {key: value}, "value": 1, "timestamp": EVENT_TS}, "metric")
    assert (point.name, point.labels, point.entity) == (name, ((key, value),), "unknown")
    assert decode_one("json", {"message": "m", "service": value}).entity == value
    with pytest.raises(InvalidField, match="^metric name is 201 characters"):
        decoder("metric_json", "metric").decode(raw({"name": name + "n", "value": 1, "timestamp": EVENT_TS}))
    with pytest.raises(InvalidField, match="^label name is 201 characters"):
        decoder("metric_json", "metric").decode(raw({"name": "up", "labels": {key + "k": "v"}, "value": 1}))
    with pytest.raises(InvalidField, match="^label 'k' value is 1025 characters"):
        decoder("metric_json", "metric").decode(raw({"name": "up", "labels": {"k": value + "v"}, "value": 1}))
    with pytest.raises(InvalidField, match="^entity is 1025 characters"):
        decoder("json").decode(raw({"message": "m", "service": value + "v"}))


def test_a_series_of_many_long_labels_is_refused_as_a_whole():
    # Each value is within its bound, but together they would make a 10 KB series label.
    labels = {f"label{i}": "v" * 1000 for i in range(10)}
    with pytest.raises(InvalidField, match=r"^series \(10 labels\) is 10\d{3} characters, over the 4096 character "
                                           r"limit: 'cpu\{label0=\"vvv"):
        decoder("metric_json", "metric").decode(raw({"name": "cpu", "labels": labels, "value": 1}))
    # Escaping counts: 3 values of 1000 quotes stay under 4096 as written, not as the series label is.
    quotes = {f"q{i}": '"' * 1000 for i in range(3)}
    with pytest.raises(InvalidField, match=r"^series \(3 labels\) is 60\d\d characters"):
        decoder("metric_json", "metric").decode(raw({"name": "cpu", "labels": quotes, "value": 1}))
    fits = {f"label{i}": "v" * 1000 for i in range(3)}
    assert len(decode_one("metric_json", {"name": "cpu", "labels": fits, "value": 1}, "metric").series) < 4096


@pytest.mark.parametrize(
    "fmt, kind, payload, reason",
    [
        ("metric_json", "metric", [{"name": "up", "value": 1}, {"name": "up", "labels": {"job": LONG}, "value": 1}],
         "point 2 of 2 ('up'): label 'job' value is 100000 characters"),
        ("telegraf", "metric", {"metrics": [TELEGRAF_ONE, {"name": "m", "tags": {"host": LONG}, "fields": {"a": 1, "b": 2},
                                                           "timestamp": 1705312800}]},
         "point 4 of 5 ('m_a'): label 'host' value is 100000 characters"),
        ("influx", "metric", f"cpu,host=a idle=1 1\ncpu,host={LONG} idle=1 1".encode(),
         "point 2 of 2 ('cpu_idle'): label 'host' value is 100000 characters"),
        ("influx", "metric", f"cpu,host=a idle=1 1\n{LONG} idle=1 1".encode(),
         "point 2 of 2: metric name is 100005 characters"),
        ("otlp_json", "log", {"resourceLogs": _otlp("cart")["resourceLogs"] + _otlp(LONG, ("a", "b"))["resourceLogs"]},
         "log record 2 of 3: entity is 100000 characters"),
    ],
    ids=["metric_json", "telegraf", "influx-tag-value", "influx-measurement", "otlp_json"],
)
def test_one_record_over_a_bound_refuses_its_whole_message_naming_the_record(fmt, kind, payload, reason):
    # As for any bad part of a message: nothing of it is scored, nothing of it is lost (the dead letter
    # holds it whole, and a replay after a fix restores every point).
    with pytest.raises(InvalidField, match="^" + re.escape(reason)):
        decoder(fmt, kind).decode(raw(payload))


def test_a_default_entity_over_the_bound_is_a_config_error():
    with pytest.raises(ValueError, match="1024 characters"):
        InputSpec(topic="in", kind="log", format="plain", default_entity="e" * 1025)


# --- series identity -------------------------------------------------------------------------------------------


def test_a_label_value_with_quotes_cannot_share_a_series_with_another_label_set():
    forged = MetricPoint(EVENT_TS, "e", "depth", (("queue", 'a",region="eu'),), 1.0)
    honest = MetricPoint(EVENT_TS, "e", "depth", (("queue", "a"), ("region", "eu")), 1.0)
    assert forged.series != honest.series
    assert forged.series == r'depth{queue="a\",region=\"eu"}'
    odd = MetricPoint(EVENT_TS, "e", "depth", (("path", "C:\\tmp\nx"),), 1.0)
    assert odd.series == r'depth{path="C:\\tmp\nx"}'


def test_a_name_or_label_name_holding_the_key_syntax_cannot_share_a_series_with_another():
    honest = MetricPoint(EVENT_TS, "e", "x", (("service", "evil"),), 1.0)
    named = MetricPoint(EVENT_TS, "e", 'x{service="evil"}', (), 1.0)
    assert named.series != honest.series
    keyed = MetricPoint(EVENT_TS, "e", "x", (('a"b', "c"),), 1.0)
    other = MetricPoint(EVENT_TS, "e", "x", (("a", 'b="c'),), 1.0)
    assert keyed.series != other.series
    # Names as OpenTelemetry and Telegraf write them are unchanged.
    assert MetricPoint(EVENT_TS, "e", "http.server.duration", (("a", "b"),), 1.0).series == \
        'http.server.duration{a="b"}'


@pytest.mark.parametrize("fmt, payload, reason", [
    ("metric_json", {"name": "x", "value": 1, "labels": {"service": {"a": [1, "b"]}}, "timestamp": 1705312800},
     "field 'labels': label 'service' is an object, not a string, number or boolean"),
    ("metric_json", {"name": "x", "value": "1_000", "timestamp": 1705312800}, "field 'value' is not a number: '1_000'"),
    ("telegraf", {"name": "x", "fields": {"a": 1}, "tags": {"host": ["a"]}, "timestamp": 1705312800},
     "label 'host' is an array, not a string, number or boolean"),
])
def test_a_label_that_is_an_object_or_a_number_with_underscores_is_an_invalid_field(fmt, payload, reason):
    with pytest.raises(InvalidField, match=re.escape(reason)):
        decoder(fmt, "metric").decode(raw(payload))


def test_ordinary_label_values_keep_their_series_key():
    point = decode_one("influx", b"cpu,host=raynor,cpu=cpu-total usage_idle=97.5 1705312800000000000", "metric")
    assert point.series == 'cpu_usage_idle{cpu="cpu-total",host="raynor"}'


# --- local time without an offset -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, value",
    [
        ("plain", b"2024-01-15 11:00:00,000 ERROR [main] c.e.App - payment failed"),  # log4j's %d
        ("plain", b"Jan 15 11:00:00 web-01 app: payment failed"),  # BSD syslog
        ("json", {"asctime": "2024-01-15 11:00:00,000", "message": "payment failed"}),  # Python logging
        ("logfmt", b'time="2024-01-15T11:00:00" level=error msg="payment failed"'),
    ],
)
def test_a_timestamp_without_an_offset_is_read_in_the_inputs_timezone(fmt, value):
    fields = {"timestamp": "asctime"} if fmt == "json" else None
    kwargs = {"fields": fields} if fields else {}
    berlin = decoder(fmt, timezone="Europe/Berlin", **kwargs).decode(raw(value))[0]
    assert berlin.timestamp == EVENT_TS  # 11:00 in Berlin (UTC+1 in January) is 10:00 UTC
    utc = decoder(fmt, **kwargs).decode(raw(value))[0]
    assert utc.timestamp == EVENT_TS + 3600  # the default is UTC, as before


def test_the_inputs_timezone_follows_daylight_saving_and_leaves_offsets_and_epochs_alone():
    summer = decode_one("json", {"timestamp": "2024-07-15T12:00:00", "message": "m"}, timezone="Europe/Berlin")
    assert summer.timestamp == 1721037600.0  # 10:00 UTC: CEST is UTC+2
    assert decode_one("json", {"timestamp": "2024-01-15T10:00:00Z", "message": "m"}, timezone="Asia/Tokyo").timestamp == EVENT_TS
    assert decode_one("json", {"timestamp": EVENT_TS, "message": "m"}, timezone="Asia/Tokyo").timestamp == EVENT_TS
    point = decode_one("metric_json", {"name": "up", "value": 1, "timestamp": "2024-01-15 05:00:00"}, "metric",
                       timezone="America/New_York")
    assert point.timestamp == EVENT_TS


# --- terminal colours ---------------------------------------------------------------------------------------------


def test_colour_codes_are_stripped_so_the_level_is_read_and_the_message_is_plain():
    record = decoder("plain").decode(raw(b"\x1b[31mERROR\x1b[0m payment gateway unavailable", key=b"pay"))[0]
    assert (record.level, record.message) == ("error", "ERROR payment gateway unavailable")
    # Spring Boot with spring.output.ansi.enabled=always: the timestamp is coloured too.
    spring = (b"\x1b[2m2024-01-15T10:00:00.000Z\x1b[0m \x1b[31mERROR\x1b[0m \x1b[35m1\x1b[0;39m \x1b[2m---\x1b[0;39m "
              b"\x1b[36mc.e.Payments\x1b[0;39m : gateway timeout")
    record = decoder("plain").decode(raw(spring))[0]
    assert (record.timestamp, record.level, record.message) == (EVENT_TS, "error", "ERROR 1 --- c.e.Payments : gateway timeout")


@pytest.mark.parametrize("fmt", ["json", "vector", "fluentbit"])
def test_colour_codes_in_a_shipped_json_message_are_stripped(fmt):
    field = "log" if fmt == "fluentbit" else "message"
    record = decode_one(fmt, {field: "\x1b[33mWARN\x1b[39m disk almost full\n", "timestamp": EVENT_TS, "@timestamp": EVENT_TS})
    assert (record.level, record.message) == ("warn", "WARN disk almost full")


def test_colour_codes_in_logfmt_keys_and_otlp_bodies_are_stripped():
    record = decode_one("logfmt", b'\x1b[36mlevel\x1b[0m=error \x1b[36mmsg\x1b[0m="payment failed"')
    assert (record.level, record.message) == ("error", "payment failed")
    body = {"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"timeUnixNano": "1705312800000000000", "body": {"stringValue": "\x1b[1;31mFATAL\x1b[0m out of memory"}}]}]}]}
    record = decode_one("otlp_json", body)
    assert (record.level, record.message) == ("fatal", "FATAL out of memory")


# --- syslog year ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, kafka_time, expected",
    [
        # A host a few seconds ahead: the line is from the new year, its Kafka record still from the old one.
        (b"Jan  1 00:00:01 h app: happy new year", 1704067192.0, 1704067201.0),  # 2023-12-31T23:59:52Z -> 2024-01-01
        (b"Dec 31 23:59:58 h app: tick", 1704067205.0, 1704067198.0),  # arriving in 2024 -> 2023-12-31
        (b"Jul  4 12:00:00 h app: mid-year", 1704067205.0, 1688472000.0),  # half a year back, not ahead
        (b"Feb 29 12:00:00 h app: leap day", 1740787200.0, 1709208000.0),  # 2025-03-01: the last Feb 29 was 2024
    ],
)
def test_a_syslog_stamp_takes_the_year_closest_to_its_kafka_timestamp(line, kafka_time, expected):
    assert decoder("plain").decode(raw(line, timestamp=kafka_time))[0].timestamp == expected


# --- binary payloads on text inputs ---------------------------------------------------------------------------------

AVRO_FRAMED = b"\x00\x00\x00\x00\x01\x0epayment\x02\x0egateway\x00\xe8\x07"  # Confluent: magic 0, schema id 1
PROTOBUF = b"\x0a\x07payment\x12\x05error\x18\x01\x22\x07gateway"


@pytest.mark.parametrize("fmt, kind", JSON_FORMATS + [("influx", "metric")])
def test_avro_or_protobuf_on_a_json_or_line_protocol_input_is_not_text(fmt, kind):
    with pytest.raises(NotText, match=r"^binary data, not text: NUL byte at offset 0$"):
        decoder(fmt, kind).decode(raw(AVRO_FRAMED))
    with pytest.raises(NotText, match=r"^binary data, not text: \d+ of 27 bytes are control characters$"):
        decoder(fmt, kind).decode(raw(PROTOBUF))


def test_a_json_syntax_slip_is_still_malformed_not_binary():
    with pytest.raises(MalformedRecord, match="^invalid JSON at byte"):
        decoder("json").decode(raw(b'{"message": "tab\there", oops}'))
