"""The README's "Consuming the credit stream" is a contract a registry consumer can rely on: its example consumer,
taken from the README as it stands, reads every credit a real run published (the real broker and schema registry)
with the key as plain UTF-8 and the newest version per record, as the ledger has them."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from ledger import tables as t
from ledger.store import Ledger
from tests.ops.conftest import REPO, Ops

pytestmark = pytest.mark.integration


def readme_consumer() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Consuming the credit stream", 1)[1].split("\n## ", 1)[0]
    return section.split("```python", 1)[1].split("```", 1)[0]


def ledger_latest(ops: Ops) -> dict[str, tuple[int, str]]:
    c = t.credits.c
    with Ledger(ops.ledger_url) as ledger, ledger.engine.connect() as conn:
        newest = select(c.record_id, func.max(c.version).label("version")).group_by(c.record_id).subquery()
        rows = conn.execute(
            select(c.record_id, c.version, c.status).join(
                newest, (newest.c.record_id == c.record_id) & (newest.c.version == c.version)
            )
        )
        return {r.record_id: (r.version, r.status) for r in rows}


def test_given_a_real_run_when_the_readme_consumer_reads_the_stream_then_it_has_every_credit_as_the_ledger_does(
    ops: Ops, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = ops.cli("run", "--json")
    assert run.returncode == 0, run.stderr
    assert run.json()["credits_published"] > 0
    monkeypatch.setenv("CMESYNC_KAFKA_BOOTSTRAP", ops.kafka_bootstrap)
    monkeypatch.setenv("CMESYNC_SCHEMA_REGISTRY_URL", ops.sandboxes.schema_registry.url)
    names: dict[str, Any] = {}

    exec(compile(readme_consumer(), "README.md: Consuming the credit stream", "exec"), names)

    expected = ledger_latest(ops)
    latest = names["latest"]
    # The session's broker is shared: other runs' credits may be on the topic too, never fewer of ours.
    assert {r: (latest[r]["version"], latest[r]["status"]) for r in expected if r in latest} == expected
    assert all(latest[r]["record_id"] == r for r in expected)  # the key is the record id, plain UTF-8
    assert "credits awarded" in capsys.readouterr().out
