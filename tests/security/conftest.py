"""Fixtures of the security tests."""

from __future__ import annotations

import pytest

from tests.security.tls_certs import TlsFiles, write_tls_files


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A CA, a server certificate for 127.0.0.1 signed by it, and an unrelated CA."""
    return write_tls_files(tmp_path_factory.mktemp("tls"))
