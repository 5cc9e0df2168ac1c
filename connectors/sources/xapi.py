"""xAPI 1.0.3 Learning Record Store source: statements oldest first since the stored-time watermark, `more` paging.

Verbs: ADL `completed`, `passed`, `attended` and `voided`; the Activity Streams IRIs of the TinCan registry and
the bare TinCan 0.9 verb strings are accepted as the same verbs. The actor is identified by `mbox`; an
`account` counts when its homePage is mapped to one of our identifiers (e.g. the NPPES site → NPI);
`mbox_sha1sum` cannot be reversed, so such an actor needs an identifier in the context extensions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field

from connectors.config import SourceBaseConfig, Wiring, secret, source_kind
from connectors.http import HttpClient
from connectors.sources import fields as f
from connectors.sources.base import Event, RawRecord, RecordError
from connectors.sources.http_source import NextLink
from connectors.sources.streams import IncrementalHttpSource
from reconcile.vocabulary import MISSING_IDENTITY, SCHEMA_INVALID, UNSUPPORTED_VERB

_ADL = "http://adlnet.gov/expapi/verbs/"
_ACTIVITY_STREAMS = "http://activitystrea.ms/schema/1.0/"
VERB_KINDS = {
    f"{_ADL}completed": "COMPLETED",
    f"{_ADL}passed": "COMPLETED",
    f"{_ADL}attended": "ATTENDED",
    f"{_ADL}voided": "VOIDED",
    f"{_ACTIVITY_STREAMS}complete": "COMPLETED",
    f"{_ACTIVITY_STREAMS}attend": "ATTENDED",
    "completed": "COMPLETED",
    "passed": "COMPLETED",
    "attended": "ATTENDED",
    "voided": "VOIDED",
}
# A completion's result.duration can add up sessions over days; beyond two weeks it is a unit or clock error.
MAX_RESULT_MINUTES = 14 * 24 * 60
ACCOUNT_FIELDS = ("npi", "board_id", "email")
# Learner fields → the name of the context extension (after `extension_prefix`) that carries them.
LEARNER_EXTENSIONS = {
    "npi": "npi",
    "board_id": "board-id",
    "given_name": "given-name",
    "family_name": "family-name",
    "dob_month_day": "dob-month-day",
    "profession": "profession",
    "licence_number": "licence-number",
    "licence_state": "licence-state",
    "board": "board",
    "moc_consent": "moc-consent",
}


class XapiSource(IncrementalHttpSource):
    """Reads statements oldest first from an xAPI LRS; learner details come from context extensions. The
    cursor is the last `stored` instant fully read and the statement ids read at exactly it; `since` is
    exclusive, so a pull starts just before the watermark and skips the ids already read at it."""

    kind = "xapi"
    path = "/xapi/statements"
    records_path = "statements"
    pagination = NextLink("more")
    headers: ClassVar[Mapping[str, str]] = {"X-Experience-API-Version": "1.0.3"}  # an LRS answers 400 without it
    page_size_param = "limit"
    replication_key = "stored"
    since_param = "since"
    is_sorted = True
    lookback = timedelta(milliseconds=1)
    walk_name = "statements"

    def __init__(
        self,
        name: str,
        client: HttpClient,
        page_size: int = 100,
        extension_prefix: str = "https://cmesync.org/xapi/ext/",
        account_identities: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(name, client, page_size)
        self.extension_prefix = extension_prefix
        self.account_identities = {page.rstrip("/"): key for page, key in (account_identities or {}).items()}
        unknown = set(self.account_identities.values()) - set(ACCOUNT_FIELDS)
        if unknown:
            raise ValueError(f"account_identities can map to {', '.join(ACCOUNT_FIELDS)}, not {sorted(unknown)}")

    def url_params(self) -> dict[str, Any]:
        return {**self.page_params(), "ascending": "true"}

    def record_id(self, record: Any) -> str | None:
        statement_id = record.get("id") if isinstance(record, dict) else None
        return statement_id if isinstance(statement_id, str) else None

    def raw_record(self, record: Any, position: str) -> RawRecord:
        """Found again by id; a statement without a usable (short, printable) id, by its position in the walk."""
        statement_id = self.record_id(record)
        if statement_id is not None and len(statement_id) <= 100 and statement_id.isprintable():
            return RawRecord(f"statement:{statement_id}", record)
        return RawRecord(position, record)

    def parse(self, record: RawRecord) -> Iterable[Event]:
        s = record.data
        if not isinstance(s, dict):
            raise RecordError(SCHEMA_INVALID, "statement is not a JSON object")
        statement_id = f.text(s.get("id"), "id", required=True)
        assert statement_id is not None
        verb = s.get("verb")
        verb_id = verb.get("id") if isinstance(verb, dict) else verb
        kind = VERB_KINDS.get(verb_id) if isinstance(verb_id, str) else None
        if kind is None:
            raise RecordError(UNSUPPORTED_VERB, "verb is not one of completed, passed, attended, voided")
        target = s.get("object")
        target_id = f.text(target.get("id"), "object.id", required=True) if isinstance(target, dict) else None
        if target_id is None:
            raise RecordError(SCHEMA_INVALID, "statement has no object id")
        occurred_at = f.instant(s.get("timestamp") or s.get("stored"), "timestamp")
        if kind == "VOIDED":
            if target.get("objectType") != "StatementRef":
                raise RecordError(SCHEMA_INVALID, "a voiding statement's object must be a StatementRef")
            return [
                self.new_event(
                    record, event_id=statement_id, kind=kind, occurred_at=occurred_at, voids_event_id=target_id
                )
            ]
        minutes = None
        result = s.get("result")
        duration = result.get("duration") if isinstance(result, dict) else None
        if duration is not None:
            minutes = f.plausible_minutes(
                f.iso_duration_minutes(duration, "result.duration"), "result.duration", MAX_RESULT_MINUTES
            )
        return [
            self.new_event(
                record,
                event_id=statement_id,
                kind=kind,
                occurred_at=occurred_at,
                learner=self._learner(s),
                activity_ref=target_id,
                minutes=minutes,
            )
        ]

    def _learner(self, statement: Mapping[str, Any]) -> dict[str, Any]:
        actor = statement.get("actor")
        if not isinstance(actor, dict):
            raise RecordError(SCHEMA_INVALID, "statement has no actor")
        if actor.get("objectType") == "Group":
            raise RecordError(MISSING_IDENTITY, "actor is a group, not one learner")
        context = statement.get("context") if isinstance(statement.get("context"), dict) else {}
        extensions = context.get("extensions") if isinstance(context.get("extensions"), dict) else {}

        def ext(name: str) -> Any:
            return extensions.get(self.extension_prefix + name)

        from_account = self._account_identity(actor.get("account"))
        identity = {key: ext(name) for key, name in LEARNER_EXTENSIONS.items()}
        return f.learner(
            identity
            | {
                "npi": identity["npi"] or from_account.get("npi"),
                "email": actor.get("mbox") or from_account.get("email"),
                "board_id": identity["board_id"] or from_account.get("board_id"),
            }
        )

    def _account_identity(self, account: Any) -> dict[str, Any]:
        if not isinstance(account, dict):
            return {}
        identity = self.account_identities.get(str(account.get("homePage", "")).rstrip("/"))
        return {identity: account.get("name")} if identity else {}


@source_kind
class XapiSourceConfig(SourceBaseConfig):
    kind: Literal["xapi"] = "xapi"
    auth: Literal["basic", "bearer"] = Field("basic", description="basic: username/password; bearer: token.")
    username: str = "lrs-demo"
    password: str = ""
    password_env: str | None = None
    context_extension_prefix: str = "https://cmesync.org/xapi/ext/"
    account_identities: dict[str, Literal["npi", "board_id", "email"]] = Field(
        default_factory=dict, description="Actor account homePage → which learner identifier its name is."
    )

    def secret(self) -> str:
        if self.auth == "bearer":
            return self.bearer()
        return secret(self.password_env, self.password, f"source {self.name} password")

    def build(self, wiring: Wiring) -> XapiSource:
        auth = {"bearer": self.secret()} if self.auth == "bearer" else {"auth": (self.username, self.secret())}
        client = self.client(**auth)  # type: ignore[arg-type]
        return XapiSource(self.name, client, self.page_size, self.context_extension_prefix, self.account_identities)
