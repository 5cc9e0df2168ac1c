"""`cmesync`: the operator's command line (DESIGN §8), on Typer: one function per command, its options its
parameters; `deadletters` and `config` are groups.

Exit codes, for scripts: 0 done (everything delivered / resolved / reachable), 1 done but something still
failed, or a component (ledger, broker, registry) is down, 2 bad arguments or configuration. How a run's
outcome maps to them is `pipeline/outcome.py`. `--json` prints machine-readable output on stdout; progress and
messages go to stderr. Every failure of a command ends as one line on stderr (`_guarded`), never a traceback;
bad arguments end as Typer's usage and error lines.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import os
import re
import sys
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
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
from pipeline.ops.export import FileFormat
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
T = TypeVar("T")

console = Console(stderr=True)


class UsageError(ValueError):
    """The command line asks for something impossible; exit code 2."""


class Stage(StrEnum):
    """A pipeline stage, as `--stage` names it (an enum: Typer takes no list of literals)."""

    NORMALISE = "normalise"
    RECONCILE = "reconcile"
    DELIVER = "deliver"


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
            raise typer.BadParameter(f"not a time: {text!r} (use 2026-11-20, 2026-11-20T06:00Z or 12h)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def day(text: str) -> date:
    """A calendar date, ISO 8601 (`2026-11-20`)."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"not a date: {text!r} (use 2026-11-20)") from None


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise typer.BadParameter(f"not a positive whole number: {text!r}")
    return int(text)


# -- the options every command takes, and those several share ----------------------------------------------------

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", metavar="FILE", help="config file (default: $CMESYNC_CONFIG, else ./cmesync.toml, else the sample)"
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print machine-readable JSON on stdout")]
LogFormatOption = Annotated[
    Literal["text", "json"] | None,
    typer.Option(
        "--log-format", metavar="text|json", help="stderr as text or one JSON object per line (default: config)"
    ),
]
TableFormatOption = Annotated[
    Literal["plain", "tsv", "json"] | None,
    typer.Option(
        "--format",
        metavar="plain|tsv|json",
        help="plain (default): tables for 80 columns, ids as unique prefixes; tsv: full values for scripts; "
        "json: as --json",
    ),
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="print what would be done; change nothing")]
# The dead-letter filters; a repeated option matches any of its values.
StageFilter = Annotated[
    list[Stage] | None,
    typer.Option("--stage", metavar="STAGE", help="pipeline stage: normalise, reconcile or deliver (repeatable)"),
]
ReasonCodeFilter = Annotated[
    list[str] | None, typer.Option("--reason-code", metavar="CODE", help="e.g. UNKNOWN_ACTIVITY (repeatable)")
]
SourceFilter = Annotated[
    list[str] | None, typer.Option("--source", metavar="NAME", help="connector instance name (repeatable)")
]
RegistryFilter = Annotated[
    list[str] | None, typer.Option("--registry", metavar="NAME", help="registry, deliver stage (repeatable)")
]
SinceFilter = Annotated[
    datetime | None,
    typer.Option("--since", parser=moment, metavar="TIME", help="last seen at or after TIME (e.g. 12h)"),
]
DeadLetterIds = Annotated[
    list[str] | None, typer.Argument(metavar="ID", help="dead letter ids or unique prefixes", show_default=False)
]
LearnerArgument = Annotated[
    str,
    typer.Argument(metavar="LEARNER", help="learner id (or prefix), employee id, NPI, e-mail or licence STATE:NUMBER"),
]

_SETTINGS: dict[str, Any] = {"rich_markup_mode": None, "add_completion": False, "pretty_exceptions_enable": False}
app = typer.Typer(
    name="cmesync",
    help="Keep CME credits in sync between learning sources and credit registries.",
    epilog="\b\nexamples:\n"
    "  cmesync run --embedded              # sample data, embedded broker, sandboxes\n"
    "  cmesync status                      # the morning after: runs, lag, backlog, dead letters\n"
    "  cmesync deadletters list --unresolved\n"
    "  cmesync replay --registry ama-pra --dry-run\n"
    "  cmesync config check --config prod.toml\n"
    "  cmesync serve                       # nightly, replay and stream deployments of deploy/prefect.yaml\n"
    "\nexit codes: 0 done, 1 done but something still failed (or a component is down), 2 bad arguments or "
    "configuration",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    **_SETTINGS,
)
deadletters_app = typer.Typer(
    help="Records that could not go on: where they came from, why, and what to do with them.",
    short_help="list, show, retry or resolve dead letters",
    epilog="\b\nexamples:\n  cmesync deadletters list --unresolved\n  cmesync deadletters show 3f2a9c1e\n"
    "  cmesync deadletters retry --stage reconcile --reason-code UNKNOWN_ACTIVITY\n"
    "  cmesync deadletters resolve 3f2a9c1e",
    **_SETTINGS,
)
config_app = typer.Typer(
    help="Work with the configuration file.",
    short_help="check the configuration",
    epilog="\b\nexamples:\n  cmesync config check\n  cmesync config check --config prod.toml --json",
    **_SETTINGS,
)
app.add_typer(deadletters_app, name="deadletters")
app.add_typer(config_app, name="config")


def _show_version(asked: bool) -> None:
    if asked:
        print(f"cmesync {_version()}")
        raise typer.Exit()


@app.callback()
def _cmesync(
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_show_version, help="print the version and exit")
    ] = False,
) -> None:
    """The options of `cmesync` itself, before its command."""


def command(
    group: typer.Typer, name: str, summary: str, description: str, examples: str
) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Registers a handler as the command `name` of `group`: its parameters are the command's options (with the
    common `config`, `json_` and `log_format` among them), `summary` its line in the group's list, `description`
    (a paragraph per line) and `examples` its --help. The handler returns the exit code; it runs `_guarded`."""

    def register(handler: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(handler)
        def guarded(**options: Any) -> None:
            raise typer.Exit(_guarded(handler, options))

        group.command(
            name,
            short_help=summary,
            help=description.replace("\n", "\n\n"),
            epilog="\b\nexamples:\n" + examples,
        )(guarded)
        return handler

    return register


def _guarded(handler: Callable[..., int], options: dict[str, Any]) -> int:
    """The handler's exit code; a failure it raises becomes one line on stderr and its exit code."""
    from pipeline.ops.replay import ReplayError

    try:
        _log_format(options["config"], options["log_format"], options.get("log_level"))
        code = handler(**options)
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


def _output_format(as_json: bool, chosen: str | None, default: str) -> str:
    """--format, or its default; --json is --format json, and --json with another --format is refused (exit 2)."""
    if as_json and chosen not in (None, "json"):
        raise typer.BadParameter(f"--json with --format {chosen}: {CONFLICTING_FLAGS}")
    return "json" if as_json else chosen or default


# -- helpers -----------------------------------------------------------------------------------------------------


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cme-credit-sync")
    except PackageNotFoundError:
        return "(not installed)"


def _emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _ledger_settings(config: Path | None) -> Settings:
    """Settings for a command that reads or repairs the ledger, whose schema is brought up to date first
    (idempotent), so the ops commands work on a fresh install and after an upgrade alike."""
    settings = Settings.load(config)
    preflight_ledger(settings.ledger_url, _waiting)
    _with_ledger(settings, Ledger.migrate)
    return settings


def _with_ledger(settings: Settings, work: Callable[[Ledger], T]) -> T:
    with Ledger(settings.ledger_url) as ledger:
        return work(ledger)


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


@command(
    app,
    "run",
    "run the nightly reconciliation once, now",
    "Pull new attendance from every source, reconcile it into the ledger, publish the credit stream and "
    "deliver to the registries; print what was done.\nWith --embedded, endpoints left empty in the config "
    f"are served by an embedded Kafka broker and local sandboxes, and the ledger is {EMBEDDED_LEDGER} (the one "
    "the default configuration reads, so `cmesync status` works after it); --fresh starts it over.\n"
    "Exit code 0: the run succeeded; 1: a delivery failed, a registry was unavailable or the run stopped "
    "(the Prefect flow run ends Failed); 2: bad configuration, found before Prefect starts.",
    "  cmesync run --embedded\n  cmesync run --embedded --fresh\n  cmesync run --config prod.toml --json",
)
def run(
    embedded: Annotated[
        bool, typer.Option("--embedded", help="start the embedded broker and sandboxes for this run")
    ] = False,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="with --embedded: forget the ledger and the sandbox registries first")
    ] = False,
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None,
        typer.Option(
            "--log-level",
            metavar="DEBUG|INFO|WARNING|ERROR",
            help="log level of our loggers, the flow's and every library's in this process (stderr), never "
            "Prefect's temporary server's; default: Prefect's settings",
        ),
    ] = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
    log_format: LogFormatOption = None,
) -> int:
    quiet_prefect()
    if fresh and not embedded:
        raise UsageError("--fresh starts the embedded ledger over: use it with --embedded")
    settings = Settings.load(config)
    if embedded:
        if fresh:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{EMBEDDED_LEDGER}{suffix}").unlink(missing_ok=True)
            EMBEDDED_REGISTRIES.unlink(missing_ok=True)
        EMBEDDED_LEDGER.parent.mkdir(parents=True, exist_ok=True)
        os.environ["CMESYNC_LEDGER_URL"] = f"sqlite:///{EMBEDDED_LEDGER}"
        settings = Settings.load(config)
    # Before Prefect (and its temporary server) starts: a bad config or catalog costs a second, not eleven.
    preflight_run(settings, embedded, _waiting)
    from flows.nightly import nightly_reconciliation

    if log_level:
        _set_log_level(log_level)
    config_path = str(config) if config else None
    if not embedded:
        state = nightly_reconciliation(config_path=config_path, return_state=True)
        return _run_ended(config, json_, state)
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
    code = _run_ended(config, json_, state)
    console.print(f"AMA PRA sandbox registry now holds {holdings} credit records; ledger: {EMBEDDED_LEDGER}")
    reports = sorted(settings.reports_dir.glob("nightly-*.html"), key=lambda p: p.stat().st_mtime)
    if reports:
        console.print(f"report: {reports[-1]}")
    console.print("next, in this shell (`make demo` again is the second night; `make demo-reset` starts over):")
    for next_command in NEXT_COMMANDS:
        console.print(f"  {next_command}", markup=False, highlight=False)
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


def _run_ended(config: Path | None, as_json: bool, state: Any) -> int:
    """Counts on stdout whatever the outcome; the outcome (pipeline/outcome.py) as the exit code and one line."""
    from flows import cli_render as render

    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        if isinstance(result, ConfigError | ComponentDown | RunLocked):
            raise result
        _error("run failed", f"{type(result).__name__}: {result}")
        return 1
    if as_json:
        _emit_json(_run_document(Settings.load(config), result))
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


@command(
    app,
    "replay",
    "re-deliver failed (or selected) credits to the registries",
    "Select deliveries — every failed one by default; with --record-id, those records' current deliveries "
    "whatever their state — narrow them with the filters, put them back in the queue and deliver them. "
    "Idempotent: registries key on record_id:version, so a record they already hold is never added twice. "
    "Dead letters of deliveries that go through are marked resolved. Repeatable options match any of their "
    "values.\n"
    "Exit code 0: all delivered (or nothing matched); 1: some failed again; 2: bad arguments.",
    "  cmesync replay --dry-run\n"
    "  cmesync replay --registry ama-pra --since 12h\n"
    "  cmesync replay --reason-code REGISTRY_UNAVAILABLE --until 2026-11-23T06:00Z\n"
    "  cmesync replay --record-id 0b8f…e1 --record-id 5c21…9a --json",
)
def replay(
    registry: Annotated[
        list[str] | None, typer.Option("--registry", metavar="NAME", help="only this registry (repeatable)")
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option("--since", parser=moment, metavar="TIME", help="delivery last updated at or after TIME"),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option("--until", parser=moment, metavar="TIME", help="delivery last updated before TIME"),
    ] = None,
    record_id: Annotated[
        list[str] | None, typer.Option("--record-id", metavar="ID", help="this credit record (repeatable)")
    ] = None,
    reason_code: Annotated[
        list[str] | None,
        typer.Option("--reason-code", metavar="CODE", help="dead letter reason code (repeatable)"),
    ] = None,
    learner: Annotated[
        list[str] | None, typer.Option("--learner", metavar="LEARNER_ID", help="ledger learner id (repeatable)")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print what would be sent; send nothing")] = False,
    fmt: TableFormatOption = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
    log_format: LogFormatOption = None,
) -> int:
    from flows import cli_render as render
    from pipeline.ops.replay import RegistryOutcome
    from pipeline.ops.replay import replay as replay_deliveries

    chosen = _output_format(json_, fmt, "plain")
    selection = DeliverySelection(
        registries=tuple(registry or ()),
        since=since,
        until=until,
        record_ids=tuple(record_id or ()),
        reason_codes=tuple(reason_code or ()),
        learner_ids=tuple(learner or ()),
    )
    settings = _ledger_settings(config)
    _check_reason_codes(settings, reason_code or [])
    with _progress() as progress:
        tasks: dict[str, TaskID] = {}

        def started(name: str, count: int) -> None:
            tasks[name] = progress.add_task(f"replay to {name}", total=count)

        def done(outcome: RegistryOutcome) -> None:
            progress.update(tasks[outcome.registry], completed=outcome.delivered + outcome.failed)

        with _writer_lock(settings, "replay", read_only=dry_run):
            result = replay_deliveries(settings, selection, dry_run=dry_run, on_start=started, on_done=done)
    if chosen == "json":
        _emit_json(result.as_dict())
    else:
        render.replay_result(result, chosen)
    return 0 if result.dry_run or result.all_delivered else 1


def _check_reason_codes(settings: Settings, codes: list[str]) -> None:
    """An unknown --reason-code is refused (exit 2) with the known ones, instead of matching nothing."""
    from pipeline.ops.reason_codes import UnknownReasonCode, check_reason_codes

    if not codes:
        return
    try:
        check_reason_codes(codes, _with_ledger(settings, dead_letter_reason_codes))
    except UnknownReasonCode as err:
        raise UsageError(str(err)) from None


# -- dead letters ------------------------------------------------------------------------------------------------

DEAD_LETTER_FILTERS = "Repeatable filter options match any of their values."


def _dead_letter_filter(
    stage: list[Stage] | None,
    reason_code: list[str] | None,
    source: list[str] | None,
    registry: list[str] | None,
    since: datetime | None,
    **narrower: Any,
) -> DeadLetterFilter:
    return DeadLetterFilter(
        stages=tuple(s.value for s in stage or ()),
        reason_codes=tuple(reason_code or ()),
        sources=tuple(source or ()),
        registries=tuple(registry or ()),
        since=since,
        **narrower,
    )


@command(
    deadletters_app,
    "list",
    "list dead letters, newest first",
    "List dead letters with their reason code and source position (never their payload). " + DEAD_LETTER_FILTERS,
    "  cmesync deadletters list --unresolved\n"
    "  cmesync deadletters list --stage deliver --registry ama-pra --since 1d\n"
    "  cmesync deadletters list --reason-code SCHEMA_INVALID --json",
)
def list_dead_letters(
    stage: StageFilter = None,
    reason_code: ReasonCodeFilter = None,
    source: SourceFilter = None,
    registry: RegistryFilter = None,
    since: SinceFilter = None,
    unresolved: Annotated[bool, typer.Option("--unresolved", help="only dead letters not resolved yet")] = False,
    limit: Annotated[int, typer.Option("--limit", metavar="N", help="at most this many")] = 200,
    fmt: TableFormatOption = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
    log_format: LogFormatOption = None,
) -> int:
    from flows import cli_render as render

    chosen = _output_format(json_, fmt, "plain")
    settings = _ledger_settings(config)
    _check_reason_codes(settings, reason_code or [])
    where = _dead_letter_filter(stage, reason_code, source, registry, since, unresolved_only=unresolved, limit=limit)
    rows = _with_ledger(settings, lambda ledger: dead_letters(ledger, where))
    if chosen == "json":
        _emit_json([_row_dict(r) for r in rows])
        return 0
    total = _with_ledger(settings, lambda ledger: count_dead_letters(ledger, where))
    render.dead_letters_table(rows, total, chosen)
    if total > len(rows):
        console.print(f"{len(rows)} of {total} matching dead letters shown: raise --limit to see more")
    return 0


@command(
    deadletters_app,
    "show",
    "show one dead letter",
    "Show a dead letter: stage, reason, source position, attempts. The payload is the original record and "
    "can hold PII: it is printed only with --reveal.",
    "  cmesync deadletters show 3f2a9c1e\n  cmesync deadletters show 3f2a9c1e --reveal",
)
def show_dead_letter(
    dead_letter_id: Annotated[str, typer.Argument(metavar="ID", help="dead letter id or a unique prefix of it")],
    reveal: Annotated[bool, typer.Option("--reveal", help="also print the payload (may contain PII)")] = False,
    config: ConfigOption = None,
    json_: JsonOption = False,
    log_format: LogFormatOption = None,
) -> int:
    from flows import cli_render as render

    settings = _ledger_settings(config)
    row = _with_ledger(settings, lambda ledger: dead_letter(ledger, dead_letter_id))
    payload = None
    if reveal:
        console.print("[yellow]--reveal: the payload below is the original record and may contain PII[/]")
        payload = _with_ledger(settings, lambda ledger: dead_letter_payload(ledger, row.dead_letter_id))
    if payload is not None:
        payload = _readable_payload(settings, row, payload)
    if json_:
        revealed = {"payload": payload} if payload is not None else {}
        _emit_json({**_row_dict(row), **revealed})
        return 0
    render.dead_letter_detail(row)
    if payload is not None:
        render.out.print(payload, markup=False, highlight=False)
    return 0


@command(
    deadletters_app,
    "retry",
    "retry dead letters through the pipeline",
    "Retry unresolved dead letters by the route their stage allows: normalise — the stored source record "
    "through its connector again; reconcile — the original message back onto cme.attendance.v1 (after a "
    "catalog fix, say), then reconcile, publish and deliver; deliver — a replay. Dead letters that go "
    f"through are marked resolved. {DEAD_LETTER_FILTERS}\n"
    "Exit code 0: all resolved; 1: some still fail; 2: bad arguments.",
    "  cmesync deadletters retry 3f2a9c1e\n"
    "  cmesync deadletters retry --stage reconcile --reason-code UNKNOWN_ACTIVITY\n"
    "  cmesync deadletters retry --stage deliver --registry ama-pra",
)
def retry_dead_letters(
    ids: DeadLetterIds = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="list the dead letters a retry would take; change nothing")
    ] = False,
    stage: StageFilter = None,
    reason_code: ReasonCodeFilter = None,
    source: SourceFilter = None,
    registry: RegistryFilter = None,
    since: SinceFilter = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
    log_format: LogFormatOption = None,
) -> int:
    from flows import cli_render as render
    from pipeline.ops.retry import retry_dead_letters as retry

    settings = _ledger_settings(config)
    _check_reason_codes(settings, reason_code or [])
    where = _dead_letter_filter(stage, reason_code, source, registry, since, unresolved_only=True)
    rows = _selected_dead_letters("retry", settings, tuple(ids or ()), where)
    if dry_run:
        return _dry_run("retry", rows, json_)
    with _writer_lock(settings, "deadletters retry"), console.status(f"retrying {len(rows)} dead letters"):
        result = retry(settings, rows)
    if json_:
        _emit_json(result.as_dict())
    else:
        render.retry_result(result)
    return 0 if result.all_resolved else 1


@command(
    deadletters_app,
    "resolve",
    "mark dead letters resolved by hand",
    "Mark dead letters resolved without retrying them (dealt with outside cmesync, or not worth retrying). "
    + DEAD_LETTER_FILTERS,
    "  cmesync deadletters resolve 3f2a9c1e 77b0d2aa\n"
    "  cmesync deadletters resolve --stage normalise --reason-code UNSUPPORTED_VERB",
)
def resolve_dead_letters(
    ids: DeadLetterIds = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="list the dead letters it would resolve; change nothing")
    ] = False,
    stage: StageFilter = None,
    reason_code: ReasonCodeFilter = None,
    source: SourceFilter = None,
    registry: RegistryFilter = None,
    since: SinceFilter = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
    log_format: LogFormatOption = None,
) -> int:
    from flows import cli_render as render

    settings = _ledger_settings(config)
    _check_reason_codes(settings, reason_code or [])
    where = _dead_letter_filter(stage, reason_code, source, registry, since, unresolved_only=True)
    rows = _selected_dead_letters("resolve", settings, tuple(ids or ()), where)
    if dry_run:
        return _dry_run("resolve", rows, json_)
    changed = _with_ledger(settings, lambda ledger: set_dead_letters_resolved(ledger, [r.dead_letter_id for r in rows]))
    if json_:
        _emit_json({"resolved": changed})
    else:
        render.out.print(f"{changed} dead letters marked resolved")
    return 0


def _selected_dead_letters(
    action: str, settings: Settings, ids: tuple[str, ...], where: DeadLetterFilter
) -> list[DeadLetterRow]:
    """Dead letters named by id, or matching the filters; refuses a bare command that would take them all."""
    has_filter = any((where.stages, where.reason_codes, where.sources, where.registries, where.since))
    if not ids and not has_filter:
        raise UsageError(f"name dead letters by id or narrow them with a filter (see cmesync deadletters {action} -h)")

    def select(ledger: Ledger) -> list[DeadLetterRow]:
        named = [dead_letter(ledger, i) for i in ids]
        if not has_filter:
            return named
        matching = dead_letters(ledger, where)
        if ids:
            wanted = {row.dead_letter_id for row in named}
            matching = [row for row in matching if row.dead_letter_id in wanted]
        return matching

    return _with_ledger(settings, select)


def _dry_run(verb: str, rows: list[DeadLetterRow], as_json: bool) -> int:
    from flows import cli_render as render

    if as_json:
        _emit_json({"dry_run": True, "would_" + verb: [_row_dict(r) for r in rows]})
    else:
        render.dead_letters_table(rows)
        render.out.print(f"--dry-run: would {verb} {len(rows)} dead letters; nothing was changed")
    return 0


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


@command(
    app,
    "status",
    "last runs, consumer lag, delivery backlog, oldest dead letter",
    "What to look at first after a night: the last runs with counts and durations, how far the reconciler "
    "group is behind on Kafka, pending/failed deliveries per registry, and unresolved dead letters.",
    "  cmesync status\n  cmesync status --runs 10 --json",
)
def status(
    runs: Annotated[int, typer.Option("--runs", metavar="N", help="how many recent runs")] = 5,
    fmt: TableFormatOption = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
    log_format: LogFormatOption = None,
) -> int:
    from flows import cli_render as render
    from pipeline.ops.status import collect_status
    from pipeline.outcome import RUNNING, status_exit_code

    chosen = _output_format(json_, fmt, "plain")
    settings = _ledger_settings(config)
    if settings.kafka_bootstrap:
        _waiting(f"waiting for the broker at {settings.kafka_bootstrap} (up to 10 s)")
    with console.status("reading the ledger and the broker"):
        report = collect_status(settings, runs)
    if chosen == "json":
        _emit_json(report.as_dict())
    else:
        render.status(report, chosen)
    if settings.kafka_bootstrap and report.lag_error:
        return 1  # the broker is down: a component that is down is exit code 1
    last = next((r for r in report.runs if r.status != RUNNING), None)
    return status_exit_code(
        last.status if last else None,
        last.counts.get("delivery_failed", 0) if last else 0,
        (states.get(DeliveryState.FAILED, 0) for states in report.backlog.values()),
    )


@command(
    config_app,
    "check",
    "validate the config and reach every configured part",
    "Validate the config file (and CMESYNC_* environment), then check the ledger, the catalog, the broker, "
    "the schema registry and every connector (its check(): reachable, credentials accepted). Empty "
    "endpoints are reported as skipped (only `run --embedded` fills them).\n"
    "Exit code 0: everything reachable; 1: something failed; 2: the config itself is invalid.",
    "  cmesync config check\n  CMESYNC_KAFKA_BOOTSTRAP=kafka:9092 cmesync config check --config prod.toml",
)
def check(config: ConfigOption = None, json_: JsonOption = False, log_format: LogFormatOption = None) -> int:
    from flows import cli_render as render
    from pipeline.ops.check import FAILED, check_settings
    from pipeline.ops.preflight import check_ledger_url

    settings = Settings.load(config)
    check_ledger_url(settings.ledger_url)
    default = "cmesync.toml" if Path("cmesync.toml").exists() else "the embedded sample deploy/sample/cmesync.toml"
    console.print(f"configuration {config or os.environ.get('CMESYNC_CONFIG') or default}: valid")
    with console.status("checking every configured part"):
        results = check_settings(settings)
    if json_:
        _emit_json([r.as_dict() for r in results])
    else:
        render.checks(results)
    return 1 if any(r.outcome == FAILED for r in results) else 0


# -- serve, stream -----------------------------------------------------------------------------------------------


@command(
    app,
    "serve",
    "serve the Prefect deployments (nightly, replay, stream) in this process",
    "Serve the deployments of deploy/prefect.yaml with Prefect's `serve`: schedules fire and on-demand runs "
    "execute in this process, without a work pool or worker. Needs a Prefect API (PREFECT_API_URL) that "
    "keeps schedules and history; without one it refuses, unless --temporary-server asks for a throwaway "
    "server that forgets everything on exit. --config is passed to the served flows (as CMESYNC_CONFIG). "
    "Stop with Ctrl-C or SIGTERM.",
    "  PREFECT_API_URL=http://127.0.0.1:4200/api cmesync serve --config prod.toml\n"
    "  cmesync serve --only nightly --only replay --temporary-server",
)
def serve(
    temporary_server: Annotated[
        bool, typer.Option("--temporary-server", help="without PREFECT_API_URL: a throwaway Prefect server")
    ] = False,
    prefect_file: Annotated[
        Path | None,
        typer.Option("--prefect-file", metavar="FILE", help="deployments file (default: deploy/prefect.yaml)"),
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", metavar="NAME", help="serve only this deployment (repeatable)")
    ] = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
    log_format: LogFormatOption = None,
) -> int:
    quiet_prefect()
    if not os.environ.get("PREFECT_API_URL") and not temporary_server:
        raise UsageError(
            "serve needs a Prefect API that keeps schedules and history: set PREFECT_API_URL "
            "(e.g. http://127.0.0.1:4200/api, from `prefect server start`), or pass --temporary-server for a "
            "throwaway one"
        )
    settings = Settings.load(config)
    preflight_run(settings, embedded=True, waiting=_waiting)
    if config:
        # The served flows load their configuration themselves, at each run.
        os.environ["CMESYNC_CONFIG"] = str(config.resolve())
    from prefect import serve as prefect_serve

    from flows.deployments import PREFECT_FILE, DeploymentFileError, runner_deployments

    try:
        deployments = runner_deployments(prefect_file or PREFECT_FILE, tuple(only or ()))
    except DeploymentFileError as err:
        raise UsageError(str(err)) from None
    names = [d.name for d in deployments]
    if json_:
        _emit_json({"serving": names, "prefect_file": str(prefect_file or PREFECT_FILE)})
        sys.stdout.flush()
    console.print(f"serving {', '.join(names)} from {prefect_file or PREFECT_FILE}")
    try:
        # Prefect's serve prints its banner on stdout, which belongs to --json: it goes to stderr instead.
        with contextlib.redirect_stdout(sys.stderr) if json_ else contextlib.nullcontext():
            prefect_serve(*deployments)
    except KeyboardInterrupt:
        console.print("stopped")
    return 0


@command(
    app,
    "stream",
    "consume cme.attendance.v1 continuously until SIGTERM",
    "Run the stream flow in the foreground: reconcile events as they arrive, publish and deliver the "
    "credits. On SIGTERM or Ctrl-C it finishes and commits the batch in hand, delivers what it produced, "
    "prints the counts and exits 0. With `[metrics] port` set it serves Prometheus metrics on /metrics.",
    "  cmesync stream --config prod.toml\n  cmesync stream --delivery-interval 2",
)
def stream(
    delivery_interval: Annotated[
        float, typer.Option("--delivery-interval", metavar="SECONDS", help="delivery pass at least this often")
    ] = 5.0,
    config: ConfigOption = None,
    json_: JsonOption = False,
    log_format: LogFormatOption = None,
) -> int:
    quiet_prefect()
    from flows import cli_render as render
    from flows.stream import stream_reconciliation

    config_path = str(config) if config else None
    counts = stream_reconciliation(config_path=config_path, delivery_interval_s=delivery_interval)
    if json_:
        _emit_json(counts)
    else:
        render.counts_table("stream reconciliation", counts)
    return 0


# -- recover, republish (flows/cli_broker.py) --------------------------------------------------------------------


@command(
    app,
    "recover",
    "detect data the broker lost and rewind the sources to re-read it",
    cli_broker.RECOVER_HELP,
    "  cmesync recover --dry-run\n  cmesync recover --config prod.toml --json",
)
def recover(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print what would be rewound; change nothing")] = False,
    config: ConfigOption = None,
    json_: JsonOption = False,
    log_format: LogFormatOption = None,
) -> int:
    return cli_broker.recover(_ledger_settings(config), dry_run, json_)


@command(
    app,
    "republish",
    "rebuild cme.credits.v1 from the ledger",
    cli_broker.REPUBLISH_HELP,
    "  cmesync republish --dry-run\n  cmesync republish --since 2026-11-01",
)
def republish(
    since: Annotated[
        datetime | None,
        typer.Option("--since", parser=moment, metavar="TIME", help="only records reconciled at or after TIME"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count what would be re-emitted; send nothing")] = False,
    config: ConfigOption = None,
    json_: JsonOption = False,
    log_format: LogFormatOption = None,
) -> int:
    return cli_broker.republish(_ledger_settings(config), since, dry_run, json_)


# -- transcript, certificates, export, report --------------------------------------------------------------------


@command(
    app,
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
)
def transcript(
    learner: LearnerArgument,
    profile: Annotated[
        str | None,
        typer.Option("--profile", metavar="ID", help="only this requirement profile (deploy/profiles/ID.toml)"),
    ] = None,
    as_of: Annotated[
        date | None,
        typer.Option("--as-of", parser=day, metavar="DATE", help="evaluate as of DATE (default: today, UTC)"),
    ] = None,
    expires: Annotated[
        date | None,
        typer.Option("--expires", parser=day, metavar="DATE", help="licence expiry, instead of the roster's"),
    ] = None,
    fmt: Annotated[
        Literal["table", "json", "html", "csv"] | None,
        typer.Option("--format", metavar="table|json|html|csv", help="output on stdout (default table)"),
    ] = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
    log_format: LogFormatOption = None,
) -> int:
    from pipeline.reports import transcript_render as render
    from pipeline.reports.transcript import TranscriptError, learner_transcripts, load_inputs
    from reconcile.catalog import CatalogError
    from reconcile.compliance.profiles import ProfileError
    from reconcile.compliance.roster import RosterError

    chosen = _output_format(json_, fmt, "table")
    settings = _ledger_settings(config)
    on = as_of or datetime.now(UTC).date()
    try:
        inputs = load_inputs(settings)
    except (ProfileError, RosterError, CatalogError) as err:
        raise ConfigError(str(err)) from None
    try:
        result = _with_ledger(
            settings, lambda ledger: learner_transcripts(ledger, inputs, learner, on, profile, expires)
        )
    except TranscriptError as err:
        raise UsageError(str(err)) from None
    if chosen == "json":
        _emit_json(render.as_dict(result))
    elif chosen == "csv":
        sys.stdout.write(render.as_csv(result))
    elif chosen == "html":
        sys.stdout.write(render.as_html(result))
    else:
        render.print_table(result, Console())
    return 1 if result.at_risk else 0


@command(
    app,
    "certificates",
    "a learner's certificates of completion as PDF files",
    cli_certificates.HELP,
    "  cmesync certificates EH-0001 --out certificates/\n"
    "  cmesync certificates b2c4bbaa --activity ACT-002 --per-activity --out certificates/ --json",
)
def certificates(
    learner: LearnerArgument,
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="directory for the PDF files")],
    activity: Annotated[
        str | None, typer.Option("--activity", metavar="ID", help="only the credits of this catalog activity")
    ] = None,
    per_activity: Annotated[bool, typer.Option("--per-activity", help="one certificate per activity")] = False,
    config: ConfigOption = None,
    json_: JsonOption = False,
    log_format: LogFormatOption = None,
) -> int:
    from pipeline.reports.certificates import CertificateError
    from pipeline.reports.transcript import TranscriptError

    try:
        return cli_certificates.run(_ledger_settings(config), learner, activity, per_activity, out, json_)
    except (CertificateError, TranscriptError) as err:
        raise UsageError(str(err)) from None


@command(
    app,
    "export",
    "pending PARS / CE Broker deliveries as a file to upload by hand",
    cli_export.HELP,
    "  cmesync export pars --activity ACT-002 --format xlsx --out pars-ACT-002.xlsx\n"
    "  cmesync export cebroker --format tsv --out roster.tsv --json",
)
def export(
    channel: Annotated[
        cli_export.Channel,
        typer.Argument(metavar="CHANNEL", help="pars (learner file) or cebroker (roster file)"),
    ],
    file_format: Annotated[FileFormat, typer.Option("--format", metavar="xlsx|tsv", help="file format")],
    out: Annotated[Path, typer.Option("--out", metavar="FILE", help="the file to write")],
    activity: Annotated[
        str | None, typer.Option("--activity", metavar="ID", help="only the records of this catalog activity (pars)")
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option("--registry", metavar="NAME", help="the registry, when several of that kind are configured"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="write the file, mark nothing exported")] = False,
    config: ConfigOption = None,
    json_: JsonOption = False,
    log_format: LogFormatOption = None,
) -> int:
    return cli_export.run(
        _ledger_settings(config), channel, activity, file_format, out, registry, dry_run, as_json=json_
    )


@command(
    app,
    "report",
    "render the HTML report of a past run again",
    "Render the report of a past run from the ledger again — the outcome first, charts of deliveries per "
    "registry, dead letters by reason and the last 30 runs, then the tables — into the reports directory, "
    "under the name the run gave it. By default the latest run; --run picks one by id or the prefix reports "
    "and `cmesync status` print; --last N the N most recent (not both).\n"
    "Exit code 0: every run reported succeeded (or is still running); 1: one was partial or failed; 2: no "
    "such run, bad arguments or configuration.",
    "  cmesync report\n  cmesync report --run 0f9e8d7c\n  cmesync report --last 7 --json",
)
def report(
    run_id: Annotated[
        str | None, typer.Option("--run", metavar="ID", help="the run with this id (or unique prefix)")
    ] = None,
    last: Annotated[
        int | None,
        typer.Option("--last", parser=positive, metavar="N", help="the N most recent runs (default 1)"),
    ] = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
    log_format: LogFormatOption = None,
) -> int:
    from flows import cli_render as render
    from pipeline.stages.past_reports import RunNotFound, chosen_runs, rerender

    if run_id is not None and last is not None:
        raise typer.BadParameter("not allowed with --run", param_hint="--last")
    settings = _ledger_settings(config)
    try:
        runs = _with_ledger(settings, lambda ledger: chosen_runs(ledger, run_id, last or 1))
    except RunNotFound as err:
        raise UsageError(str(err)) from None
    with console.status(f"rendering {len(runs)} run reports"):
        reports = rerender(settings, runs)
    if json_:
        _emit_json([r.as_dict() for r in reports])
    else:
        render.rendered_reports(reports)
    return 0 if all(r.ok for r in reports) else 1


def main(argv: list[str] | None = None) -> int:
    """`cmesync ARGV` (default: the process's arguments); the exit code. The console script and the tests'
    in-process runner (tests/in_process.py) both come through here; Typer ends every command by SystemExit."""
    try:
        typer.main.get_command(app).main(args=argv, prog_name="cmesync")
    except SystemExit as ended:
        return ended.code if isinstance(ended.code, int) else 0 if ended.code is None else 1
    return 0  # not reached: standalone, Typer exits even when all went well


def _log_format(config: Path | None, log_format: str | None, log_level: str | None) -> None:
    """JSON log lines on stderr when asked (flag, else `[logging] format`); messages of this CLI included."""
    chosen = log_format
    if chosen is None:
        try:
            chosen = Settings.load(config).logging.format
        except ConfigError:
            return  # the command itself reports the configuration error, as it always did
    if chosen != "json":
        return
    use_json_logs(own_level=None if log_level else "INFO")
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
    HTTP endpoint (the ledger's: the driver's first line only, see LedgerUnavailable)."""
    from kafka.errors import KafkaError

    from connectors.http import APIError
    from ledger.errors import LedgerUnavailable

    if (unavailable := LedgerUnavailable.of(err)) is not None:
        return f"ledger: {unavailable}"
    if isinstance(err, KafkaError):
        return f"kafka broker: {type(err).__name__}: {err}"
    if isinstance(err, APIError):
        return str(err)
    return None


if __name__ == "__main__":
    sys.exit(main())
