"""`cmesync recover` and `cmesync republish`: the broker-loss commands (`pipeline.stages.broker_loss`,
`pipeline.stages.republish`), kept apart from `flows/cli.py`, which only registers them."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from rich.console import Console

from ledger.store import Ledger
from pipeline.config import Settings

console = Console(stderr=True)

RECOVER_HELP = (
    "Compare what the ledger produced to and reconciled from Kafka with what the broker holds now (partition "
    "ends read from fetch high watermarks, log starts, the consumer group's offsets). If the broker lost data, "
    "rewind every source to the cursor of its first page whose events are not all in the ledger, so that the "
    "next run pulls the lost window again (duplicates are skipped by event key), and record each finding as a "
    "dead letter (stage reconcile, the topic as its source). "
    "The credit stream, if behind, is rebuilt as by `cmesync republish`. The nightly "
    "run does the same by itself before it pulls.\n"
    "Exit code 0: nothing lost, or recovered; 1: --dry-run found a loss (nothing changed); 2: bad arguments."
)
REPUBLISH_HELP = (
    "Re-emit the latest published version of every credit record from the ledger onto cme.credits.v1, with "
    "the same key, version and encoding as the outbox; compaction keeps the latest per key, so consumers see "
    "no change where the stream was intact and the full set where the broker had lost it.\n"
    "Exit code 0: done (or, --dry-run, counted); 2: bad arguments."
)


def add_commands(
    commands: Any,
    command: Callable[..., argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    moment: Callable[[str], datetime],
) -> None:
    recover = command(
        commands,
        "recover",
        "detect data the broker lost and rewind the sources to re-read it",
        RECOVER_HELP,
        "  cmesync recover --dry-run\n  cmesync recover --config prod.toml --json",
        [common],
    )
    recover.add_argument("--dry-run", action="store_true", help="print what would be rewound; change nothing")
    republish = command(
        commands,
        "republish",
        "rebuild cme.credits.v1 from the ledger",
        REPUBLISH_HELP,
        "  cmesync republish --dry-run\n  cmesync republish --since 2026-11-01",
        [common],
    )
    republish.add_argument("--since", type=moment, metavar="TIME", help="only records reconciled at or after TIME")
    republish.add_argument("--dry-run", action="store_true", help="count what would be re-emitted; send nothing")


def recover(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.stages import nightly
    assessment = nightly.check_broker(settings, dry_run=args.dry_run)
    if args.json:
        print(json.dumps({"dry_run": args.dry_run, **assessment.as_dict()}, indent=2))
    elif not assessment.lost:
        console.print("the broker holds everything the ledger knows it produced and reconciled")
    else:
        verb = "would rewind" if args.dry_run else "rewound"
        for loss in assessment.losses:
            console.print(f"[red]lost:[/] {loss.description}")
        for rewind in assessment.rewinds:
            to = "its beginning" if rewind.to_cursor is None else "an earlier cursor"
            console.print(f"{verb} {rewind.source} to {to}: {rewind.pages} pages to pull again")
        if assessment.credit_stream_behind:
            verb = "would republish" if args.dry_run else "republished"
            console.print(f"{verb} {assessment.credits_to_republish} credit records to cme.credits.v1")
    return 1 if args.dry_run and assessment.lost else 0


def republish(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.factory import codec_for
    from pipeline.kafka.io import make_producer
    from pipeline.stages.republish import count_latest_published, republish_credits

    ledger = Ledger(settings.ledger_url)
    try:
        if args.dry_run:
            records = count_latest_published(ledger, args.since)
        else:
            producer = make_producer(
                settings.kafka_bootstrap, backend=settings.kafka_backend, security=settings.kafka_security
            )
            try:
                records = republish_credits(
                    ledger, producer, codec_for(settings, "credit_record"), args.since, settings.batch_size
                )
            finally:
                producer.close()
    finally:
        ledger.close()
    if args.json:
        print(json.dumps({"dry_run": args.dry_run, "records": records}))
    else:
        console.print(
            f"{'would republish' if args.dry_run else 'republished'} {records} credit records to cme.credits.v1"
        )
    return 0
