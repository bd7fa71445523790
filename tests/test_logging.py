"""The service's log stays readable: kafka-python's retry errors during a Kafka outage are throttled."""

from __future__ import annotations

import logging

from detector.commands.common import KafkaThrottle


def _record(name: str, msg: str, *args) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_kafka_python_errors_are_let_through_once_a_minute_with_a_count_of_the_rest():
    now = [0.0]
    throttle = KafkaThrottle(every=60.0, clock=lambda: now[0])
    passed = []
    for second in range(0, 180, 2):  # a broker down for three minutes: an error every retry
        now[0] = float(second)
        for name in ("kafka.net.manager", "kafka.cluster"):
            rec = _record(name, "Connection failed to %s: %s", "127.0.0.1:9092", "ECONNREFUSED")
            if throttle.filter(rec):
                passed.append((second, name, rec.getMessage()))
    assert [(s, n) for s, n, _ in passed] == [(0, "kafka.net.manager"), (0, "kafka.cluster"),
                                              (60, "kafka.net.manager"), (60, "kafka.cluster"),
                                              (120, "kafka.net.manager"), (120, "kafka.cluster")]
    assert passed[2][2] == ("Connection failed to 127.0.0.1:9092: ECONNREFUSED (29 more like this in the last "
                            "60s not logged)")
    # The service's own lines are never held back.
    assert all(throttle.filter(_record("detector.service", "Kafka at %s does not answer", "x")) for _ in range(5))


def test_a_kafka_python_error_with_an_exception_is_one_line_without_its_traceback():
    try:
        None.recv(4096)
    except AttributeError:
        import sys

        rec = logging.LogRecord("kafka.net.transport", logging.ERROR, __file__, 1, "Error receiving from %s", ("x",),
                                sys.exc_info())
    assert KafkaThrottle().filter(rec)
    assert rec.exc_info is None
    assert logging.Formatter().format(rec) == ("Error receiving from x: AttributeError: 'NoneType' object has no "
                                               "attribute 'recv'")
