"""`cmesync`: the operator's command line (DESIGN §8)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pipeline.config import ConfigError, Settings
from pipeline.summary import LABELS

EMBEDDED_LEDGER = Path("var/embedded.db")

console = Console(stderr=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cmesync",
        description="Keep CME credits in sync between learning sources and credit registries.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  cmesync run --embedded        # sample data, embedded broker, sandboxes\n"
        "  cmesync run --config prod.toml # against the configured broker, sources and registries",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="run the nightly reconciliation once, now",
        description="Pull new attendance from every source, reconcile it into the ledger, publish the credit "
        "stream and deliver to the registries; print what was done.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="With --embedded, endpoints left empty in the config are served by an embedded Kafka broker and "
        f"local sandboxes, and the ledger is a fresh {EMBEDDED_LEDGER} (the embedded broker and sandboxes "
        "keep nothing between runs, so neither does the ledger).",
    )
    run.add_argument("--config", type=Path, help="config file (default: ./cmesync.toml, else the embedded sample)")
    run.add_argument("--embedded", action="store_true", help="start the embedded broker and sandboxes for this run")
    run.add_argument("--json", action="store_true", help="print the counts as JSON on stdout")
    return parser


def _print_summary(counts: dict[str, int], as_json: bool) -> None:
    if as_json:
        print(json.dumps(counts, indent=2))
        return
    table = Table(title="nightly reconciliation")
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in counts.items():
        table.add_row(LABELS[key], str(value))
    Console().print(table)


def _run(args: argparse.Namespace) -> int:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from flows.nightly import nightly_reconciliation

    config_path = str(args.config) if args.config else None
    if not args.embedded:
        counts = nightly_reconciliation(config_path=config_path)
        _print_summary(counts, args.json)
        return 0
    from deploy.embedded import EmbeddedStack

    settings = Settings.load(args.config)
    EMBEDDED_LEDGER.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{EMBEDDED_LEDGER}{suffix}").unlink(missing_ok=True)
    os.environ["CMESYNC_LEDGER_URL"] = f"sqlite:///{EMBEDDED_LEDGER}"
    console.print("[bold]starting[/] embedded broker and sandboxes")
    with EmbeddedStack() as stack:
        endpoints = stack.endpoints(settings)
        console.print(f"broker {endpoints['kafka_bootstrap']}, schema registry {endpoints['schema_registry_url']}")
        counts = nightly_reconciliation(config_path=config_path, endpoints=endpoints)
        assert stack.sandboxes is not None
        holdings = len(stack.sandboxes.ama.holdings())
    _print_summary(counts, args.json)
    console.print(f"AMA PRA sandbox registry now holds {holdings} credit records; ledger: {EMBEDDED_LEDGER}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
    except ConfigError as err:
        console.print(f"[red]configuration error:[/] {err}")
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
