"""Where the activity catalog comes from: `catalog_url` (JSON or CSV over HTTP, through the shared client with
its retries) when set, else the file at `catalog_path`. Parsing and every check live in `reconcile.catalog`."""

from __future__ import annotations

from urllib.parse import urlsplit

from connectors.http import HttpClient
from pipeline.config import Settings
from reconcile.catalog import Catalog, catalog_kind, load_catalog, parse_catalog_text


def fetch_catalog(settings: Settings) -> Catalog:
    if not settings.catalog_url:
        return load_catalog(settings.catalog_path)
    response = HttpClient(settings.catalog_url).request("GET", settings.catalog_url)
    kind = catalog_kind(urlsplit(settings.catalog_url).path, response.headers.get("Content-Type", ""))
    return parse_catalog_text(response.content.decode("utf-8-sig"), kind)
