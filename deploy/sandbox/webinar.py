"""A Zoom-style webinar report API: past instances, participant reports paged by `next_page_token`, registrants.

Modelled where the connector depends on it (credit-rules.md, "Source quirks"): one participant row per
join/leave (a learner who drops out and rejoins has several rows, possibly on different pages); a
`duration` whose unit is not what a reader would guess (seconds here); `user_email` empty for guests;
page tokens that expire (`token_ttl_s`, ~15 minutes at Zoom) and are then refused with 400; a report that
is not available yet (404) until the sandbox marks it ready. Bearer-token auth. Rows are served exactly
as loaded, malformed ones included, and a report can be switched to a truncated (non-JSON) body.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self
from urllib.parse import unquote

from deploy.sandbox.base import (
    HttpError,
    Request,
    Response,
    SandboxServer,
    decode_token,
    encode_token,
    require_bearer,
)

DEFAULT_PAGE_SIZE = 30
MAX_PAGE_SIZE = 300

Webinar = dict[str, Any]


def _page_size(request: Request) -> int:
    text = request.params.get("page_size", "")
    if text == "":
        return DEFAULT_PAGE_SIZE
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise HttpError(400, f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}")
    return int(text)


class WebinarReports(SandboxServer):
    """Webinars (id, registrants, instances with participant rows) held in memory behind a bearer token."""

    name = "webinar"

    def __init__(
        self,
        webinars: list[Webinar] | None = None,
        token: str = "webinar-demo-token",
        token_ttl_s: float = 900.0,
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(port)
        self.token = token
        self.token_ttl_s = token_ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._webinars: dict[str, Webinar] = {}
        self._instances: dict[str, dict[str, Any]] = {}
        self._truncated: set[str] = set()
        for webinar in webinars or ():
            self.add_webinar(webinar)
        self.route("GET", r"/v2/past_webinars/(?P<webinar_id>[^/]+)/instances", self._get_instances)
        self.route("GET", r"/v2/report/webinars/(?P<instance>[^/]+)/participants", self._get_participants)
        self.route("GET", r"/v2/webinars/(?P<webinar_id>[^/]+)/registrants", self._get_registrants)

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> Self:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("webinars"), list):
            raise ValueError(f"{path}: expected an object with a 'webinars' list")
        return cls(data["webinars"], **kwargs)

    def add_webinar(self, webinar: Webinar) -> None:
        with self._lock:
            held = {**copy.deepcopy(webinar), "instances": []}
            self._webinars[str(webinar["id"])] = held
        for instance in webinar.get("instances", ()):
            self.add_instance(str(webinar["id"]), instance)

    def add_instance(self, webinar_id: str, instance: dict[str, Any]) -> None:
        """A new ended instance of a webinar; its report is available unless `ready` is false."""
        with self._lock:
            held = copy.deepcopy(instance)
            held.setdefault("ready", True)
            self._webinars[webinar_id]["instances"].append(held)
            self._instances[held["uuid"]] = held

    def add_participants(self, instance_uuid: str, rows: list[Any]) -> None:
        with self._lock:
            self._instances[instance_uuid].setdefault("participants", []).extend(copy.deepcopy(rows))

    def set_ready(self, instance_uuid: str, ready: bool = True) -> None:
        with self._lock:
            self._instances[instance_uuid]["ready"] = ready

    def truncate_report(self, instance_uuid: str, truncated: bool = True) -> None:
        """Serve this instance's report pages as cut-off JSON (a proxy or server fault that is not transient)."""
        with self._lock:
            (self._truncated.add if truncated else self._truncated.discard)(instance_uuid)

    def participant_rows(self) -> int:
        with self._lock:
            return sum(len(i.get("participants", ())) for i in self._instances.values())

    # -- HTTP -----------------------------------------------------------------------------------------------

    def _get_instances(self, request: Request) -> Response:
        require_bearer(request, self.token)
        with self._lock:
            webinar = self._webinars.get(request.match["webinar_id"])
            if webinar is None:
                raise HttpError(404, "webinar does not exist")
            listed = [{"uuid": i["uuid"], "start_time": i.get("start_time")} for i in webinar["instances"]]
        return Response(200, {"webinars": listed})

    def _get_participants(self, request: Request) -> Response:
        require_bearer(request, self.token)
        instance_uuid = unquote(unquote(request.match["instance"]))  # clients encode some UUIDs twice
        token = request.params.get("next_page_token", "")
        offset, size = self._position(token, instance_uuid) if token else (0, _page_size(request))
        with self._lock:
            instance = self._instances.get(instance_uuid)
            if instance is None or not instance["ready"]:
                raise HttpError(404, "report is not available for this webinar instance yet")
            rows = instance.get("participants", [])
            page = copy.deepcopy(rows[offset : offset + size])
            more = offset + size < len(rows)
            truncated = instance_uuid in self._truncated
        next_token = self._token(instance_uuid, offset + size, size) if more else ""
        body = {
            "page_size": size,
            "total_records": len(rows),
            "next_page_token": next_token,
            "participants": page,
        }
        if truncated:
            return Response(200, json.dumps(body).encode()[:-20])
        return Response(200, body)

    def _get_registrants(self, request: Request) -> Response:
        require_bearer(request, self.token)
        token = request.params.get("next_page_token", "")
        webinar_id = request.match["webinar_id"]
        offset, size = self._position(token, webinar_id) if token else (0, _page_size(request))
        with self._lock:
            webinar = self._webinars.get(webinar_id)
            if webinar is None:
                raise HttpError(404, "webinar does not exist")
            registrants = webinar.get("registrants", [])
            page = copy.deepcopy(registrants[offset : offset + size])
            more = offset + size < len(registrants)
        next_token = self._token(webinar_id, offset + size, size) if more else ""
        return Response(200, {"page_size": size, "next_page_token": next_token, "registrants": page})

    def _token(self, scope: str, offset: int, size: int) -> str:
        return encode_token({"scope": scope, "offset": offset, "size": size, "issued": self._clock()})

    def _position(self, token: str, scope: str) -> tuple[int, int]:
        state = decode_token(token)
        try:
            valid = state["scope"] == scope and isinstance(state["offset"], int) and isinstance(state["size"], int)
            fresh = self._clock() - float(state["issued"]) <= self.token_ttl_s
        except (KeyError, TypeError, ValueError):
            valid, fresh = False, False
        if not valid or not fresh:
            raise HttpError(400, "the next page token is invalid or expired")
        return state["offset"], state["size"]
