"""Every dead-letter reason code the pipeline can write, so a filter with a misspelt one is refused instead of
quietly matching nothing. The codes live beside the code that raises them; this only gathers them."""

from __future__ import annotations

from collections.abc import Iterable

from connectors.registries import base as registries
from connectors.registries import cebroker
from connectors.sources import base as sources
from reconcile import credit_rules, engine

NORMALISE = (
    sources.SCHEMA_INVALID,
    sources.UNSUPPORTED_VERB,
    sources.UNSUPPORTED_KIND,
    sources.IMPLAUSIBLE_DURATION,
    sources.MISSING_IDENTITY,
    sources.INVALID_NPI,
    sources.FIELD_TOO_LARGE,
    sources.MALFORMED_PAGE,
    sources.MALFORMED_ROW,
    sources.ENCODING_INVALID,
    sources.UNMAPPED_HEADER,
)
RECONCILE = (
    engine.UNKNOWN_ACTIVITY,
    engine.NOT_ACCREDITED,
    engine.OUTSIDE_ACTIVITY_WINDOW,
    engine.IDENTITY_CONFLICT,
    engine.MISSING_IDENTITY,
    engine.INVALID_NPI,
    engine.INVALID_CLAIM,
    engine.MISSING_VOID_TARGET,
    credit_rules.MISSING_BOARD_IDENTITY,
    credit_rules.UNKNOWN_PROFESSION,
)
DELIVER = (registries.REGISTRY_REJECTED, registries.REGISTRY_UNAVAILABLE, cebroker.LICENCE_INVALID)
KNOWN_REASON_CODES = frozenset((*NORMALISE, *RECONCILE, *DELIVER))


class UnknownReasonCode(ValueError):
    """A reason code no stage writes and no dead letter carries; exit code 2."""


def check_reason_codes(wanted: Iterable[str], in_ledger: Iterable[str] = ()) -> None:
    """Refuse codes that are neither written by the pipeline nor carried by a stored dead letter (an older
    release's code stays selectable), naming the known ones."""
    known = KNOWN_REASON_CODES | set(in_ledger)
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise UnknownReasonCode(
            f"unknown reason code {', '.join(unknown)}; known reason codes: {', '.join(sorted(known))}"
        )
