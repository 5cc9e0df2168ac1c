"""The pipeline's shared words: every dead-letter reason code, the statuses of a credit record and the states of
a delivery. StrEnums, so a member is its string: the ledger, the Avro records and the JSON output hold the same
text as before, and a code read back from the ledger compares equal to its member.

It lives in `reconcile/` because that is the lowest layer every other one may import (flows → pipeline →
connectors | ledger → reconcile | schemas): connectors raise normalise codes, the reconcile core raises its own
and decides AWARDED/REVOKED, the ledger filters on states. Reason codes and credit statuses are also exported
by name (as `signal` exports its signals): `SCHEMA_INVALID` reads the same at every stage that writes it.
Delivery states are used as `DeliveryState.FAILED`, because "failed" is also a run outcome and a retry outcome.
"""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    """Why a record became a dead letter; stable, so filters, reports and replays can name them."""

    # normalise: a source's record (or a pushed message) that cannot become an AttendanceEvent
    SCHEMA_INVALID = "SCHEMA_INVALID"  # a required field is missing or has the wrong type or form
    UNSUPPORTED_VERB = "UNSUPPORTED_VERB"  # xAPI verb other than completed/passed/attended/voided
    UNSUPPORTED_KIND = "UNSUPPORTED_KIND"  # a mapped status/kind value with no AttendanceEvent kind
    IMPLAUSIBLE_DURATION = "IMPLAUSIBLE_DURATION"  # zero, negative or absurdly long participation
    MISSING_IDENTITY = "MISSING_IDENTITY"  # no identifier the identity rules can match on (also reconcile)
    INVALID_NPI = "INVALID_NPI"  # not 10 digits or a wrong CMS check digit (also reconcile)
    FIELD_TOO_LARGE = "FIELD_TOO_LARGE"  # a value far beyond anything an identifier or ref needs
    MALFORMED_PAGE = "MALFORMED_PAGE"  # a response body that is not JSON or has no record list
    MALFORMED_ROW = "MALFORMED_ROW"  # a CSV row with the wrong number of cells or broken quoting
    ENCODING_INVALID = "ENCODING_INVALID"  # bytes that are not text in any encoding the source accepts
    UNMAPPED_HEADER = "UNMAPPED_HEADER"  # a CSV file whose header lacks a column the mapping requires
    # reconcile: a valid event the catalog, the identity rules or the credit rules cannot credit (yet)
    UNKNOWN_ACTIVITY = "UNKNOWN_ACTIVITY"
    NOT_ACCREDITED = "NOT_ACCREDITED"
    OUTSIDE_ACTIVITY_WINDOW = "OUTSIDE_ACTIVITY_WINDOW"
    IDENTITY_CONFLICT = "IDENTITY_CONFLICT"
    INVALID_CLAIM = "INVALID_CLAIM"
    MISSING_VOID_TARGET = "MISSING_VOID_TARGET"
    MISSING_BOARD_IDENTITY = "MISSING_BOARD_IDENTITY"  # held: decided again when the profile fills in
    UNKNOWN_PROFESSION = "UNKNOWN_PROFESSION"  # held: decided again when the mapping lists the code
    CONSENT_MISSING = "CONSENT_MISSING"  # held MOC: the learner gave no permission to report to the boards
    UNKNOWN_BOARD = "UNKNOWN_BOARD"  # held MOC: the learner's certifying board is absent or not one of the eight
    PARTIAL_BOARD_CREDIT = "PARTIAL_BOARD_CREDIT"  # held MOC: the board (ABP) takes full credit only
    # reconcile, written by the broker-loss check (pipeline/stages/broker_loss.py): the broker lost what the ledger used
    TOPIC_BEHIND = "TOPIC_BEHIND"
    LOG_START_PAST_LEDGER = "LOG_START_PAST_LEDGER"
    GROUP_OFFSETS_GONE = "GROUP_OFFSETS_GONE"
    CREDIT_STREAM_BEHIND = "CREDIT_STREAM_BEHIND"
    # deliver: a registry that refused a credit version or could not take it
    REGISTRY_REJECTED = "REGISTRY_REJECTED"
    REGISTRY_UNAVAILABLE = "REGISTRY_UNAVAILABLE"
    LICENCE_INVALID = "LICENCE_INVALID"  # CE Broker's licence validation refused the learner's licence
    BOARD_REPORTED_ONCE = "BOARD_REPORTED_ONCE"  # ABP takes one report per learner and activity: never a second


class CreditStatus(StrEnum):
    """A credit record version's status (the CreditRecord schema's `CreditStatus` enum)."""

    AWARDED = "AWARDED"
    REVOKED = "REVOKED"


class DeliveryState(StrEnum):
    """A `deliveries` row: one per credit record version and registry."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"  # the registry does not take this record (routing changed since it was written)
    SUPERSEDED = "superseded"  # a newer version of the record replaced it before it went through


SCHEMA_INVALID = ReasonCode.SCHEMA_INVALID
UNSUPPORTED_VERB = ReasonCode.UNSUPPORTED_VERB
UNSUPPORTED_KIND = ReasonCode.UNSUPPORTED_KIND
IMPLAUSIBLE_DURATION = ReasonCode.IMPLAUSIBLE_DURATION
MISSING_IDENTITY = ReasonCode.MISSING_IDENTITY
INVALID_NPI = ReasonCode.INVALID_NPI
FIELD_TOO_LARGE = ReasonCode.FIELD_TOO_LARGE
MALFORMED_PAGE = ReasonCode.MALFORMED_PAGE
MALFORMED_ROW = ReasonCode.MALFORMED_ROW
ENCODING_INVALID = ReasonCode.ENCODING_INVALID
UNMAPPED_HEADER = ReasonCode.UNMAPPED_HEADER
UNKNOWN_ACTIVITY = ReasonCode.UNKNOWN_ACTIVITY
NOT_ACCREDITED = ReasonCode.NOT_ACCREDITED
OUTSIDE_ACTIVITY_WINDOW = ReasonCode.OUTSIDE_ACTIVITY_WINDOW
IDENTITY_CONFLICT = ReasonCode.IDENTITY_CONFLICT
INVALID_CLAIM = ReasonCode.INVALID_CLAIM
MISSING_VOID_TARGET = ReasonCode.MISSING_VOID_TARGET
MISSING_BOARD_IDENTITY = ReasonCode.MISSING_BOARD_IDENTITY
UNKNOWN_PROFESSION = ReasonCode.UNKNOWN_PROFESSION
CONSENT_MISSING = ReasonCode.CONSENT_MISSING
UNKNOWN_BOARD = ReasonCode.UNKNOWN_BOARD
PARTIAL_BOARD_CREDIT = ReasonCode.PARTIAL_BOARD_CREDIT
TOPIC_BEHIND = ReasonCode.TOPIC_BEHIND
LOG_START_PAST_LEDGER = ReasonCode.LOG_START_PAST_LEDGER
GROUP_OFFSETS_GONE = ReasonCode.GROUP_OFFSETS_GONE
CREDIT_STREAM_BEHIND = ReasonCode.CREDIT_STREAM_BEHIND
REGISTRY_REJECTED = ReasonCode.REGISTRY_REJECTED
REGISTRY_UNAVAILABLE = ReasonCode.REGISTRY_UNAVAILABLE
LICENCE_INVALID = ReasonCode.LICENCE_INVALID
BOARD_REPORTED_ONCE = ReasonCode.BOARD_REPORTED_ONCE
AWARDED = CreditStatus.AWARDED
REVOKED = CreditStatus.REVOKED
