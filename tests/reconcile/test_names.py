"""The fast name-based UUID is exactly `uuid.uuid5`: record, learner and dead-letter ids depend on it."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from reconcile.merge import RECORD_NAMESPACE
from reconcile.names import uuid5


@given(st.text())
def test_given_any_name_when_hashed_then_the_id_is_uuid5s(name: str) -> None:
    assert uuid5(RECORD_NAMESPACE, name) == str(uuid.uuid5(RECORD_NAMESPACE, name))
