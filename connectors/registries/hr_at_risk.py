"""Employer HR: the staff whose licence cycle is at risk (or overdue), as their own signed message beside the
credit events (same endpoint, same HMAC signing: `employer_hr.HmacSigner` on the client).

    POST /v1/webhooks/compliance-at-risk  {"notices": [notice, ...]}  →  {"results": [{notice_id, outcome, ...}]}

A notice carries what HR already has or needs to act on: the employee id, the requirement profile, the cycle,
the standing and what is missing, never an NPI, licence number, e-mail or name. Its `notice_id` is the
idempotency key, one per learner, cycle and day, so a rerun the same day is a duplicate at the receiver and
the next day's notice is a new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from connectors.http import APIError, HttpClient

NOTICES_PATH = "/v1/webhooks/compliance-at-risk"
NOTICE_TYPE = "compliance.at_risk"
ACCEPTED = ("received", "duplicate")


@dataclass(frozen=True)
class AtRiskNotice:
    employee_id: str
    employer: str
    profile: str
    cycle_start: date
    deadline: date
    as_of: date
    standing: str  # "at risk" or "overdue"
    days_to_deadline: int
    missing: tuple[tuple[str, Decimal], ...]  # requirement name, amount still missing

    @property
    def notice_id(self) -> str:
        """Per learner (the employer's employee id), cycle (profile and deadline) and day."""
        return f"at-risk:{self.employee_id}:{self.profile}:{self.deadline.isoformat()}:{self.as_of.isoformat()}"

    def body(self) -> dict[str, Any]:
        return {
            "notice_id": self.notice_id,
            "type": NOTICE_TYPE,
            "employee_id": self.employee_id,
            "employer": self.employer,
            "profile": self.profile,
            "cycle_start": self.cycle_start.isoformat(),
            "deadline": self.deadline.isoformat(),
            "as_of": self.as_of.isoformat(),
            "standing": self.standing,
            "days_to_deadline": self.days_to_deadline,
            "missing": [{"requirement": name, "missing": f"{amount:.2f}"} for name, amount in self.missing],
        }


@dataclass(frozen=True)
class NoticeResult:
    notice_id: str
    receipt_id: str | None  # None: not accepted, see `error`
    error: str | None = None

    @property
    def sent(self) -> bool:
        return self.receipt_id is not None


def send_notices(client: HttpClient, notices: Sequence[AtRiskNotice], batch_size: int) -> list[NoticeResult]:
    """One signed request per `batch_size` notices; an unreachable endpoint fails that batch's notices (the
    error names the call, never a notice's content), a rejected notice fails alone."""
    results: list[NoticeResult] = []
    for start in range(0, len(notices), batch_size):
        batch = notices[start : start + batch_size]
        try:
            answers = client.post_json(NOTICES_PATH, {"notices": [n.body() for n in batch]})["results"]
            if len(answers) != len(batch):
                raise ValueError(f"HR endpoint answered {len(answers)} results for {len(batch)} notices")
        except (APIError, ValueError, KeyError, TypeError) as err:
            results += [NoticeResult(n.notice_id, None, f"{type(err).__name__}: {err}") for n in batch]
            continue
        for notice, answer in zip(batch, answers, strict=True):
            if answer.get("outcome") in ACCEPTED and answer.get("receipt_id"):
                results.append(NoticeResult(notice.notice_id, str(answer["receipt_id"])))
            else:
                results.append(NoticeResult(notice.notice_id, None, f"{answer.get('outcome')}: {answer.get('error')}"))
    return results
