"""AMA PRA-style physician registry (ACCME PARS-like): AMA PRA credits of MD/DO learners by NPI or board id.

Learner records go as PARS learner reports (`pars_mapping`: the draft `ACCMELearnerReports` schema), added or
deleted, never updated. How a batch goes out (each step one batched call, each report idempotent on its
`CreditID`, `ccid:<record_id>:<version>`):
1. activities not yet registered by this connector are registered (registering again is harmless);
2. records cannot be edited, so a later version of an award first deletes whatever older version is held
   (delete + add; when re-delivering for the nightly repair, the same version too);
3. revocations are deletions at the revoking version (`deleteLearnerActivity`); 4. awards are added
   (`saveLearnerActivity`).

Which activities are registered is remembered per process, but the registry is the judge: a registry restored
from an old backup, or restarted empty, answers "activity is not registered" for an activity we registered.
Those awards are not rejected on the spot: the activities are forgotten, registered again, and the awards sent
once more; only what is still refused then is a rejection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import Any, Literal

from pydantic import Field

from connectors.config import ConfigError, RegistryBaseConfig, Wiring, registry_kind, secret
from connectors.http import APIError, HttpClient
from connectors.registries.base import (
    CreditRecord,
    Failure,
    HttpRegistry,
    Outcomes,
    Receipt,
    RegistryEntry,
    failed,
    failures,
    idempotency_key,
    rejected,
)
from connectors.registries.pars_mapping import (
    ADD,
    DELETE,
    MOC,
    board_of,
    consented,
    credit_id,
    deletion_of,
    is_moc,
    learner_report,
    learner_reports,
)
from connectors.registries.reporting_year import YearClose
from reconcile.boards import CERTIFYING_BOARDS, REPORTED_ONCE
from reconcile.vocabulary import (
    AWARDED,
    BOARD_REPORTED_ONCE,
    CONSENT_MISSING,
    REGISTRY_REJECTED,
    REVOKED,
    UNKNOWN_BOARD,
)

SAVE_PATH = "/v1/saveLearnerActivity"
DELETE_PATH = "/v1/deleteLearnerActivity"
STATUS_PATH = "/v1/getLearnerStatus"
ACCEPTED = ("accepted", "duplicate", "deleted")

# What the registry says when a credit names an activity it does not know (PARS: "activity not found").
UNREGISTERED_ACTIVITY = "activity is not registered"
# What it says when a board taking one report per learner and activity (ABP) already has this learner's.
REPORTED_ONCE_ERROR = "one report per learner and activity"


class AmaPraRegistry(HttpRegistry):
    credit_types = frozenset({"AMA_PRA_1", "AMA_PRA_2", MOC})
    holdings_path = "/v1/holdings"
    holdings_key = "entries"

    def __init__(
        self,
        name: str,
        client: HttpClient,
        page_size: int = 200,
        provider_organization: str = "1000001",
        decision_window: timedelta = timedelta(days=2),
        on_add_accepted: Callable[[], None] = lambda: None,
        year_close: YearClose | None = None,
        today: Callable[[], date] = date.today,
        decision_poll_interval: timedelta = timedelta(hours=1),
    ) -> None:
        super().__init__(name, client, page_size)
        self.provider_organization = provider_organization
        self.decision_window = decision_window
        self.decision_poll_interval = decision_poll_interval
        self.year_close = year_close
        self._today = today
        # A test hook (pipeline/stages/faults.py): called once PARS has answered a batch of adds, before any is
        # recorded.
        self._on_add_accepted = on_add_accepted
        self._registered: set[str] = set()

    def accepts(self, record: CreditRecord) -> bool:
        learner = record["learner"]
        if is_moc(record):
            return bool(learner.get("board_id"))
        return record["credit_type"] in self.credit_types and bool(learner.get("npi") or learner.get("board_id"))

    def board_hold(self, record: CreditRecord) -> Failure | None:
        """MOC points that must not reach a board: no certifying board named, or no consent. The credit rules
        hold such MOC before it becomes a record; this guards what was decided before the learner's answer
        changed, so that nothing reaches a board without consent. A deletion always goes."""
        if not (is_moc(record) and record["status"] == AWARDED):
            return None
        learner = record["learner"]
        if board_of(learner) is None:
            message = f"MOC goes to one of {', '.join(CERTIFYING_BOARDS)}: the learner's board is not known"
            return Failure(record["record_id"], record["version"], UNKNOWN_BOARD, message)
        if not consented(learner):
            message = f"the learner's consent to report MOC to {board_of(learner)} is not given"
            return Failure(record["record_id"], record["version"], CONSENT_MISSING, message)
        return None

    def withdraw(self, entries: Sequence[RegistryEntry]) -> list[Receipt | Failure]:
        records = [e.as_record() for e in entries]
        reports = [deletion_of(e.record_id, e.version, e.raw.get("report")) for e in entries]
        outcomes = self._delete(records, reports)
        return [outcomes.get(idempotency_key(r)) or Receipt(r["record_id"], r["version"], "deleted") for r in records]

    def rejections(self, sent: Sequence[tuple[str, int]]) -> list[Failure]:
        """`getLearnerStatus` for records sent lately: those the board rejected, with its reason. An APIError
        propagates: the decisions are asked again on the next run."""
        failed: list[Failure] = []
        for start in range(0, len(sent), self.page_size):
            chunk = sent[start : start + self.page_size]
            body = self.client.post_json(STATUS_PATH, {"CreditID": [credit_id(rid, v) for rid, v in chunk]})
            decided = {result["CreditID"]: result for result in body["results"]}
            for record_id, version in chunk:
                result = decided.get(credit_id(record_id, version)) or {}
                if result.get("status") == "Rejected":
                    reason = f"rejected by the board: {result.get('reason') or 'no reason given'}"
                    failed.append(Failure(record_id, version, REGISTRY_REJECTED, reason))
        return failed

    # -- the steps of one batch ----------------------------------------------------------------------------

    def _send(self, batch: Sequence[CreditRecord], replace: bool) -> list[Receipt | Failure]:
        outcomes = self._closed_years(batch)
        outcomes |= {idempotency_key(r): hold for r in batch if (hold := self.board_hold(r)) is not None}
        outcomes |= self._register_activities(
            [r for r in batch if r["status"] == AWARDED and idempotency_key(r) not in outcomes]
        )
        pending = [r for r in batch if idempotency_key(r) not in outcomes]
        # With `replace`, the version held may be this very one (altered in place), so it goes as well.
        # A board taking one report per learner and activity (ABP) never gets a delete + add: the report held
        # stands, and the registry refuses a second one (BOARD_REPORTED_ONCE).
        clear = [
            r for r in pending if (replace or (r["status"] == AWARDED and r["version"] > 1)) and not reported_once(r)
        ]
        below = 0 if replace else 1
        org = self.provider_organization
        outcomes |= self._delete(clear, [learner_report(r, DELETE, org, r["version"] - below) for r in clear])
        pending = [r for r in pending if idempotency_key(r) not in outcomes]
        revocations = [r for r in pending if r["status"] == REVOKED]
        awards = [r for r in pending if r["status"] == AWARDED]
        outcomes |= self._post(DELETE_PATH, revocations, DELETE)
        outcomes |= self._post(SAVE_PATH, awards, ADD)
        if awards:
            self._on_add_accepted()
        forgotten = [r for r in awards if _unregistered(outcomes[idempotency_key(r)])]
        if forgotten:
            self._registered -= {r["activity_id"] for r in forgotten}
            again = self._register_activities(forgotten)
            outcomes |= again
            resend = [r for r in forgotten if idempotency_key(r) not in again]
            outcomes |= self._post(SAVE_PATH, resend, ADD)
        return [outcomes[idempotency_key(r)] for r in batch]

    def _closed_years(self, batch: Sequence[CreditRecord]) -> Outcomes:
        """Awards completed in a year the registry no longer takes: refused here, never sent. Deletions still
        go (our choice: the public record does not say PARS refuses them)."""
        if self.year_close is None:
            return {}
        close = self.year_close
        return {
            idempotency_key(r): rejected(r, close.reason(r["completed_on"].year)) for r in batch if self.year_closed(r)
        }

    def year_closed(self, record: CreditRecord) -> bool:
        """An award completed in a year the registry no longer takes (refused before sending)."""
        close = self.year_close
        return (
            close is not None
            and record["status"] == AWARDED
            and close.is_closed(record["completed_on"].year, self._today())
        )

    def _register_activities(self, awards: Sequence[CreditRecord]) -> Outcomes:
        titles = {r["activity_id"]: r["activity_title"] for r in awards if r["activity_id"] not in self._registered}
        if not titles:
            return {}
        body = [{"activity_id": activity_id, "title": title} for activity_id, title in titles.items()]
        waiting = [r for r in awards if r["activity_id"] in titles]
        try:
            results = self.client.post_json("/v1/activities", {"activities": body})["results"]
        except APIError as err:
            return failed(waiting, err)
        errors: dict[str, str] = {}
        for result in results:
            if result["outcome"] in ("registered", "already_registered"):
                self._registered.add(result["activity_id"])
            else:
                errors[result["activity_id"]] = f"activity registration: {result.get('error')}"
        return {
            idempotency_key(r): rejected(r, errors.get(r["activity_id"], "activity registration: no result returned"))
            for r in waiting
            if r["activity_id"] not in self._registered
        }

    def _delete(self, records: Sequence[CreditRecord], reports: list[dict[str, Any]]) -> Outcomes:
        """Failures only: a record whose held versions could not be deleted must not be added again."""
        outcomes: Outcomes = {}
        for record, result in zip(records, self._reports(DELETE_PATH, records, reports), strict=True):
            if isinstance(result, Failure):
                outcomes[idempotency_key(record)] = result
            elif result["outcome"] == "rejected":
                outcomes[idempotency_key(record)] = rejected(record, f"deletion: {result.get('error')}")
        return outcomes

    def _post(self, path: str, records: Sequence[CreditRecord], action: str) -> Outcomes:
        """Awards (`add`) or revocations (`delete` of the record at its revoking version), each answered."""
        reports = [learner_report(r, action, self.provider_organization) for r in records]
        outcomes: Outcomes = {}
        for record, result in zip(records, self._reports(path, records, reports), strict=True):
            key = idempotency_key(record)
            if isinstance(result, Failure):
                outcomes[key] = result
            elif result["outcome"] in ACCEPTED:
                outcomes[key] = Receipt(record["record_id"], record["version"], result["receipt_id"])
            elif result["outcome"] == "nothing_to_delete":
                outcomes[key] = rejected(record, "stale version: a later version is held")
            elif REPORTED_ONCE_ERROR in str(result.get("error")):
                outcomes[key] = Failure(record["record_id"], record["version"], BOARD_REPORTED_ONCE, result["error"])
            else:
                outcomes[key] = rejected(record, str(result.get("error")))
        return outcomes

    def _reports(
        self, path: str, records: Sequence[CreditRecord], reports: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any] | Failure]:
        """The registry's result for each report, in order, matched by CreditID; a failure where none came."""
        if not reports:
            return []
        try:
            body = self.client.post_json(path, learner_reports(reports))
        except APIError as err:
            return list(failures(records, err))  # type: ignore[arg-type]
        by_id = {result.get("CreditID"): result for result in body["results"]}
        answers: list[dict[str, Any] | Failure] = []
        for record, report in zip(records, reports, strict=True):
            result = by_id.get(report["Activity"]["CreditCertificate"][0]["CreditID"])
            answers.append(result if result is not None else rejected(record, "no result returned"))
        return answers


def reported_once(record: CreditRecord) -> bool:
    """MOC for a board that takes one report per learner and activity."""
    return is_moc(record) and board_of(record["learner"]) in REPORTED_ONCE


def _unregistered(outcome: Receipt | Failure) -> bool:
    return isinstance(outcome, Failure) and UNREGISTERED_ACTIVITY in outcome.message


@registry_kind
class AmaRegistryConfig(RegistryBaseConfig):
    kind: Literal["ama_pra"] = "ama_pra"
    token: str = ""
    provider_organization: str = Field("1000001", pattern=r"^[0-9]{7}$", description="Our 7-digit ACCME id.")
    decision_window_hours: int = Field(48, ge=1, description="How long after sending the board's decision is asked.")
    decision_poll_minutes: int = Field(60, ge=0, description="At most one board-decision query per this many minutes.")
    year_close: str = Field(
        "03-31",
        pattern=r"^([0-9]{2}-[0-9]{2})?$",
        description='MM-DD the previous year closes; "": none (PARS judges).',
    )
    token_env: str | None = None

    def secret(self) -> str:
        return secret(self.token_env, self.token, f"registry {self.name} token")

    def year_close_of(self) -> YearClose | None:
        if not self.year_close:
            return None
        try:
            return YearClose.parse(self.year_close)
        except ValueError:
            raise ConfigError(f"registry {self.name}: year_close {self.year_close} is not a day of the year") from None

    def build(self, wiring: Wiring) -> AmaPraRegistry:
        return AmaPraRegistry(
            self.name,
            self.client(wiring, headers={"Authorization": f"Bearer {self.secret()}"}),
            self.page_size,
            self.provider_organization,
            timedelta(hours=self.decision_window_hours),
            on_add_accepted=lambda: wiring.crash_point("pars.add_accepted"),
            year_close=self.year_close_of(),
            decision_poll_interval=timedelta(minutes=self.decision_poll_minutes),
        )
