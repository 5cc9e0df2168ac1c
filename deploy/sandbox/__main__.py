"""Run the sandbox stack until Ctrl-C or SIGTERM: `python -m deploy.sandbox [--statements PATH]`."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path

from deploy.sandbox.base import Faults
from deploy.sandbox.stack import DEFAULT_STATEMENTS, SandboxStack


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.sandbox",
        description=(
            "Start stand-ins for the systems cme-credit-sync talks to (an xAPI LRS, a webinar report API, "
            "a CSV file drop, a provider REST API, the AMA PRA-style registry, CE Broker, an employer HR endpoint "
            "and a Confluent-compatible Schema Registry) on 127.0.0.1, print their URLs and demo credentials, and "
            "serve until Ctrl-C or SIGTERM. State is kept in memory only."
        ),
    )
    parser.add_argument(
        "--statements",
        type=Path,
        default=DEFAULT_STATEMENTS,
        metavar="PATH",
        help="JSON array of xAPI statements the LRS serves, as-is (default: the bundled sample, %(default)s)",
    )
    for option, sandbox in (("lrs", "xAPI LRS"), ("ama", "AMA PRA registry"), ("schema-registry", "Schema Registry")):
        parser.add_argument(
            f"--{option}-port", type=int, default=0, metavar="PORT", help=f"{sandbox} port (default: free)"
        )
    parser.add_argument(
        "--registry-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="the AMA PRA registry answers every request this much later: a slow registry (default 0)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON line {connector kind or 'schema_registry': URL} instead of the banner (for scripts)",
    )
    return parser


def describe(stack: SandboxStack) -> str:
    lrs, ama = stack.lrs, stack.ama
    return "\n".join(
        [
            "cme-credit-sync sandboxes (Ctrl-C to stop)",
            f"  xAPI LRS          {lrs.url}/xapi/statements  Basic {lrs.username}:{lrs.password}"
            f"  ({lrs.statement_count()} statements from {stack.statements_path})",
            f"  AMA PRA registry  {ama.url}/v1  Bearer {ama.token}",
            *(
                f"  {kind:<17} {server.url}"
                for kind, server in stack.by_kind().items()
                if kind not in ("xapi", "ama_pra")
            ),
            f"  Schema Registry   {stack.schema_registry.url}",
            "  (credentials of the other sandboxes: deploy/sample/cmesync.toml)",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    stack = SandboxStack(
        args.statements, lrs_port=args.lrs_port, ama_port=args.ama_port, schema_registry_port=args.schema_registry_port
    )
    if args.registry_delay > 0:
        stack.ama.faults = Faults(slow=1.0, slow_s=args.registry_delay)
    with stack:
        print(json.dumps(stack.urls()) if args.json else describe(stack), flush=True)
        stopping.wait()
    print("sandboxes stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
