"""`cmesync export`: the file channels (`pipeline.ops.export`), kept apart from `flows/cli.py`, which declares
the command and its options. The file holds names and licences (that is its purpose); stdout and the logs get
the path and counts only."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.markup import escape

from pipeline.config import ConfigError, Settings
from pipeline.ops.export import ExportError, FileFormat

console = Console(stderr=True)

Channel = Literal["cebroker", "pars"]
KINDS: dict[Channel, str] = {"pars": "ama_pra", "cebroker": "cebroker"}
HELP = (
    "Write the pending deliveries of a PARS (ama_pra) or CE Broker registry as the learner or roster file an "
    'office uploads by hand, xlsx or tab-delimited, in the column layout of README "File channels": exactly '
    "the records the next delivery pass would send, built by the connector's own mapping. They are then "
    "recorded sent with the receipt `export:<file name>`, so no API delivery sends them again (--dry-run: "
    "the file only). --registry names the registry when the configuration has several of that kind.\n"
    "Exit code 0: file written; 1: nothing pending to export (no file); 2: unknown registry or activity, bad "
    "arguments or configuration, or FILE cannot be written."
)


def run(
    settings: Settings,
    channel: Channel,
    activity: str | None,
    file_format: FileFormat,
    out: Path,
    registry: str | None,
    dry_run: bool,
    as_json: bool,
) -> int:
    """Exit code per HELP."""
    try:
        return _export(settings, channel, activity, file_format, out, registry, dry_run, as_json)
    except ExportError as err:
        console.print(f"[red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
        return 2


def _export(
    settings: Settings,
    channel: Channel,
    activity_ref: str | None,
    file_format: FileFormat,
    out: Path,
    registry_name: str | None,
    dry_run: bool,
    as_json: bool,
) -> int:
    from ledger.run_lock import run_lock
    from ledger.store import Ledger
    from pipeline.factory import build_registry
    from pipeline.ops.export import export_pending

    kind = KINDS[channel]
    configs = [c for c in settings.registries if c.kind == kind and registry_name in (None, c.name)]
    if not configs:
        named = f" named {registry_name}" if registry_name else ""
        raise ExportError(f"no {kind} registry{named} in the configuration")
    if len(configs) > 1:
        raise ExportError(f"{len(configs)} {kind} registries configured: name one with --registry")
    activity = _activity(settings, activity_ref)
    registry = build_registry(configs[0])
    with Ledger(settings.ledger_url) as ledger:
        try:
            with run_lock(settings.ledger_url, f"cli-{uuid.uuid4()}", "export"):
                exported = export_pending(ledger, registry, out, file_format, activity, dry_run)
        except OSError as err:
            raise ExportError(f"--out {out}: {err.strerror}") from None
    result = {
        "registry": registry.name,
        "file": str(exported.path) if exported else None,
        "records": exported.records if exported else 0,
        "rows": exported.rows if exported else 0,
        "marked_sent": bool(exported) and not dry_run,
    }
    if as_json:
        print(json.dumps(result))
    elif exported is not None:
        print(exported.path)
    if exported is None:
        console.print(f"nothing to export: no pending deliveries to {registry.name}", highlight=False)
        return 1
    marked = "nothing marked (dry run)" if dry_run else "marked sent"
    console.print(f"{exported.records} record(s), {exported.rows} row(s) for {registry.name}; {marked}")
    return 0


def _activity(settings: Settings, ref: str | None) -> str | None:
    """The catalog id of the activity asked for (any of its refs will do)."""
    if ref is None:
        return None
    from pipeline.catalog import fetch_catalog
    from reconcile.catalog import CatalogError

    try:
        found = fetch_catalog(settings).resolve(ref)
    except CatalogError as err:
        raise ConfigError(str(err)) from None
    if found is None:
        raise ExportError(f"unknown activity {ref}: not in the catalog")
    return found.activity_id
