"""What the CLI checks before it starts Prefect or touches data: the ledger URL (and that the ledger answers,
within CONNECT_BUDGET_S), the catalog, and that every endpoint a run needs is set. A configuration mistake ends
as one line and exit code 2 in a second or two; a component that is down as one line and exit code 1."""

from __future__ import annotations

from collections.abc import Callable

from connectors.http import APIError
from ledger.url import LedgerUnreachable, LedgerUrlInvalid, backend_of, masked, wait_until_reachable
from pipeline.catalog import fetch_catalog
from pipeline.config import ConfigError, Settings
from reconcile.catalog import CatalogError

CONNECT_BUDGET_S = 10.0
LEDGER_BACKENDS = ("sqlite", "postgresql")


class ComponentDown(Exception):
    """A part the command needs did not answer or refused it; the message names the part and where it is."""

    def __init__(self, component: str, where: str, reason: str, exit_code: int = 1) -> None:
        super().__init__(f"{component} at {where}: {reason}")
        self.exit_code = exit_code


def check_ledger_url(url: str) -> None:
    """ConfigError unless `url` is a SQLAlchemy URL of a backend the ledger supports."""
    backend = backend_of(url)
    if backend is None:
        raise ConfigError(f"ledger_url {masked(url)} is not a database URL (sqlite:///… or postgresql://…)")
    if backend not in LEDGER_BACKENDS:
        raise ConfigError(f"ledger_url {masked(url)}: {backend} is not supported; use {' or '.join(LEDGER_BACKENDS)}")


def preflight_ledger(url: str, waiting: Callable[[str], None], budget_s: float = CONNECT_BUDGET_S) -> None:
    """Connect once to the ledger, retrying a refused connection for up to `budget_s` (saying so through
    `waiting` first). The server refusing us (unknown role or database, wrong password) is configuration."""
    check_ledger_url(url)
    where = masked(url)
    try:
        notice = f"waiting for the ledger at {where} (up to {budget_s:.0f} s)"
        wait_until_reachable(url, budget_s, lambda: waiting(notice))
    except LedgerUrlInvalid as err:
        raise ConfigError(f"ledger_url {where}: {err}") from None
    except LedgerUnreachable as err:
        if err.refused:
            raise ComponentDown("ledger", where, err.reason, exit_code=2) from None
        raise ComponentDown("ledger", where, f"{err.reason} (gave up after {budget_s:.0f} s)") from None


def preflight_run(settings: Settings, embedded: bool, waiting: Callable[[str], None]) -> None:
    """Everything a run can know is wrong before it starts: endpoints, catalog, ledger."""
    if not embedded and (missing := settings.missing_endpoints()):
        raise ConfigError(f"no endpoint configured for {', '.join(missing)}: set them or run with --embedded")
    try:
        fetch_catalog(settings)
    except CatalogError as err:
        raise ConfigError(f"catalog {settings.catalog_url or settings.catalog_path}: {err}") from None
    except OSError as err:
        raise ConfigError(f"catalog {settings.catalog_path}: {err.strerror or err}") from None
    except APIError as err:
        raise ComponentDown("catalog", settings.catalog_url, str(err)) from None
    preflight_ledger(settings.ledger_url, waiting)
