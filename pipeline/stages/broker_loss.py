"""Broker loss detection and recovery: compare what the ledger knows it produced to and reconciled from Kafka
(`ledger.watermarks`) with what the broker holds now, before a run reconciles anything.

A broker that forgot (the embedded Tansu on memory storage after a restart; a cluster whose retention is
shorter than the gap to a rerun; a topic deleted and recreated) shows as:

- TOPIC_BEHIND: a partition ends below what the ledger knows was acknowledged there. Its events from the
  ledger's reconciled offset on are gone; the partition is a new epoch, numbered afresh.
- LOG_START_PAST_LEDGER: the log starts past the ledger's reconciled offset (retention deleted unread events).
- GROUP_OFFSETS_GONE: the consumer group has no offsets while the ledger has reconciled from the partition;
  nothing is lost yet (the reconciler re-reads from the log start, duplicates skipped by event key).
- CREDIT_STREAM_BEHIND: cme.credits.v1 ends below what the ledger published there.

Recovery: every source is rewound to the cursor of its first page whose events are not all in the ledger (the
pull's cursor history), so the next pull reads the lost window again; the reconciler's event-key dedupe makes
re-reading safe. The credit stream is rebuilt from the ledger (`pipeline.stages.republish`). Each finding is recorded
as a dead letter (stage `reconcile`, source the topic) naming the lost window; the nightly run resolves them
once it has re-pulled and reconciled, and still ends Failed so that the loss is never silent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ledger.checkpoints import rewind_checkpoint
from ledger.dead_letters import DeadLetterEntry, resolve_open, upsert_dead_letters
from ledger.store import Ledger
from ledger.watermarks import (
    PulledPage,
    Watermark,
    forget_pages,
    pulled_pages,
    set_watermark,
    watermarks,
)
from pipeline.config import Settings
from pipeline.kafka.lag import PartitionLag, consumer_lag
from pipeline.kafka.security import kafka_python_options
from pipeline.kafka.topics import ATTENDANCE_TOPIC, CREDITS_TOPIC
from pipeline.stages.republish import count_latest_published
from reconcile.vocabulary import CREDIT_STREAM_BEHIND, GROUP_OFFSETS_GONE, LOG_START_PAST_LEDGER, TOPIC_BEHIND

# Findings are dead letters of the reconcile stage (the dead-letter schema's stages are an Avro enum that
# consumers of cme.deadletter.v1 know), told apart by their reason codes, with the topic as their source.
STAGE = "reconcile"
REASON_CODES = (TOPIC_BEHIND, LOG_START_PAST_LEDGER, GROUP_OFFSETS_GONE, CREDIT_STREAM_BEHIND)


class BrokerDataLost(RuntimeError):
    """The broker had lost data the ledger relied on; the run recovered what it could and fails to say so."""


@dataclass(frozen=True)
class Loss:
    topic: str
    partition: int
    reason_code: str
    lost_from: int  # the lost window, in the ledger's (old) numbering: [lost_from, lost_to)
    lost_to: int
    broker_start: int
    broker_end: int

    @property
    def description(self) -> str:
        where = f"{self.topic}[{self.partition}]"
        window = (
            f"offsets {self.lost_from}..{self.lost_to - 1} not yet reconciled are gone"
            if self.lost_to > self.lost_from
            else "nothing unreconciled was lost"
        )
        held = f"broker holds {self.broker_start}..{self.broker_end}"
        return {
            TOPIC_BEHIND: f"{where} ends at {self.broker_end}, below the {self.lost_to} the ledger produced: {window}",
            LOG_START_PAST_LEDGER: f"{where} starts at {self.broker_start}, past the reconciled offset: {window}",
            GROUP_OFFSETS_GONE: f"{where}: the consumer group's offsets are gone ({held}); re-read from the log start",
            CREDIT_STREAM_BEHIND: f"{where} ends at {self.broker_end}, below the {self.lost_to} the ledger published",
        }[self.reason_code] + ("" if self.reason_code == GROUP_OFFSETS_GONE else f" ({held})")

    def dead_letter(self) -> DeadLetterEntry:
        ref = f"partition {self.partition} offsets {self.lost_from}..{self.lost_to}"
        return DeadLetterEntry(STAGE, self.topic, ref, self.reason_code, self.description, b"")


@dataclass(frozen=True)
class Rewind:
    source: str
    to_cursor: str | None  # None: the source's beginning
    pages: int  # acknowledged pages to be pulled again


@dataclass
class Assessment:
    losses: list[Loss] = field(default_factory=list)
    rewinds: list[Rewind] = field(default_factory=list)
    credits_to_republish: int = 0
    stale_pages: list[PulledPage] = field(default_factory=list, repr=False)
    restarted_marks: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict, repr=False)

    @property
    def lost(self) -> bool:
        return bool(self.losses)

    @property
    def unreconciled_lost(self) -> bool:
        """Events the broker lost before the ledger reconciled them (the rewind pulls them again)."""
        return any(loss.lost_to > loss.lost_from for loss in self.losses if loss.topic == ATTENDANCE_TOPIC)

    @property
    def credit_stream_behind(self) -> bool:
        return any(loss.reason_code == CREDIT_STREAM_BEHIND for loss in self.losses)

    def as_dict(self) -> dict[str, Any]:
        return {
            "losses": [{**asdict(loss), "description": loss.description} for loss in self.losses],
            # Cursors are not printed: some sources' cursors carry learner-facing data (file names, tokens).
            "rewinds": [
                {"source": r.source, "rewound_to_beginning": r.to_cursor is None, "pages": r.pages}
                for r in self.rewinds
            ],
            "credits_to_republish": self.credits_to_republish,
        }


def _attendance_losses(
    marks: Mapping[int, Watermark], held: Mapping[int, PartitionLag]
) -> tuple[list[Loss], dict[int, tuple[int, int]]]:
    """Losses on the attendance topic and, per partition whose marks restart, its new (produced, reconciled)."""
    losses: list[Loss] = []
    epochs: dict[int, tuple[int, int]] = {}
    for partition, mark in sorted(marks.items()):
        now = held.get(partition)
        start, end, committed = (now.start, now.end, now.committed) if now else (0, 0, None)
        if end < mark.produced_end:
            losses.append(
                Loss(ATTENDANCE_TOPIC, partition, TOPIC_BEHIND, mark.reconciled_end, mark.produced_end, start, end)
            )
            epochs[partition] = (end, start if committed is None else min(committed, end))
        elif start > mark.reconciled_end and mark.reconciled_end < mark.produced_end:
            lost_to = min(start, mark.produced_end)
            losses.append(
                Loss(ATTENDANCE_TOPIC, partition, LOG_START_PAST_LEDGER, mark.reconciled_end, lost_to, start, end)
            )
            # The window below the log start is pulled again, at new offsets: the marks go on from the log start.
            epochs[partition] = (mark.produced_end, start)
        elif committed is None and mark.reconciled_end > start:  # the group would re-read start..reconciled
            losses.append(
                Loss(
                    ATTENDANCE_TOPIC,
                    partition,
                    GROUP_OFFSETS_GONE,
                    mark.reconciled_end,
                    mark.reconciled_end,
                    start,
                    end,
                )
            )
    return losses, epochs


def _rewinds(pages: list[PulledPage], marks: Mapping[int, Watermark], lost: set[int]) -> tuple[list[Rewind], list[int]]:
    """Per source, back to the first page with an event past the ledger's reconciled offset in a lost
    partition; and the ids of the history rows that the rewind makes stale."""
    first: dict[str, PulledPage] = {}
    counts: dict[str, int] = {}
    for page in pages:  # in id order: the order the pages were acknowledged
        if page.source in first:
            counts[page.source] += 1
        elif any(p in lost and end > marks[p].reconciled_end for p, end in page.ends.items() if p in marks):
            first[page.source], counts[page.source] = page, 1
    rewinds = [Rewind(source, page.from_cursor, counts[source]) for source, page in first.items()]
    stale = [page.page_id for page in pages if page.source in first and page.page_id >= first[page.source].page_id]
    return rewinds, stale


def assess(settings: Settings, ledger: Ledger) -> Assessment:
    """What the broker lost, and what recovery would do; changes nothing."""
    attendance, credits = watermarks(ledger, ATTENDANCE_TOPIC), watermarks(ledger, CREDITS_TOPIC)
    if not attendance and not credits:
        return Assessment()  # a ledger that never used this broker: nothing to compare
    held = {
        (p.topic, p.partition): p
        for p in consumer_lag(
            settings.kafka_bootstrap,
            settings.consumer_group,
            (ATTENDANCE_TOPIC, CREDITS_TOPIC),
            options=kafka_python_options(settings.kafka_security),
        )
    }
    losses, epochs = _attendance_losses(attendance, {p: lag for (tp, p), lag in held.items() if tp == ATTENDANCE_TOPIC})
    assessment = Assessment(losses)
    assessment.restarted_marks = {(ATTENDANCE_TOPIC, p): e for p, e in epochs.items()}
    for partition, mark in sorted(credits.items()):
        now = held.get((CREDITS_TOPIC, partition))
        start, end = (now.start, now.end) if now else (0, 0)
        if end < mark.produced_end:
            assessment.losses.append(
                Loss(CREDITS_TOPIC, partition, CREDIT_STREAM_BEHIND, end, mark.produced_end, start, end)
            )
            assessment.restarted_marks[(CREDITS_TOPIC, partition)] = (end, 0)
    lost = {loss.partition for loss in losses if loss.lost_to > loss.lost_from}
    if lost or epochs:
        pages = pulled_pages(ledger)
        assessment.rewinds, stale = _rewinds(pages, attendance, lost)
        # Marks that restart make the partition's history rows stale: every row past the old reconciled offset
        # belongs to a rewound source, and the rows before it are reconciled.
        forget = set(stale) | {page.page_id for page in pages if set(page.ends) & set(epochs)}
        assessment.stale_pages = [page for page in pages if page.page_id in forget]
    if assessment.credit_stream_behind:
        assessment.credits_to_republish = count_latest_published(ledger, None)
    return assessment


def apply_recovery(ledger: Ledger, assessment: Assessment) -> None:
    """Rewind the sources, start the lost partitions' new epochs and record the findings, in one transaction;
    the credit stream itself is rebuilt by the caller (`pipeline.stages.republish`), which needs a producer."""
    with ledger.transaction() as conn:
        for rewind in assessment.rewinds:
            rewind_checkpoint(ledger, conn, rewind.source, rewind.to_cursor)
        forget_pages(conn, [page.page_id for page in assessment.stale_pages])
        for (topic, partition), (produced, reconciled) in assessment.restarted_marks.items():
            set_watermark(conn, topic, partition, produced, reconciled)
        upsert_dead_letters(conn, [loss.dead_letter() for loss in assessment.losses])


def resolve_findings(ledger: Ledger) -> int:
    """Called by a run that pulled and reconciled after a recovery (its own, or a `cmesync recover` before it):
    the lost windows are back in the ledger, so the findings are dealt with. They stay on record, resolved."""
    return resolve_open(ledger, STAGE, REASON_CODES)
