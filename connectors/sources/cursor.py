"""Cursors as declared data: a source's cursor is a frozen pydantic model, and this base owns its JSON.

The text is what the ledger keeps between pulls (`checkpoints`), so a cursor model's fields are its format:
sets are written sorted and instants as `format_instant` writes them, so the same position is the same text.
"""

from __future__ import annotations

import json
from typing import Self

from pydantic import BaseModel, ConfigDict


class Cursor(BaseModel):
    """A source's position between pulls; subclasses declare fields (all with defaults: no text = the start)."""

    model_config = ConfigDict(frozen=True)

    def dump(self) -> str:
        return json.dumps(self.model_dump(mode="json"))

    @classmethod
    def load(cls, text: str | None) -> Self:
        return cls.model_validate_json(text) if text else cls()
