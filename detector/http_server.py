"""The service's HTTP endpoints: /metrics, /healthz, /readyz and /templates.

A small threading server instead of ``prometheus_client.start_http_server`` because the service
needs its own health, readiness and template endpoints beside the metrics, on one port. Without a
registry (``sinks.prometheus.enabled: false``) it serves all but /metrics.
"""

from __future__ import annotations

import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from detector.errors import ConfigError

log = logging.getLogger(__name__)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # A client gone before its answer is written (a scrape or probe that timed out) is routine,
        # not a crash: one debug line, not socketserver's traceback on stderr.
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):
            log.debug("client %s:%s went away: %s", *client_address[:2], exc)
        else:
            log.exception("request from %s:%s failed", *client_address[:2])


def bind(host: str, port: int, handler=BaseHTTPRequestHandler,
         setting: str = "sinks.prometheus.port") -> ThreadingHTTPServer:
    """The server socket, or an error naming the address (the OS's own names none) and the setting."""
    try:
        return _Server((host, port), handler)
    except OSError as exc:
        raise ConfigError(f"cannot serve /metrics on {host}:{port}: {exc.strerror or exc}; choose a free port "
                          f"with {setting} (0 picks one)") from None


def check_free(host: str, port: int, setting: str) -> None:
    """Fail now, naming the address, if the port is taken: before a command starts what it would
    otherwise start for nothing."""
    bind(host, port, setting=setting).server_close()


class StatusServer:
    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry | None,
        healthy: Callable[[], bool],
        ready: Callable[[], bool],
        templates: Callable[[], list[dict]],
    ):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 30  # seconds a client may sit idle: idle connections must not pile up threads

            TEXT = "text/plain; charset=utf-8"

            def do_GET(self):  # noqa: N802 (http.server's naming)
                self._respond(with_body=True)

            def do_HEAD(self):  # noqa: N802
                self._respond(with_body=False)

            def _respond(self, with_body: bool) -> None:
                try:
                    code, body, ctype = self._answer(self.path.split("?", 1)[0])
                except Exception:  # a failing endpoint answers 500; the server and the others go on
                    log.exception("%s %s failed", self.command, self.path)
                    code, body, ctype = 500, b"internal error; see the service log\n", self.TEXT
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def _answer(self, path: str) -> tuple[int, bytes, str]:
                if path == "/metrics":
                    if outer.registry is None:  # sinks.prometheus.enabled: false; the probes stay served
                        return 404, b"/metrics is off (sinks.prometheus.enabled: false)\n", self.TEXT
                    return 200, generate_latest(outer.registry), CONTENT_TYPE_LATEST
                if path == "/healthz":
                    ok = outer.healthy()
                    return (200, b"ok\n", self.TEXT) if ok else (503, b"processing loop stalled\n", self.TEXT)
                if path == "/readyz":
                    ok = outer.ready()
                    return (200, b"ready\n", self.TEXT) if ok else (503, b"not ready\n", self.TEXT)
                if path == "/templates":
                    return 200, orjson.dumps(outer.templates()), "application/json"
                return 404, b"not found; try /metrics, /healthz, /readyz or /templates\n", self.TEXT

            def log_message(self, fmt, *args):  # scrapes every few seconds would flood the log
                pass

        self.registry = registry
        self.healthy = healthy
        self.ready = ready
        self.templates = templates
        self.httpd = bind(host, port, Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="status-http", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "StatusServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
