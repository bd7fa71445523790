"""Shared fixtures: paths to the development data, and real servers started on loopback ports."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"development data not found at {DATA} (expected ../shared/data beside the repository)")
    return DATA


@pytest.fixture(scope="session")
def broker():
    """A real Kafka-protocol broker (Tansu) on a free loopback port, stopped by PID at the end."""
    from detector.broker import EmbeddedBroker

    b = EmbeddedBroker().start()
    try:
        yield b
    finally:
        b.stop()


# -- Prometheus, Alertmanager and a webhook receiver, for the alerting tests -------------------------

DEPLOY = REPO / "deploy"


class Webhook:
    """An Alertmanager webhook receiver on loopback; keeps every notification with its arrival time."""

    def __init__(self):
        import json
        import threading
        import time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.notifications: list[tuple[float, dict]] = []  # (time.monotonic() on arrival, body)
        self.cond = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with outer.cond:
                    outer.notifications.append((time.monotonic(), body))
                    outer.cond.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, fmt, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def alerts(self) -> list[tuple[float, dict]]:
        """Every alert of every notification so far, with the notification's arrival time."""
        with self.cond:
            return [(t, a) for t, body in self.notifications for a in body.get("alerts", [])]

    def wait_for(self, predicate, timeout: float):
        """The first (arrival time, alert) matching ``predicate``, or None after ``timeout`` seconds."""
        import time

        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, body in self.notifications:
                    for a in body.get("alerts", []):
                        if predicate(a):
                            return t, a
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class ServerProcess:
    """A server binary on a free loopback port, started with its own data directory, stopped by PID."""

    def __init__(self, name: str, argv: list[str], port: int, log_path: Path, scheme: str = "http",
                 ssl_context=None, headers: dict | None = None):
        import subprocess

        self.name, self.port, self.log_path = name, port, log_path
        self.url = f"{scheme}://127.0.0.1:{port}"
        self.ssl_context, self.headers = ssl_context, headers or {}  # what a client needs to be let in
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _open(self, path: str, timeout: float):
        import urllib.request

        request = urllib.request.Request(self.url + path, headers=self.headers)
        return urllib.request.urlopen(request, timeout=timeout, context=self.ssl_context)

    def wait_ready(self, timeout: float = 30.0) -> "ServerProcess":
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {self.log()}")
            try:
                with self._open("/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready on {self.url} within {timeout:.0f}s: {self.log()}")

    def get_json(self, path: str):
        import json

        with self._open(path, timeout=5) as resp:
            return json.loads(resp.read())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        from detector.broker import terminate

        terminate(self.process)


def _need(binary: str) -> str:
    import shutil

    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} not found: run scripts/setup.sh (Debian packages prometheus, prometheus-alertmanager, "
                    "openssl)")
    return path


@pytest.fixture
def webhook():
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.close()


def _start_alertmanager(directory: Path, webhook, web_config: dict | None = None, **client) -> ServerProcess:
    """The real Alertmanager with the shipped example config, routing to the test's webhook receiver;
    group waits shortened so a test sees notifications within seconds."""
    import yaml

    from detector.broker import free_port

    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook.url
    for route in [config["route"], *config["route"].get("routes", [])]:
        route.update({"group_wait": "1s", "group_interval": "1s"})
    directory.mkdir()
    cfg = directory / "alertmanager.yml"
    cfg.write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [_need("prometheus-alertmanager"), f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
            f"--storage.path={directory / 'data'}", f"--config.file={cfg}"]
    if web_config:
        (directory / "web.yml").write_text(yaml.safe_dump(web_config))
        argv.append(f"--web.config.file={directory / 'web.yml'}")
    return ServerProcess("alertmanager", argv, port, directory / "log.txt", **client)


@pytest.fixture
def alertmanager(tmp_path, webhook):
    server = _start_alertmanager(tmp_path / "alertmanager", webhook)
    try:
        yield server.wait_ready()
    finally:
        server.stop()


# bcrypt of SECURED_PASSWORD, as Alertmanager's web config wants it (cost 4: a test needs no more).
SECURED_USER, SECURED_PASSWORD = "pager", "pager-s3cret"
SECURED_HASH = "$2b$04$g6SUuNOBPVXfrRsA8.2FZuATSJGkH38c1KMW6CY9.ysLGN5dFAPne"


@pytest.fixture
def secured_alertmanager(tmp_path, webhook):
    """The real Alertmanager as production runs it: HTTPS with a certificate of the test's own CA
    (``server.ca_file``), and basic auth (SECURED_USER / SECURED_PASSWORD)."""
    import base64
    import ssl
    import subprocess

    tls = tmp_path / "tls"
    tls.mkdir()
    cert, key = tls / "cert.pem", tls / "key.pem"
    subprocess.run([_need("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    auth = base64.b64encode(f"{SECURED_USER}:{SECURED_PASSWORD}".encode()).decode()
    server = _start_alertmanager(
        tmp_path / "alertmanager", webhook,
        web_config={"tls_server_config": {"cert_file": str(cert), "key_file": str(key)},
                    "basic_auth_users": {SECURED_USER: SECURED_HASH}},
        scheme="https", ssl_context=ssl.create_default_context(cafile=str(cert)),
        headers={"Authorization": f"Basic {auth}"})
    server.ca_file = cert
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.fixture
def start_prometheus(tmp_path):
    """Start the real Prometheus with the shipped rules, scraping ``targets`` (host:port) every second
    and alerting ``alertmanager_url``; every one started is stopped at the end of the test."""
    import yaml

    from detector.broker import free_port

    started: list[ServerProcess] = []

    def start(targets: list[str], alertmanager_url: str | None = None) -> ServerProcess:
        directory = tmp_path / f"prometheus-{len(started)}"
        directory.mkdir()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(DEPLOY / "prometheus" / "rules.yml")],
            "scrape_configs": [{"job_name": "outage-detector", "static_configs": [{"targets": targets}]}],
        }
        if alertmanager_url:
            host = alertmanager_url.split("://", 1)[1]
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [host]}]}]}
        cfg = directory / "prometheus.yml"
        cfg.write_text(yaml.safe_dump(config))
        port = free_port()
        server = ServerProcess("prometheus", [
            _need("prometheus"), f"--web.listen-address=127.0.0.1:{port}", f"--storage.tsdb.path={directory / 'data'}",
            f"--config.file={cfg}",
        ], port, directory / "log.txt")
        started.append(server)
        return server.wait_ready()

    try:
        yield start
    finally:
        for server in started:
            server.stop()
