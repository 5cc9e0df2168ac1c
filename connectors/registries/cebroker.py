"""Nursing contact hours to CE Broker (domain/registries.md §2): XML web services, licensees by profession +
state + full licence number, hours as partial credit by subject-area code.

One batch, in CE Broker's order: License Validation of every licence first (an invalid one is a
`LICENCE_INVALID` failure naming the registry's ErrorCode, and is never sent); the courses next (our activity
id → CE Broker's course number `20-…`); then a lookup of what the board already holds for the batch's entries,
so that an entry already reported is never sent again (a rerun after a crash finds it held under this very
`<record_id>:<version>` and takes that as the receipt; one held under an earlier version is a correction:
deleted, then reported); then the rosters, split into messages under `max_message_bytes`. The return receipt
is read node by node: an empty `Message` is that record delivered, a text is that record refused with the
registry's words, whatever the other nodes of the message say. A revocation deletes the entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field

from connectors.config import RegistryBaseConfig, Wiring, registry_kind, secret
from connectors.http import APIError, HttpClient
from connectors.registries import cebroker_xml as xml
from connectors.registries.base import (
    CreditRecord,
    Failure,
    HttpRegistry,
    Outcomes,
    Receipt,
    RegistryEntry,
    failed,
    idempotency_key,
    rejected,
)
from connectors.registries.cebroker_xml import Attendee, Envelope, MalformedReceipt
from reconcile.vocabulary import AWARDED, LICENCE_INVALID, REVOKED

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
DEFAULT_SUBJECT_AREAS = {"ANCC_CH": "GENERAL", "ANCC_PHARM": "PHARMACOLOGY"}
NOTHING_HELD = "nothing-held"


class CeBrokerRegistry(HttpRegistry):
    """Holdings and the check go through the roster query (XML), not a JSON holdings page."""

    professions = frozenset({"RN", "NP", "CNS"})

    def __init__(
        self,
        name: str,
        client: HttpClient,
        envelope: Envelope,
        *,
        page_size: int = 200,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        subject_areas: Mapping[str, str] | None = None,
        on_message_accepted: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(name, client, page_size)
        self.envelope = envelope
        self.max_message_bytes = max_message_bytes
        self.subject_areas = dict(subject_areas or DEFAULT_SUBJECT_AREAS)
        # Called once a roster message's receipt is read, before the ledger hears of it (the fault suite's
        # crash point between the two).
        self.on_message_accepted = on_message_accepted

    def probe(self) -> object:
        return self._call("roster-query", xml.query(self.envelope, 1, "", ""))

    def accepts(self, record: CreditRecord) -> bool:
        learner = record["learner"]
        return (
            record["credit_type"] in self.subject_areas
            and learner.get("profession") in self.professions
            and bool(learner.get("licence_number") and learner.get("licence_state"))
        )

    def withdraw(self, entries: Sequence[RegistryEntry]) -> list[Receipt | Failure]:
        records = [e.as_record() for e in entries]
        outcomes = self._delete(list(zip(records, [e.raw for e in entries], strict=True)))
        return [outcomes[idempotency_key(r)] for r in records]

    def holdings(self, since: datetime | None = None) -> Iterator[RegistryEntry]:
        changed_since = since.isoformat() if since is not None else ""
        cursor = ""
        while True:
            body = self._call("roster-query", xml.query(self.envelope, self.page_size, changed_since, cursor))
            page, cursor = xml.entries(body)
            for row in page:
                yield _entry(row)
            if not cursor:
                return

    # -- the steps of one batch ----------------------------------------------------------------------------

    def _send(self, batch: Sequence[CreditRecord], replace: bool) -> list[Receipt | Failure]:
        revocations = [r for r in batch if r["status"] == REVOKED]
        valid, outcomes = self._validate([r for r in batch if r["status"] == AWARDED])
        course_ids, refused = self._courses([*revocations, *valid])
        outcomes |= refused

        def entries(records: Sequence[CreditRecord]) -> list[tuple[CreditRecord, Attendee]]:
            return [
                (r, self.attendee(r, course_ids[r["activity_id"]])) for r in records if r["activity_id"] in course_ids
            ]

        outcomes |= self._delete([(record, attendee.key()) for record, attendee in entries(revocations)])
        to_report, settled = self._not_yet_held(entries(valid), replace)
        outcomes |= settled | self._report(to_report)
        return [outcomes[idempotency_key(r)] for r in batch]

    def _validate(self, records: Sequence[CreditRecord]) -> tuple[list[CreditRecord], Outcomes]:
        """The records whose licence CE Broker's License Validation calls valid, and failures for the others."""
        if not records:
            return [], {}
        licences = sorted({_licence(r) for r in records})
        try:
            answers = xml.licence_answers(self._call("license-validation", xml.licensees(self.envelope, licences)))
        except (APIError, MalformedReceipt) as err:
            return [], failed(records, err)
        valid, refused = [], {}
        for record in records:
            is_valid, code, message = answers.get(_licence(record), (False, "", "no answer for this licence"))
            if is_valid:
                valid.append(record)
            else:
                why = f"CE Broker License Validation: ErrorCode {code or 'none'}: {message or 'invalid'}"
                refused[idempotency_key(record)] = Failure(record["record_id"], record["version"], LICENCE_INVALID, why)
        return valid, refused

    def _courses(self, records: Sequence[CreditRecord]) -> tuple[dict[str, str], Outcomes]:
        """CE Broker's course number for each activity of `records` (created if new; a repeat finds it again)."""
        titles = {r["activity_id"]: r["activity_title"] for r in records}
        if not titles:
            return {}, {}
        try:
            answers = xml.course_receipt(self._call("courses", xml.courses(self.envelope, titles)))
        except (APIError, MalformedReceipt) as err:
            return {}, failed(records, err)
        course_ids = {own: number for own, (number, message) in answers.items() if number and not message}
        refused = {
            idempotency_key(r): rejected(
                r, "course: " + (answers.get(r["activity_id"], ("", ""))[1] or "no course number returned")
            )
            for r in records
            if r["activity_id"] not in course_ids
        }
        return course_ids, refused

    def _not_yet_held(
        self, attendees: Sequence[tuple[CreditRecord, Attendee]], replace: bool
    ) -> tuple[list[tuple[CreditRecord, Attendee]], Outcomes]:
        """What still has to be reported, after asking the board what it holds for these entries: held under
        this very reference is delivered already (never sent again); held otherwise (an earlier version, or
        any holding when repairing) is deleted first."""
        if not attendees:
            return [], {}
        try:
            held = self._lookup([attendee.key() for _, attendee in attendees])
        except (APIError, MalformedReceipt) as err:
            return [], failed([r for r, _ in attendees], err)
        outcomes: Outcomes = {}
        to_report, to_delete = [], []
        for record, attendee in attendees:
            holding = held.get(_key_of(attendee.key()))
            if holding is None:
                to_report.append((record, attendee))
            elif holding.get("external_ref") == attendee.external_ref and not replace:
                outcomes[attendee.external_ref] = Receipt(
                    record["record_id"], record["version"], holding["id_attendee"]
                )
            else:
                to_delete.append((record, attendee))
        deleted = self._delete([(record, attendee.key()) for record, attendee in to_delete])
        outcomes |= {key: outcome for key, outcome in deleted.items() if isinstance(outcome, Failure)}
        return to_report + [(r, a) for r, a in to_delete if idempotency_key(r) not in outcomes], outcomes

    def _lookup(self, keys: Sequence[Mapping[str, str]]) -> dict[tuple[str, ...], dict[str, str]]:
        messages, _ = xml.split(
            keys, lambda part: xml.keyed(self.envelope, "roster_lookup", part), self.max_message_bytes
        )
        held: dict[tuple[str, ...], dict[str, str]] = {}
        for _, message in messages:
            rows, _ = xml.entries(self._call("roster-lookup", message))
            held |= {_key_of(row): row for row in rows}
        return held

    def _report(self, attendees: Sequence[tuple[CreditRecord, Attendee]]) -> Outcomes:
        records = {attendee.external_ref: record for record, attendee in attendees}
        messages, too_large = xml.split(
            [attendee for _, attendee in attendees],
            lambda part: xml.rosters(self.envelope, part),
            self.max_message_bytes,
        )
        outcomes: Outcomes = {
            a.external_ref: rejected(
                records[a.external_ref], f"roster entry alone exceeds {self.max_message_bytes} bytes"
            )
            for a in too_large
        }
        for part, message in messages:
            sent = [records[a.external_ref] for a in part]
            try:
                nodes = xml.receipt(self._call("rosters", message))
            except (APIError, MalformedReceipt) as err:
                outcomes |= failed(sent, err)
                continue
            self.on_message_accepted()
            for record in sent:
                outcomes[idempotency_key(record)] = _outcome(record, nodes.get(idempotency_key(record)))
            outcomes |= self._own_earlier_attempts(part, outcomes)
        return outcomes

    def _own_earlier_attempts(self, sent: Sequence[Attendee], outcomes: Outcomes) -> Outcomes:
        """Receipts for refused entries the board holds under this very reference: an attempt of ours whose
        answer was lost (a dropped connection, then the HTTP retry) took effect, so the entry is delivered."""
        refused = [a for a in sent if isinstance(outcomes[a.external_ref], Failure)]
        if not refused:
            return {}
        try:
            held = self._lookup([attendee.key() for attendee in refused])
        except (APIError, MalformedReceipt):
            return {}  # the refusals stand; the next delivery looks up what the board holds first
        receipts: Outcomes = {}
        for attendee in refused:
            holding = held.get(_key_of(attendee.key()))
            if holding is not None and holding.get("external_ref") == attendee.external_ref:
                failure = outcomes[attendee.external_ref]
                receipts[attendee.external_ref] = Receipt(failure.record_id, failure.version, holding["id_attendee"])
        return receipts

    def _delete(self, held: Sequence[tuple[Mapping[str, Any], Mapping[str, str]]]) -> Outcomes:
        """Delete the roster entries `held` (record, entry key); nothing held is fine (a receipt all the same)."""
        if not held:
            return {}
        keyed = [dict(key) | {"external_ref": idempotency_key(record)} for record, key in held]
        messages, _ = xml.split(
            keyed, lambda part: xml.keyed(self.envelope, "roster_deletions", part), self.max_message_bytes
        )
        refs = {idempotency_key(record): record for record, _ in held}
        outcomes: Outcomes = {}
        for part, message in messages:
            part_records = [refs[key["external_ref"]] for key in part]
            try:
                nodes = xml.receipt(self._call("roster-deletions", message))
            except (APIError, MalformedReceipt) as err:
                outcomes |= failed(part_records, err)
                continue
            for record in part_records:
                node = nodes.get(idempotency_key(record))
                receipt = node.id_attendee if node is not None and node.accepted else NOTHING_HELD
                outcomes[idempotency_key(record)] = Receipt(record["record_id"], record["version"], receipt)
        return outcomes

    def attendee(self, record: CreditRecord, course_id: str) -> Attendee:
        """The roster entry of `record` (also a row of the file channel, `pipeline.ops.export`)."""
        learner = record["learner"]
        return Attendee(
            external_ref=idempotency_key(record),
            id_course=course_id,
            license=str(learner.get("licence_number") or ""),
            cebroker_state=str(learner.get("licence_state") or ""),
            licensee_profession=str(learner.get("profession") or ""),
            first_name=str(learner.get("given_name") or ""),
            last_name=str(learner.get("family_name") or ""),
            date_completed=record["completed_on"].strftime("%m/%d/%Y"),
            cd_subject_area=self.subject_areas.get(record["credit_type"], ""),
            hours=f"{Decimal(record['amount']):.2f}",
        )

    def _call(self, service: str, message: bytes) -> bytes:
        response = self.client.request("POST", f"/ws/{service}", data=message, headers={"Content-Type": "text/xml"})
        return response.content


def _licence(record: CreditRecord) -> tuple[str, str, str]:
    learner = record["learner"]
    return (
        str(learner.get("profession") or ""),
        str(learner.get("licence_state") or ""),
        str(learner.get("licence_number") or ""),
    )


def _key_of(row: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(str(row.get(name) or "") for name in xml.KEY_FIELDS)


def _outcome(record: CreditRecord, node: xml.NodeResult | None) -> Receipt | Failure:
    if node is None:
        return rejected(record, "no node for it in the return receipt")
    if node.accepted:
        return Receipt(record["record_id"], record["version"], node.id_attendee)
    return rejected(record, node.message)


def _entry(row: Mapping[str, str]) -> RegistryEntry:
    """An entry in our terms; one not reported under a `<record_id>:<version>` reference is nobody we know."""
    record_id, _, version = str(row.get("external_ref") or "").rpartition(":")
    if not (record_id and version.isdigit()):
        record_id, version = f"entry:{row['id_attendee']}", "0"
    return RegistryEntry(
        record_id,
        int(version),
        AWARDED if row.get("status") == "ACTIVE" else REVOKED,
        row,
        Decimal(row["hours"]).quantize(Decimal("0.01")),
        datetime.strptime(row["date_completed"], "%m/%d/%Y").date(),
    )


@registry_kind
class CeBrokerRegistryConfig(RegistryBaseConfig):
    """CE Broker's XML web services (domain/registries.md §2)."""

    kind: Literal["cebroker"] = "cebroker"
    parent_provider_id: str = Field(pattern=r"^50-[0-9]+$", description="The parent provider, 50-…")
    provider_id: str | None = Field(None, pattern=r"^50-[0-9]+$", description="The course provider; unset = parent.")
    upload_key: str = ""
    upload_key_env: str | None = None
    max_message_bytes: int = Field(MAX_MESSAGE_BYTES, ge=1024, le=MAX_MESSAGE_BYTES, description="Per XML message.")
    subject_areas: dict[str, str] = Field(
        DEFAULT_SUBJECT_AREAS,
        description="Credit type → CE Broker subject-area code (partial credit); other credit types are not sent.",
    )

    def secret(self) -> str:
        return secret(self.upload_key_env, self.upload_key, f"registry {self.name} upload key")

    def build(self, wiring: Wiring) -> CeBrokerRegistry:
        return CeBrokerRegistry(
            self.name,
            self.client(wiring),
            Envelope(self.parent_provider_id, self.provider_id or self.parent_provider_id, self.secret()),
            page_size=self.page_size,
            max_message_bytes=self.max_message_bytes,
            subject_areas=self.subject_areas,
            on_message_accepted=lambda: wiring.crash_point("cebroker.message_accepted"),
        )
