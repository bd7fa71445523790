"""The status endpoints answer HEAD as GET without a body, and a failing endpoint answers 500
without taking the others down."""

from __future__ import annotations

import http.client

from prometheus_client import CollectorRegistry, Counter

from detector.broker import free_port
from detector.http_server import StatusServer


def request(port: int, method: str, path: str) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_head_is_get_without_a_body_and_a_failing_endpoint_answers_500():
    registry = CollectorRegistry()
    Counter("things", "Things.", registry=registry).inc()

    def broken():
        raise RuntimeError("templates unavailable")

    port = free_port()
    server = StatusServer("127.0.0.1", port, registry, healthy=lambda: True, ready=lambda: False,
                          templates=broken).start()
    try:
        code, headers, body = request(port, "GET", "/metrics")
        assert code == 200 and b"things_total 1.0" in body
        code, head_headers, head_body = request(port, "HEAD", "/metrics")
        assert code == 200 and head_body == b"" and head_headers["Content-Length"] == headers["Content-Length"]
        assert request(port, "HEAD", "/readyz")[0] == 503
        code, _, body = request(port, "GET", "/templates")
        assert code == 500 and b"internal error" in body
        assert request(port, "GET", "/healthz")[:1] == (200,)  # the server goes on answering
    finally:
        server.stop()


def test_a_port_in_use_is_an_error_naming_the_address_and_the_setting():
    import socket

    import pytest

    from detector.errors import ConfigError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"cannot serve /metrics on 127\.0\.0\.1:{port}: Address already in "
                                              r"use; choose a free port with sinks\.prometheus\.port \(0 picks one\)"):
            StatusServer("127.0.0.1", port, CollectorRegistry(), healthy=lambda: True, ready=lambda: True,
                         templates=list)


def test_a_client_that_hangs_up_before_its_answer_costs_no_traceback(capfd):
    import socket
    import struct
    import time

    registry = CollectorRegistry()
    Counter("things", "Things.", registry=registry).inc()
    port = free_port()
    server = StatusServer("127.0.0.1", port, registry, healthy=lambda: True, ready=lambda: True,
                          templates=list).start()
    try:
        for _ in range(5):  # a scrape or probe that timed out: the connection is reset, not closed
            s = socket.create_connection(("127.0.0.1", port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            s.close()
        time.sleep(0.5)
        assert request(port, "GET", "/healthz")[0] == 200
    finally:
        server.stop()
    assert "Traceback" not in capfd.readouterr().err


def test_without_a_registry_only_metrics_is_off_and_the_probes_still_answer():
    # sinks.prometheus.enabled: false: the Kubernetes probes point at /healthz and /readyz all the same.
    port = free_port()
    server = StatusServer("127.0.0.1", port, None, healthy=lambda: True, ready=lambda: True, templates=list).start()
    try:
        code, _, body = request(port, "GET", "/metrics")
        assert code == 404 and b"sinks.prometheus.enabled: false" in body
        assert [request(port, "GET", path)[0] for path in ("/healthz", "/readyz", "/templates")] == [200, 200, 200]
    finally:
        server.stop()
