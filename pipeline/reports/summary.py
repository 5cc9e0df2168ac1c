"""What a nightly run did, as counts: printed by the CLI, stored in the runs table, published as an artifact."""

from __future__ import annotations

from dataclasses import asdict, dataclass

LABELS = {
    "records_read": "source records read",
    "events_published": "events published to cme.attendance.v1",
    "rejected_at_normalise": "rejected at normalise (dead letters)",
    "duplicates": "duplicate events ignored",
    "rejected_at_reconcile": "rejected at reconcile (dead letters)",
    "credit_versions": "credit versions written",
    "credits_awarded": "credits awarded (ledger total)",
    "credits_published": "credit versions published to cme.credits.v1",
    "delivered": "deliveries to registries",
    "delivery_failed": "deliveries failed (dead letters)",
    "registry_drift": "registry holdings differing from the ledger (nightly diff)",
    "registry_repaired": "registry holdings repaired",
    "dead_letters_published": "dead letters published to cme.deadletter.v1",
}


@dataclass
class RunSummary:
    records_read: int = 0
    events_published: int = 0
    rejected_at_normalise: int = 0
    duplicates: int = 0
    rejected_at_reconcile: int = 0
    credit_versions: int = 0
    credits_awarded: int = 0
    credits_published: int = 0
    delivered: int = 0
    delivery_failed: int = 0
    registry_drift: int = 0
    registry_repaired: int = 0
    dead_letters_published: int = 0

    def counts(self) -> dict[str, int]:
        return asdict(self)

    def markdown(self, title: str) -> str:
        rows = "\n".join(f"| {LABELS[k]} | {v} |" for k, v in self.counts().items())
        return f"# {title}\n\n| what | count |\n|---|---:|\n{rows}\n"
