"""A Prometheus Pushgateway subset, for the nightly run's metrics push (`[metrics] pushgateway`).

PUT /metrics/job/{job}[/{label}/{value}…] replaces the group's metrics, POST adds to them, as the real one
does; a body that is not valid text exposition is refused with 400, as the real one refuses it. What it holds
is kept by grouping key (`groups`) and served back on GET /metrics.
"""

from __future__ import annotations

import threading

from prometheus_client.parser import text_string_to_metric_families

from deploy.sandbox.base import HttpError, Request, Response, SandboxServer

GroupingKey = tuple[tuple[str, str], ...]


class PushgatewaySandbox(SandboxServer):
    name = "pushgateway"

    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self._lock = threading.Lock()
        self.groups: dict[GroupingKey, str] = {}
        self.route("PUT", r"/metrics/job/(?P<rest>.+)", self._push)
        self.route("POST", r"/metrics/job/(?P<rest>.+)", self._push)
        self.route("GET", r"/metrics", self._metrics)

    def _push(self, request: Request) -> Response:
        parts = ["job", *request.match["rest"].strip("/").split("/")]
        if len(parts) % 2:
            raise HttpError(400, "grouping key: a label without a value")
        key = tuple(zip(parts[::2], parts[1::2], strict=True))
        text = request.body.decode("utf-8")
        try:
            list(text_string_to_metric_families(text))
        except ValueError as err:
            raise HttpError(400, f"not valid text exposition: {err}") from None
        with self._lock:
            previous = self.groups.get(key, "") if request.method == "POST" else ""
            self.groups[key] = previous + text
        return Response(200)

    def _metrics(self, _request: Request) -> Response:
        with self._lock:
            body = "".join(self.groups.values())
        return Response(200, body.encode(), content_type="text/plain; version=0.0.4")
