"""An HTTP file drop: a directory's files listed as JSON and served as bytes, the way a provider's upload
share is read when it is not mounted. Reads the directory on every request, so a test can drop new files.

`GET /files?page_size=&page_token=` → `{"files": [{"name", "url", "size", "sha256"}], "next_page_token"}`
`GET /files/{name}` → the bytes. Optional bearer token.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import quote, unquote

from deploy.sandbox.base import HttpError, Request, Response, SandboxServer, decode_token, encode_token, require_bearer

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


class FileDrop(SandboxServer):
    name = "file-drop"

    def __init__(self, directory: str | Path, token: str | None = None, port: int = 0) -> None:
        super().__init__(port)
        self.directory = Path(directory)
        self.token = token
        self.route("GET", "/files", self._list)
        self.route("GET", "/files/(?P<name>[^/]+)", self._file)

    def _authorise(self, request: Request) -> None:
        if self.token is not None:
            require_bearer(request, self.token)

    def _list(self, request: Request) -> Response:
        self._authorise(request)
        size_text = request.params.get("page_size") or str(DEFAULT_PAGE_SIZE)
        if not size_text.isdigit() or not 1 <= int(size_text) <= MAX_PAGE_SIZE:
            raise HttpError(400, f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}")
        size = int(size_text)
        token = request.params.get("page_token")
        after = ""
        if token:
            after = decode_token(token).get("after", "")
            if not isinstance(after, str):
                raise HttpError(400, "invalid page token")
        names = sorted(p.name for p in self.directory.iterdir() if p.is_file() and p.name > after)
        page, rest = names[:size], names[size:]
        files = []
        for name in page:
            content = (self.directory / name).read_bytes()
            files.append(
                {
                    "name": name,
                    "url": f"/files/{quote(name)}",
                    "size": len(content),
                    "sha256": hashlib.sha256(content).hexdigest(),
                }
            )
        next_token = encode_token({"after": page[-1]}) if rest else ""
        return Response(200, {"files": files, "next_page_token": next_token})

    def _file(self, request: Request) -> Response:
        self._authorise(request)
        name = unquote(request.match["name"])
        path = self.directory / name
        if path.name != name or not path.is_file():
            raise HttpError(404, "no such file")
        return Response(200, path.read_bytes(), content_type="text/csv")
