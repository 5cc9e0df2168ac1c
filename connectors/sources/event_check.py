"""What every AttendanceEvent must satisfy, whoever produced it: our connectors (after their own parsing) and
providers that push events straight onto `cme.attendance.v1`, whose events fit the Avro contract but were
never through our field parsers. The same field rules apply, so a pushed event and a pulled one with the same
flaw get the same reason code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from connectors.sources import fields as f
from connectors.sources.base import RecordError
from reconcile.vocabulary import SCHEMA_INVALID

# A completion's duration can add up sessions over days (xAPI result.duration); beyond this it is an error.
# Joined/left segments are held to fields.MAX_MINUTES.
MAX_EVENT_MINUTES = 14 * 24 * 60
_TEXT_FIELDS = ("event_id", "source", "source_ref", "activity_ref", "voids_event_id")


def check_event(event: Mapping[str, Any]) -> None:
    """Raise RecordError (reason names the field, never its value) unless the event is usable."""
    for name in _TEXT_FIELDS:
        f.text(event.get(name), name)
    learner = event.get("learner") or {}
    f.npi(learner.get("npi"), "learner.npi")
    f.email(learner.get("email"), "learner.email")
    f.text(learner.get("board_id"), "learner.board_id")
    f.person_name(learner.get("given_name"), "learner.given_name")
    f.person_name(learner.get("family_name"), "learner.family_name")
    f.dob_month_day(learner.get("dob_month_day"), "learner.dob_month_day")
    f.text(learner.get("profession"), "learner.profession")
    f.text(learner.get("board"), "learner.board")
    licence = learner.get("licence") or {}
    for part in ("number", "state", "profession"):
        f.text(licence.get(part), f"learner.licence.{part}")
    minutes = event.get("minutes")
    if minutes is not None:
        if not math.isfinite(minutes):
            raise RecordError(SCHEMA_INVALID, "minutes must be a finite number")
        f.plausible_minutes(minutes, "minutes", MAX_EVENT_MINUTES)
    started, ended = event.get("started_at"), event.get("ended_at")
    if (started is None) != (ended is None):
        raise RecordError(SCHEMA_INVALID, "started_at and ended_at come together or not at all")
    if started is not None and ended is not None:
        f.segment_minutes(started, ended, "segment")
    for claim in event.get("claimed") or ():
        f.text(claim.get("credit_type"), "claimed.credit_type", required=True)
        amount = claim.get("amount")
        if not (isinstance(amount, int | float) and math.isfinite(amount) and amount > 0):
            raise RecordError(SCHEMA_INVALID, "claimed.amount must be a finite number more than 0")
