"""`cmesync`: the operator's command line (DESIGN §8).

Exit codes, for scripts: 0 done (everything delivered / resolved / reachable), 1 done but something still
failed, or a component (ledger, broker, registry) is down, 2 bad arguments or configuration. How a run's
outcome maps to them is `pipeline/outcome.py`. `--json` prints machine-readable output on stdout; progress and
messages go to stderr. Every failure ends as one line on stderr (`main`), never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import re
import sys
import textwrap
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from flows import cli_broker, cli_certificates, cli_export
from flows.log_format import LogLines, console_to_log, use_json_logs
from flows.prefect_env import quiet_prefect
from ledger.ops import set_dead_letters_resolved
from ledger.queries import (
    DeadLetterFilter,
    DeadLetterNotFound,
    DeadLetterRow,
    DeliverySelection,
    count_dead_letters,
    dead_letter,
    dead_letter_payload,
    dead_letter_reason_codes,
    dead_letters,
)
from ledger.run_lock import RunLocked, run_lock
from ledger.store import Ledger
from pipeline.config import ConfigError, Settings
from pipeline.ops.preflight import ComponentDown, preflight_ledger, preflight_run
from reconcile.vocabulary import DeliveryState

# The demo's ledger is the one the default configuration reads, so `cmesync status` after `make demo` sees it.
EMBEDDED_LEDGER = Path("var/cmesync.db")
NEXT_COMMANDS = (
    ".venv/bin/cmesync status",
    ".venv/bin/cmesync deadletters list --unresolved",
    ".venv/bin/cmesync replay --dry-run",
)
# What the sandbox registries hold after a demo night, so the next night's diff finds it (`--fresh` forgets it).
EMBEDDED_REGISTRIES = Path("var/demo-registries.pickle")
CONFLICTING_FLAGS = "--json prints JSON; drop it or --format"
STAGES = ("normalise", "reconcile", "deliver")
TRANSCRIPT_FORMATS = ("table", "json", "html", "csv")
TABLE_FORMATS = ("plain", "tsv", "json")
T = TypeVar("T")

console = Console(stderr=True)


class UsageError(ValueError):
    """The command line asks for something impossible; exit code 2."""


# -- argument types ----------------------------------------------------------------------------------------------

_RELATIVE = re.compile(r"^(\d+)([mhd])$")


def moment(text: str) -> datetime:
    """An instant: ISO 8601 (`2026-11-20`, `2026-11-20T06:00`, with or without offset; naive = UTC) or a time
    ago (`90m`, `12h`, `3d`)."""
    if match := _RELATIVE.match(text.strip()):
        unit = {"m": "minutes", "h": "hours", "d": "days"}[match[2]]
        return datetime.now(UTC) - timedelta(**{unit: int(match[1])})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(text), datetime.min.time())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not a time: {text!r} (use 2026-11-20, 2026-11-20T06:00Z or 12h)"
            ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def day(text: str) -> date:
    """A calendar date, ISO 8601 (`2026-11-20`)."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (use 2026-11-20)") from None


# -- the parser --------------------------------------------------------------------------------------------------


def _command(
    commands: Any, name: str, summary: str, description: str, examples: str, parents: list[argparse.ArgumentParser]
) -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        help=summary,
        description="\n".join(textwrap.fill(paragraph, 100) for paragraph in description.split("\n")),
        epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=parents,
    )


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, help="config file (default: $CMESYNC_CONFIG, else ./cmesync.toml, else the sample)"
    )
    common.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    common.add_argument(
        "--log-format", choices=("text", "json"), help="stderr as text or one JSON object per line (default: config)"
    )
    return common


def _table_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=TABLE_FORMATS,
        help="plain (default): tables for 80 columns, ids as unique prefixes; tsv: full values for scripts; "
        "json: as --json",
    )
    # The default is applied in main() so that an explicit --format can be told from the default.
    parser.set_defaults(format_default="plain")


def _dead_letter_filters(parser: argparse.ArgumentParser) -> None:
    filters = parser.add_argument_group("filters (repeatable options match any of their values)")
    filters.add_argument("--stage", action="append", default=[], choices=STAGES, help="pipeline stage")
    filters.add_argument("--reason-code", action="append", default=[], metavar="CODE", help="e.g. UNKNOWN_ACTIVITY")
    filters.add_argument("--source", action="append", default=[], metavar="NAME", help="connector instance name")
    filters.add_argument("--registry", action="append", default=[], metavar="NAME", help="registry (deliver stage)")
    filters.add_argument("--since", type=moment, metavar="TIME", help="last seen at or after TIME (e.g. 12h)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cmesync",
        description="Keep CME credits in sync between learning sources and credit registries.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  cmesync run --embedded              # sample data, embedded broker, sandboxes\n"
        "  cmesync status                      # the morning after: runs, lag, backlog, dead letters\n"
        "  cmesync deadletters list --unresolved\n"
        "  cmesync replay --registry ama-pra --dry-run\n"
        "  cmesync config check --config prod.toml\n"
        "  cmesync serve                       # nightly, replay and stream deployments of deploy/prefect.yaml\n"
        "exit codes: 0 done, 1 done but something still failed (or a component is down), 2 bad arguments or "
        "configuration",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common()

    run = _command(
        commands,
        "run",
        "run the nightly reconciliation once, now",
        "Pull new attendance from every source, reconcile it into the ledger, publish the credit stream and "
        "deliver to the registries; print what was done.\n\nWith --embedded, endpoints left empty in the config "
        f"are served by an embedded Kafka broker and local sandboxes, and the ledger is {EMBEDDED_LEDGER} (the one "
        "the default configuration reads, so `cmesync status` works after it); --fresh starts it over.\n"
        "Exit code 0: the run succeeded; 1: a delivery failed, a registry was unavailable or the run stopped "
        "(the Prefect flow run ends Failed); 2: bad configuration, found before Prefect starts.",
        "  cmesync run --embedded\n  cmesync run --embedded --fresh\n  cmesync run --config prod.toml --json",
        [common],
    )
    run.add_argument("--embedded", action="store_true", help="start the embedded broker and sandboxes for this run")
    run.add_argument(
        "--fresh", action="store_true", help="with --embedded: forget the ledger and the sandbox registries first"
    )
    run.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="log level of our loggers, the flow's and every library's in this process (stderr), never Prefect's "
        "temporary server's; default: Prefect's settings",
    )

    replay = _command(
        commands,
        "replay",
        "re-deliver failed (or selected) credits to the registries",
        "Select deliveries — every failed one by default; with --record-id, those records' current deliveries "
        "whatever their state — narrow them with the filters, put them back in the queue and deliver them. "
        "Idempotent: registries key on record_id:version, so a record they already hold is never added twice. "
        "Dead letters of deliveries that go through are marked resolved.\n"
        "Exit code 0: all delivered (or nothing matched); 1: some failed again; 2: bad arguments.",
        "  cmesync replay --dry-run\n"
        "  cmesync replay --registry ama-pra --since 12h\n"
        "  cmesync replay --reason-code REGISTRY_UNAVAILABLE --until 2026-11-23T06:00Z\n"
        "  cmesync replay --record-id 0b8f…e1 --record-id 5c21…9a --json",
        [common],
    )
    replay.add_argument("--registry", action="append", default=[], metavar="NAME", help="only this registry")
    replay.add_argument("--since", type=moment, metavar="TIME", help="delivery last updated at or after TIME")
    replay.add_argument("--until", type=moment, metavar="TIME", help="delivery last updated before TIME")
    replay.add_argument("--record-id", action="append", default=[], metavar="ID", help="this credit record")
    replay.add_argument("--reason-code", action="append", default=[], metavar="CODE", help="dead letter reason code")
    replay.add_argument("--learner", action="append", default=[], metavar="LEARNER_ID", help="ledger learner id")
    replay.add_argument("--dry-run", action="store_true", help="print what would be sent; send nothing")
    _table_format(replay)

    deadletters = commands.add_parser(
        "deadletters",
        help="list, show, retry or resolve dead letters",
        description="Records that could not go on: where they came from, why, and what to do with them.",
        epilog="examples:\n  cmesync deadletters list --unresolved\n  cmesync deadletters show 3f2a9c1e\n"
        "  cmesync deadletters retry --stage reconcile --reason-code UNKNOWN_ACTIVITY\n"
        "  cmesync deadletters resolve 3f2a9c1e",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = deadletters.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = _command(
        actions,
        "list",
        "list dead letters, newest first",
        "List dead letters with their reason code and source position (never their payload).",
        "  cmesync deadletters list --unresolved\n"
        "  cmesync deadletters list --stage deliver --registry ama-pra --since 1d\n"
        "  cmesync deadletters list --reason-code SCHEMA_INVALID --json",
        [common],
    )
    _dead_letter_filters(listing)
    listing.add_argument("--unresolved", action="store_true", help="only dead letters not resolved yet")
    listing.add_argument("--limit", type=int, default=200, help="at most this many (default %(default)s)")
    _table_format(listing)
    show = _command(
        actions,
        "show",
        "show one dead letter",
        "Show a dead letter: stage, reason, source position, attempts. The payload is the original record and "
        "can hold PII: it is printed only with --reveal.",
        "  cmesync deadletters show 3f2a9c1e\n  cmesync deadletters show 3f2a9c1e --reveal",
        [common],
    )
    show.add_argument("id", help="dead letter id or a unique prefix of it")
    show.add_argument("--reveal", action="store_true", help="also print the payload (may contain PII)")
    retry = _command(
        actions,
        "retry",
        "retry dead letters through the pipeline",
        "Retry unresolved dead letters by the route their stage allows: normalise — the stored source record "
        "through its connector again; reconcile — the original message back onto cme.attendance.v1 (after a "
        "catalog fix, say), then reconcile, publish and deliver; deliver — a replay. Dead letters that go "
        "through are marked resolved.\nExit code 0: all resolved; 1: some still fail; 2: bad arguments.",
        "  cmesync deadletters retry 3f2a9c1e\n"
        "  cmesync deadletters retry --stage reconcile --reason-code UNKNOWN_ACTIVITY\n"
        "  cmesync deadletters retry --stage deliver --registry ama-pra",
        [common],
    )
    retry.add_argument("ids", nargs="*", metavar="ID", help="dead letter ids or unique prefixes")
    retry.add_argument(
        "--dry-run", action="store_true", help="list the dead letters a retry would take; change nothing"
    )
    _dead_letter_filters(retry)
    resolve = _command(
        actions,
        "resolve",
        "mark dead letters resolved by hand",
        "Mark dead letters resolved without retrying them (dealt with outside cmesync, or not worth retrying).",
        "  cmesync deadletters resolve 3f2a9c1e 77b0d2aa\n"
        "  cmesync deadletters resolve --stage normalise --reason-code UNSUPPORTED_VERB",
        [common],
    )
    resolve.add_argument("ids", nargs="*", metavar="ID", help="dead letter ids or unique prefixes")
    resolve.add_argument(
        "--dry-run", action="store_true", help="list the dead letters it would resolve; change nothing"
    )
    _dead_letter_filters(resolve)

    status = _command(
        commands,
        "status",
        "last runs, consumer lag, delivery backlog, oldest dead letter",
        "What to look at first after a night: the last runs with counts and durations, how far the reconciler "
        "group is behind on Kafka, pending/failed deliveries per registry, and unresolved dead letters.",
        "  cmesync status\n  cmesync status --runs 10 --json",
        [common],
    )
    status.add_argument("--runs", type=int, default=5, help="how many recent runs (default %(default)s)")
    _table_format(status)

    config = commands.add_parser(
        "config",
        help="check the configuration",
        description="Work with the configuration file.",
        epilog="examples:\n  cmesync config check\n  cmesync config check --config prod.toml --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config_actions = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    _command(
        config_actions,
        "check",
        "validate the config and reach every configured part",
        "Validate the config file (and CMESYNC_* environment), then check the ledger, the catalog, the broker, "
        "the schema registry and every connector (its check(): reachable, credentials accepted). Empty "
        "endpoints are reported as skipped (only `run --embedded` fills them).\n"
        "Exit code 0: everything reachable; 1: something failed; 2: the config itself is invalid.",
        "  cmesync config check\n  CMESYNC_KAFKA_BOOTSTRAP=kafka:9092 cmesync config check --config prod.toml",
        [common],
    )

    serve = _command(
        commands,
        "serve",
        "serve the Prefect deployments (nightly, replay, stream) in this process",
        "Serve the deployments of deploy/prefect.yaml with Prefect's `serve`: schedules fire and on-demand runs "
        "execute in this process, without a work pool or worker. Needs a Prefect API (PREFECT_API_URL) that "
        "keeps schedules and history; without one it refuses, unless --temporary-server asks for a throwaway "
        "server that forgets everything on exit. --config is passed to the served flows (as CMESYNC_CONFIG). "
        "Stop with Ctrl-C or SIGTERM.",
        "  PREFECT_API_URL=http://127.0.0.1:4200/api cmesync serve --config prod.toml\n"
        "  cmesync serve --only nightly --only replay --temporary-server",
        [common],
    )
    serve.add_argument(
        "--temporary-server", action="store_true", help="without PREFECT_API_URL: a throwaway Prefect server"
    )
    serve.add_argument("--prefect-file", type=Path, help="deployments file (default: deploy/prefect.yaml)")
    serve.add_argument("--only", action="append", default=[], metavar="NAME", help="serve only this deployment")

    stream = _command(
        commands,
        "stream",
        "consume cme.attendance.v1 continuously until SIGTERM",
        "Run the stream flow in the foreground: reconcile events as they arrive, publish and deliver the "
        "credits. On SIGTERM or Ctrl-C it finishes and commits the batch in hand, delivers what it produced, "
        "prints the counts and exits 0. With `[metrics] port` set it serves Prometheus metrics on /metrics.",
        "  cmesync stream --config prod.toml\n  cmesync stream --delivery-interval 2",
        [common],
    )
    stream.add_argument(
        "--delivery-interval", type=float, default=5.0, metavar="SECONDS", help="delivery pass at least this often"
    )

    cli_broker.add_commands(commands, _command, common, moment)

    transcript = _command(
        commands,
        "transcript",
        "a learner's credits and where they stand in their licence cycles",
        "Credits by type and topic within each licence cycle of the learner (one per row of the compliance roster, "
        "profile from the roster or by licence state and profession), what is still missing per requirement, "
        "days to the deadline and whether the learner is at risk (a requirement unmet and the deadline within "
        "compliance.at_risk_days) or overdue (the deadline passed). LEARNER is the ledger learner id or the prefix "
        "reports print, the roster's employee id, an NPI, an e-mail or a licence STATE:NUMBER. "
        "Profiles are examples: check them against the board's current rules.\n"
        "Exit code 0: no cycle at risk; 1: some cycle at risk or overdue; 2: unknown learner or profile, bad "
        "arguments or configuration.",
        "  cmesync transcript b2c4bbaa-5eec-56cf-ba9f-e6a976654b17\n"
        "  cmesync transcript 1493027167 --as-of 2026-12-31\n"
        "  cmesync transcript b2c4bbaa --format html > transcript.html\n"
        "  cmesync transcript amelia.hart@example.org --json\n"
        "  cmesync transcript EH-0001\n"
        "  cmesync transcript TX:MD-77812 --profile tx-md-do --expires 2027-02-28 --format csv",
        [common],
    )
    transcript.add_argument(
        "learner", metavar="LEARNER", help="learner id (or prefix), employee id, NPI, e-mail or licence STATE:NUMBER"
    )
    transcript.add_argument("--profile", metavar="ID", help="only this requirement profile (deploy/profiles/ID.toml)")
    transcript.add_argument("--as-of", type=day, metavar="DATE", help="evaluate as of DATE (default: today, UTC)")
    transcript.add_argument("--expires", type=day, metavar="DATE", help="licence expiry, instead of the roster's")
    transcript.add_argument("--format", choices=TRANSCRIPT_FORMATS, help="output on stdout (default table)")
    transcript.set_defaults(format_default="table")
    cli_certificates.add_command(commands, _command, common)
    cli_export.add_command(commands, _command, common)

    report = _command(
        commands,
        "report",
        "render the HTML report of a past run again",
        "Render the report of a past run from the ledger again — the outcome first, charts of deliveries per "
        "registry, dead letters by reason and the last 30 runs, then the tables — into the reports directory, "
        "under the name the run gave it. By default the latest run; --run picks one by id or the prefix reports "
        "and `cmesync status` print; --last N the N most recent.\n"
        "Exit code 0: every run reported succeeded (or is still running); 1: one was partial or failed; 2: no "
        "such run, bad arguments or configuration.",
        "  cmesync report\n  cmesync report --run 0f9e8d7c\n  cmesync report --last 7 --json",
        [common],
    )
    which = report.add_mutually_exclusive_group()
    which.add_argument("--run", metavar="ID", help="the run with this id (or unique prefix)")
    which.add_argument("--last", type=_positive, default=1, metavar="N", help="the N most recent runs (default 1)")
    return parser


# -- helpers -----------------------------------------------------------------------------------------------------


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return int(text)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cme-credit-sync")
    except PackageNotFoundError:
        return "(not installed)"


def _emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.load(args.config)


def _ledger_settings(args: argparse.Namespace) -> Settings:
    """Settings for a command that reads or repairs the ledger, whose schema is brought up to date first
    (idempotent), so the ops commands work on a fresh install and after an upgrade alike."""
    settings = _settings(args)
    preflight_ledger(settings.ledger_url, _waiting)
    _with_ledger(settings, Ledger.migrate)
    return settings


def _writer_lock(settings: Settings, command: str, read_only: bool = False) -> AbstractContextManager[object]:
    """The ledger's run lock for a command that writes what the nightly run writes (ledger/run_lock.py)."""
    if read_only:
        return nullcontext()
    return run_lock(settings.ledger_url, f"cli-{uuid.uuid4()}", command)


def _waiting(message: str) -> None:
    console.print(f"[yellow]{message}[/]")


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


# -- run ---------------------------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    quiet_prefect()
    if args.fresh and not args.embedded:
        raise UsageError("--fresh starts the embedded ledger over: use it with --embedded")
    settings = Settings.load(args.config)
    if args.embedded:
        if args.fresh:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{EMBEDDED_LEDGER}{suffix}").unlink(missing_ok=True)
            EMBEDDED_REGISTRIES.unlink(missing_ok=True)
        EMBEDDED_LEDGER.parent.mkdir(parents=True, exist_ok=True)
        os.environ["CMESYNC_LEDGER_URL"] = f"sqlite:///{EMBEDDED_LEDGER}"
        settings = Settings.load(args.config)
    # Before Prefect (and its temporary server) starts: a bad config or catalog costs a second, not eleven.
    preflight_run(settings, args.embedded, _waiting)
    from flows import cli_render as render
    from flows.nightly import nightly_reconciliation

    if args.log_level:
        _set_log_level(args.log_level)
    config_path = str(args.config) if args.config else None
    if not args.embedded:
        state = nightly_reconciliation(config_path=config_path, return_state=True)
        return _run_ended(args, state, render)
    from deploy.embedded import EmbeddedStack

    console.print("[bold]starting[/] embedded broker and sandboxes")
    with EmbeddedStack(registry_state=EMBEDDED_REGISTRIES) as stack:
        endpoints = stack.endpoints(settings)
        console.print(f"broker {endpoints['kafka_bootstrap']}, schema registry {endpoints['schema_registry_url']}")
        # The embedded broker keeps its log in memory: it is empty at every start, the ledger is not.
        state = nightly_reconciliation(
            config_path=config_path, endpoints=endpoints, broker_started_empty=True, return_state=True
        )
        assert stack.sandboxes is not None
        holdings = len(stack.sandboxes.ama.holdings())
    code = _run_ended(args, state, render)
    console.print(f"AMA PRA sandbox registry now holds {holdings} credit records; ledger: {EMBEDDED_LEDGER}")
    reports = sorted(settings.reports_dir.glob("nightly-*.html"), key=lambda p: p.stat().st_mtime)
    if reports:
        console.print(f"report: {reports[-1]}")
    console.print("next, in this shell (`make demo` again is the second night; `make demo-reset` starts over):")
    for command in NEXT_COMMANDS:
        console.print(f"  {command}", markup=False, highlight=False)
    return code


def _set_log_level(level: str) -> None:
    """Our loggers, Prefect's flow and task loggers and every library's in this process, at `level`. Set on the
    loggers, not through PREFECT_LOGGING_* variables, which Prefect's temporary server would inherit: at DEBUG
    its database set-up logs megabytes and misses its start-up limit."""
    logging.getLogger().setLevel(level)
    logging.getLogger("prefect").setLevel(level)
    for handler in logging.getLogger().handlers + logging.getLogger("prefect").handlers:
        if handler.level > logging.getLevelName(level):
            handler.setLevel(level)


def _run_ended(args: argparse.Namespace, state: Any, render: Any) -> int:
    """Counts on stdout whatever the outcome; the outcome (pipeline/outcome.py) as the exit code and one line."""
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        if isinstance(result, ConfigError | ComponentDown | RunLocked):
            raise result
        _error("run failed", f"{type(result).__name__}: {result}")
        return 1
    if args.json:
        _emit_json(_run_document(Settings.load(args.config), result))
    else:
        render.counts_table("nightly reconciliation", result)
    if state.is_failed():
        console.print(f"[red]{escape(state.message or 'run failed')}[/]", highlight=False, soft_wrap=True)
        return 1
    return 0


def _run_document(settings: Settings, counts: dict[str, Any]) -> dict[str, Any]:
    """`run --json`: the run's counts, then its id, status, report path and per-registry breakdown."""
    from pipeline.reports.run_report import latest_run_summary

    summary = _with_ledger(settings, lambda ledger: latest_run_summary(ledger, "nightly", settings.reports_dir))
    return {**counts, **(summary or {})}


# -- replay ------------------------------------------------------------------------------------------------------


def _replay(args: argparse.Namespace) -> int:
    from flows import cli_render as render
    from pipeline.ops.replay import RegistryOutcome, replay

    selection = DeliverySelection(
        registries=tuple(args.registry),
        since=args.since,
        until=args.until,
        record_ids=tuple(args.record_id),
        reason_codes=tuple(args.reason_code),
        learner_ids=tuple(args.learner),
    )
    settings = _ledger_settings(args)
    _check_reason_codes(settings, args.reason_code)
    with _progress() as progress:
        tasks: dict[str, TaskID] = {}

        def started(registry: str, count: int) -> None:
            tasks[registry] = progress.add_task(f"replay to {registry}", total=count)

        def done(outcome: RegistryOutcome) -> None:
            progress.update(tasks[outcome.registry], completed=outcome.delivered + outcome.failed)

        with _writer_lock(settings, "replay", read_only=args.dry_run):
            result = replay(settings, selection, dry_run=args.dry_run, on_start=started, on_done=done)
    if args.json or args.format == "json":
        _emit_json(result.as_dict())
    else:
        render.replay_result(result, args.format)
    return 0 if result.dry_run or result.all_delivered else 1


# -- dead letters ------------------------------------------------------------------------------------------------


def _dead_letter_filter(args: argparse.Namespace, ids: tuple[str, ...] = (), **extra: Any) -> DeadLetterFilter:
    return DeadLetterFilter(
        ids=ids,
        stages=tuple(args.stage),
        reason_codes=tuple(args.reason_code),
        sources=tuple(args.source),
        registries=tuple(args.registry),
        since=args.since,
        **extra,
    )


def _with_ledger(settings: Settings, work: Callable[[Ledger], T]) -> T:
    ledger = Ledger(settings.ledger_url)
    try:
        return work(ledger)
    finally:
        ledger.close()


def _selected_dead_letters(args: argparse.Namespace, settings: Settings) -> list[DeadLetterRow]:
    """Dead letters named by id, or matching the filters; refuses a bare command that would take them all."""
    has_filter = any((args.stage, args.reason_code, args.source, args.registry, args.since))
    if not args.ids and not has_filter:
        raise UsageError(
            f"name dead letters by id or narrow them with a filter (see cmesync deadletters {args.action} -h)"
        )

    def select(ledger: Ledger) -> list[DeadLetterRow]:
        named = [dead_letter(ledger, i) for i in args.ids]
        if not has_filter:
            return named
        matching = dead_letters(ledger, _dead_letter_filter(args, unresolved_only=True))
        if args.ids:
            wanted = {row.dead_letter_id for row in named}
            matching = [row for row in matching if row.dead_letter_id in wanted]
        return matching

    return _with_ledger(settings, select)


def _check_reason_codes(settings: Settings, codes: list[str]) -> None:
    """An unknown --reason-code is refused (exit 2) with the known ones, instead of matching nothing."""
    from pipeline.ops.reason_codes import UnknownReasonCode, check_reason_codes

    if not codes:
        return
    try:
        check_reason_codes(codes, _with_ledger(settings, dead_letter_reason_codes))
    except UnknownReasonCode as err:
        raise UsageError(str(err)) from None


def _deadletters(args: argparse.Namespace) -> int:
    from flows import cli_render as render

    settings = _ledger_settings(args)
    if args.action != "show":
        _check_reason_codes(settings, args.reason_code)
    if args.action == "list":
        where = _dead_letter_filter(args, unresolved_only=args.unresolved, limit=args.limit)
        rows = _with_ledger(settings, lambda ledger: dead_letters(ledger, where))
        if args.json or args.format == "json":
            _emit_json([_row_dict(r) for r in rows])
        else:
            total = _with_ledger(settings, lambda ledger: count_dead_letters(ledger, where))
            render.dead_letters_table(rows, total, args.format)
            if total > len(rows):
                console.print(f"{len(rows)} of {total} matching dead letters shown: raise --limit to see more")
        return 0
    if args.action == "show":
        row = _with_ledger(settings, lambda ledger: dead_letter(ledger, args.id))
        payload = None
        if args.reveal:
            console.print("[yellow]--reveal: the payload below is the original record and may contain PII[/]")
            payload = _with_ledger(settings, lambda ledger: dead_letter_payload(ledger, row.dead_letter_id))
        if payload is not None:
            payload = _readable_payload(settings, row, payload)
        if args.json:
            revealed = {"payload": payload} if payload is not None else {}
            _emit_json({**_row_dict(row), **revealed})
            return 0
        render.dead_letter_detail(row)
        if payload is not None:
            render.out.print(payload, markup=False, highlight=False)
        return 0
    rows = _selected_dead_letters(args, settings)
    if args.dry_run:
        verb = "resolve" if args.action == "resolve" else "retry"
        if args.json:
            _emit_json({"dry_run": True, "would_" + verb: [_row_dict(r) for r in rows]})
        else:
            render.dead_letters_table(rows)
            render.out.print(f"--dry-run: would {verb} {len(rows)} dead letters; nothing was changed")
        return 0
    if args.action == "resolve":
        changed = _with_ledger(
            settings, lambda ledger: set_dead_letters_resolved(ledger, [r.dead_letter_id for r in rows])
        )
        if args.json:
            _emit_json({"resolved": changed})
        else:
            render.out.print(f"{changed} dead letters marked resolved")
        return 0
    from pipeline.ops.retry import retry_dead_letters

    with _writer_lock(settings, "deadletters retry"), console.status(f"retrying {len(rows)} dead letters"):
        result = retry_dead_letters(settings, rows)
    if args.json:
        _emit_json(result.as_dict())
    else:
        render.retry_result(result)
    return 0 if result.all_resolved else 1


def _readable_payload(settings: Settings, row: DeadLetterRow, payload: bytes) -> str:
    """A reconcile-stage payload is an Avro message: decoded through the schema registry (the writer's schema by
    the id in its header), else — the registry unreachable, as after `run --embedded` — with the shipped schema,
    which says so. Source records (normalise stage) are JSON or text already."""
    from flows import cli_render as render

    if row.stage != "reconcile" or payload[:1] != b"\x00":
        return render.payload_text(payload)
    if settings.schema_registry_url:
        from pipeline.factory import codec_for

        try:
            event = codec_for(settings, "attendance_event").decode(payload)
            return json.dumps(event, indent=2, sort_keys=True, default=str)
        except Exception as err:
            console.print(f"[yellow]the schema registry could not decode the payload ({type(err).__name__})[/]")
    from schemas.codec import decode_with_shipped_schema

    try:
        event = decode_with_shipped_schema("attendance_event", payload)
    except Exception as err:
        console.print(f"[yellow]could not decode the Avro payload ({type(err).__name__}); showing it raw[/]")
        return render.payload_text(payload)
    console.print("[yellow]decoded with the shipped schemas/attendance_event.avsc, not the writer's schema[/]")
    return json.dumps(event, indent=2, sort_keys=True, default=str)


def _row_dict(row: DeadLetterRow) -> dict[str, Any]:
    return {
        "dead_letter_id": row.dead_letter_id,
        "stage": row.stage,
        "source": row.source,
        "source_ref": row.source_ref,
        "reason_code": row.reason_code,
        "reason": row.reason,
        "registry": row.registry,
        "attempts": row.attempts,
        "first_seen": row.first_seen.isoformat(),
        "last_seen": row.last_seen.isoformat(),
        "published_at": row.published_at.isoformat() if row.published_at else None,
        "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
        "payload_bytes": row.payload_bytes,
    }


# -- status, config check ----------------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    from flows import cli_render as render
    from pipeline.ops.status import collect_status
    from pipeline.outcome import RUNNING, status_exit_code

    settings = _ledger_settings(args)
    if settings.kafka_bootstrap:
        _waiting(f"waiting for the broker at {settings.kafka_bootstrap} (up to 10 s)")
    with console.status("reading the ledger and the broker"):
        report = collect_status(settings, args.runs)
    if args.json or args.format == "json":
        _emit_json(report.as_dict())
    else:
        render.status(report, args.format)
    if settings.kafka_bootstrap and report.lag_error:
        return 1  # the broker is down: a component that is down is exit code 1
    last = next((r for r in report.runs if r.status != RUNNING), None)
    return status_exit_code(
        last.status if last else None,
        last.counts.get("delivery_failed", 0) if last else 0,
        (states.get(DeliveryState.FAILED, 0) for states in report.backlog.values()),
    )


def _config(args: argparse.Namespace) -> int:
    from flows import cli_render as render
    from pipeline.ops.check import FAILED, check_settings

    settings = _settings(args)
    from pipeline.ops.preflight import check_ledger_url

    check_ledger_url(settings.ledger_url)
    default = "cmesync.toml" if Path("cmesync.toml").exists() else "the embedded sample deploy/sample/cmesync.toml"
    console.print(f"configuration {args.config or os.environ.get('CMESYNC_CONFIG') or default}: valid")
    with console.status("checking every configured part"):
        results = check_settings(settings)
    if args.json:
        _emit_json([r.as_dict() for r in results])
    else:
        render.checks(results)
    return 1 if any(r.outcome == FAILED for r in results) else 0


# -- serve, stream -----------------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    quiet_prefect()
    if not os.environ.get("PREFECT_API_URL") and not args.temporary_server:
        raise UsageError(
            "serve needs a Prefect API that keeps schedules and history: set PREFECT_API_URL "
            "(e.g. http://127.0.0.1:4200/api, from `prefect server start`), or pass --temporary-server for a "
            "throwaway one"
        )
    settings = _settings(args)
    preflight_run(settings, embedded=True, waiting=_waiting)
    if args.config:
        # The served flows load their configuration themselves, at each run.
        os.environ["CMESYNC_CONFIG"] = str(args.config.resolve())
    from prefect import serve

    from flows.deployments import PREFECT_FILE, DeploymentFileError, runner_deployments

    try:
        deployments = runner_deployments(args.prefect_file or PREFECT_FILE, tuple(args.only))
    except DeploymentFileError as err:
        raise UsageError(str(err)) from None
    names = [d.name for d in deployments]
    if args.json:
        _emit_json({"serving": names, "prefect_file": str(args.prefect_file or PREFECT_FILE)})
        sys.stdout.flush()
    console.print(f"serving {', '.join(names)} from {args.prefect_file or PREFECT_FILE}")
    try:
        # Prefect's serve prints its banner on stdout, which belongs to --json: it goes to stderr instead.
        with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
            serve(*deployments)
    except KeyboardInterrupt:
        console.print("stopped")
    return 0


def _stream(args: argparse.Namespace) -> int:
    quiet_prefect()
    from flows import cli_render as render
    from flows.stream import stream_reconciliation

    config_path = str(args.config) if args.config else None
    counts = stream_reconciliation(config_path=config_path, delivery_interval_s=args.delivery_interval)
    if args.json:
        _emit_json(counts)
    else:
        render.counts_table("stream reconciliation", counts)
    return 0


# -- transcript --------------------------------------------------------------------------------------------------


def _transcript(args: argparse.Namespace) -> int:
    from pipeline.reports import transcript_render as render
    from pipeline.reports.transcript import TranscriptError, learner_transcripts, load_inputs
    from reconcile.catalog import CatalogError
    from reconcile.compliance.profiles import ProfileError
    from reconcile.compliance.roster import RosterError

    settings = _ledger_settings(args)
    as_of = args.as_of or datetime.now(UTC).date()
    try:
        inputs = load_inputs(settings)
    except (ProfileError, RosterError, CatalogError) as err:
        raise ConfigError(str(err)) from None
    try:
        result = _with_ledger(
            settings,
            lambda ledger: learner_transcripts(ledger, inputs, args.learner, as_of, args.profile, args.expires),
        )
    except TranscriptError as err:
        raise UsageError(str(err)) from None
    chosen = "json" if args.json else args.format
    if chosen == "json":
        _emit_json(render.as_dict(result))
    elif chosen == "csv":
        sys.stdout.write(render.as_csv(result))
    elif chosen == "html":
        sys.stdout.write(render.as_html(result))
    else:
        render.print_table(result, Console())
    return 1 if result.at_risk else 0


def _certificates(args: argparse.Namespace) -> int:
    from pipeline.reports.certificates import CertificateError
    from pipeline.reports.transcript import TranscriptError

    try:
        return cli_certificates.run(args, _ledger_settings(args))
    except (CertificateError, TranscriptError) as err:
        raise UsageError(str(err)) from None
def _report(args: argparse.Namespace) -> int:
    from flows import cli_render as render
    from pipeline.stages.past_reports import RunNotFound, chosen_runs, rerender

    settings = _ledger_settings(args)
    try:
        runs = _with_ledger(settings, lambda ledger: chosen_runs(ledger, args.run, args.last))
    except RunNotFound as err:
        raise UsageError(str(err)) from None
    with console.status(f"rendering {len(runs)} run reports"):
        reports = rerender(settings, runs)
    if args.json:
        _emit_json([r.as_dict() for r in reports])
    else:
        render.rendered_reports(reports)
    return 0 if all(r.ok for r in reports) else 1


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _run,
    "replay": _replay,
    "deadletters": _deadletters,
    "status": _status,
    "config": _config,
    "serve": _serve,
    "stream": _stream,
    "transcript": _transcript,
    "certificates": _certificates,
    "export": lambda args: cli_export.run(args, _ledger_settings(args)),
    "report": _report,
    "recover": lambda args: cli_broker.recover(args, _ledger_settings(args)),
    "republish": lambda args: cli_broker.republish(args, _ledger_settings(args)),
}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if hasattr(args, "format_default"):
        if getattr(args, "json", False) and args.format not in (None, "json"):
            parser.error(f"--json with --format {args.format}: {CONFLICTING_FLAGS}")
        args.format = args.format or args.format_default
    from pipeline.ops.replay import ReplayError

    try:
        _log_format(args)
        code = HANDLERS[args.command](args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except ConfigError as err:
        _error("configuration error", err)
    except (UsageError, ReplayError, DeadLetterNotFound) as err:
        _error("error", err)
    except RunLocked as err:
        _error("refused", err)
        return 1
    except ComponentDown as err:
        _error("unavailable", err)
        return err.exit_code
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
    except Exception as err:
        if (line := _component_failure(err)) is None:
            raise
        _error("unavailable", line)
        return 1
    return 2


def _log_format(args: argparse.Namespace) -> None:
    """JSON log lines on stderr when asked (flag, else `[logging] format`); messages of this CLI included."""
    chosen = args.log_format
    if chosen is None:
        try:
            chosen = Settings.load(args.config).logging.format
        except ConfigError:
            return  # the command itself reports the configuration error, as it always did
    if chosen != "json":
        return
    use_json_logs(own_level=None if getattr(args, "log_level", None) else "INFO")
    console_to_log(console)
    console_to_log(cli_broker.console)


def _error(label: str, message: object) -> None:
    if isinstance(console.file, LogLines):  # JSON logs: a failure is an ERROR record, not an INFO line
        console.file.logger.error("%s: %s", label, message)
        return
    console.print(f"[red]{label}:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


def _stdout_closed() -> int:
    """The reader went away (`| head`): stop quietly. Python would report the pipe again when it flushes
    stdout at exit, so stdout is pointed at /dev/null first."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except OSError as err:
        if err.errno != errno.EBADF:
            raise
    return 1


def _component_failure(err: Exception) -> str | None:
    """One line for a component that failed mid-command (after the preflight): the ledger, the broker or an
    HTTP endpoint. Only the driver's first line: SQLAlchemy's own text carries the statement and its values."""
    from kafka.errors import KafkaError
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    from connectors.http import APIError

    if isinstance(err, DBAPIError):
        first = str(err.orig).strip().splitlines()[0] if err.orig else type(err).__name__
        return f"ledger: {first}"
    if isinstance(err, SQLAlchemyError):
        return f"ledger: {type(err).__name__}"
    if isinstance(err, KafkaError):
        return f"kafka broker: {type(err).__name__}: {err}"
    if isinstance(err, APIError):
        return str(err)
    return None


if __name__ == "__main__":
    sys.exit(main())
