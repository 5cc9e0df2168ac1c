"""`cmesync recover` and `cmesync republish`: the broker-loss commands (`pipeline.stages.broker_loss`,
`pipeline.stages.republish`), kept apart from `flows/cli.py`, which declares them and their options."""

from __future__ import annotations

import json
from datetime import datetime

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


def recover(settings: Settings, dry_run: bool, as_json: bool) -> int:
    """Exit code per RECOVER_HELP."""
    from pipeline.stages import nightly

    assessment = nightly.check_broker(settings, dry_run=dry_run)
    if as_json:
        print(json.dumps({"dry_run": dry_run, **assessment.as_dict()}, indent=2))
    elif not assessment.lost:
        console.print("the broker holds everything the ledger knows it produced and reconciled")
    else:
        verb = "would rewind" if dry_run else "rewound"
        for loss in assessment.losses:
            console.print(f"[red]lost:[/] {loss.description}")
        for rewind in assessment.rewinds:
            to = "its beginning" if rewind.to_cursor is None else "an earlier cursor"
            console.print(f"{verb} {rewind.source} to {to}: {rewind.pages} pages to pull again")
        if assessment.credit_stream_behind:
            verb = "would republish" if dry_run else "republished"
            console.print(f"{verb} {assessment.credits_to_republish} credit records to cme.credits.v1")
    return 1 if dry_run and assessment.lost else 0


def republish(settings: Settings, since: datetime | None, dry_run: bool, as_json: bool) -> int:
    """Exit code per REPUBLISH_HELP."""
    from pipeline.factory import codec_for
    from pipeline.kafka.io import make_producer
    from pipeline.stages.republish import count_latest_published, republish_credits

    with Ledger(settings.ledger_url) as ledger:
        if dry_run:
            records = count_latest_published(ledger, since)
        else:
            producer = make_producer(
                settings.kafka_bootstrap, backend=settings.kafka_backend, security=settings.kafka_security
            )
            try:
                records = republish_credits(
                    ledger, producer, codec_for(settings, "credit_record"), since, settings.batch_size
                )
            finally:
                producer.close()
    if as_json:
        print(json.dumps({"dry_run": dry_run, "records": records}))
    else:
        console.print(f"{'would republish' if dry_run else 'republished'} {records} credit records to cme.credits.v1")
    return 0
