"""Per-registry rate limit (every attempt takes a slot, retries too) and the registry configuration: each
kind is built from `cmesync.toml` settings with its batch size, rate limit, retries, secrets and roster."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.http import HttpClient, RateLimiter, RetriableAPIError, RetryPolicy
from connectors.registries.ama_pra import AmaPraRegistry
from connectors.registries.cebroker import CeBrokerRegistry
from connectors.registries.employer_hr import EmployerHrRegistry
from deploy.sandbox.ama_registry import AmaPraRegistry as AmaSandbox
from deploy.sandbox.base import Faults
from pipeline.config import ConfigError, Settings
from pipeline.factory import build_registries


class FrozenClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def test_given_two_per_second_when_three_requests_start_at_once_then_the_later_ones_wait_their_slot() -> None:
    clock = FrozenClock()
    limiter = RateLimiter(2, clock=clock, sleep=clock.sleep)

    for _ in range(3):
        limiter.acquire()

    assert clock.sleeps == [0.5, 1.0]


def test_given_requests_further_apart_than_the_interval_when_acquired_then_nobody_waits() -> None:
    clock = FrozenClock()
    limiter = RateLimiter(4, clock=clock, sleep=clock.sleep)

    for _ in range(3):
        limiter.acquire()
        clock.now += 0.3

    assert clock.sleeps == []


@pytest.mark.parametrize("rate", [0, -1])
def test_given_a_rate_that_is_not_positive_when_built_then_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(rate)


@pytest.mark.sandbox
def test_given_a_failing_registry_when_the_client_retries_then_every_attempt_waits_for_a_slot() -> None:
    clock = FrozenClock()
    limiter = RateLimiter(2, clock=clock, sleep=clock.sleep)
    with AmaSandbox() as sandbox:
        sandbox.faults = Faults(server_error=1.0)
        client = HttpClient(sandbox.url, retry=RetryPolicy(max_attempts=3), sleep=lambda _: None, rate_limit=limiter)

        with pytest.raises(RetriableAPIError):
            client.get_json("/v1/holdings")

        assert sandbox.requests_seen == 3
    assert clock.sleeps == [0.5, 1.0]


def settings_for(tmp_path: Path, registries: str) -> Settings:
    path = tmp_path / "cmesync.toml"
    path.write_text(registries, encoding="utf-8")
    return Settings.load(path)


def test_given_the_three_registry_kinds_when_built_from_config_then_each_connector_gets_its_own_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_HR_SECRET", "from-the-environment")
    roster = tmp_path / "staff.csv"
    roster.write_text("employee_id,npi,licence_number,licence_state\nE1,1493027167,,\n", encoding="utf-8")
    settings = settings_for(
        tmp_path,
        f"""
[[registries]]
kind = "ama_pra"
name = "ama"
base_url = "http://ama.invalid"
token = "t"
rate_limit_per_s = 4
max_attempts = 2
retry_backoff_s = 0.05
page_size = 50

[[registries]]
kind = "cebroker"
name = "board"
base_url = "http://cebroker.invalid"
parent_provider_id = "50-7"
provider_id = "50-8"
upload_key = "k"
max_message_bytes = 4096

[[registries]]
kind = "employer_hr"
name = "hr"
base_url = "http://hr.invalid"
hmac_secret_env = "TEST_HR_SECRET"
roster_path = "{roster}"
export_dir = "{tmp_path / "exports"}"
batch_size = 250
extra_holdings = "revoke"
""",
    )

    ama, board, hr = build_registries(settings)

    assert (
        isinstance(ama, AmaPraRegistry) and isinstance(board, CeBrokerRegistry) and isinstance(hr, EmployerHrRegistry)
    )
    assert ama.client.rate_limit is not None and ama.client.rate_limit.interval == 0.25
    assert (ama.client.retry.max_attempts, ama.page_size) == (2, 50)
    assert ama.client.retry == RetryPolicy(max_attempts=2, initial_backoff_s=0.05, jitter_s=0.05)
    assert board.client.retry == RetryPolicy(), "an unset retry_backoff_s keeps the shared policy's defaults"
    assert ama.client.headers == {"Authorization": "Bearer t"}
    assert board.client.rate_limit is None and board.client.headers == {}
    assert (board.envelope.parent_provider, board.envelope.provider, board.envelope.upload_key) == ("50-7", "50-8", "k")
    assert board.max_message_bytes == 4096
    assert hr.roster.by_npi == {"1493027167": "E1"}
    assert hr.export is not None and hr.export.directory == tmp_path / "exports"
    assert [r.extra_holdings for r in settings.registries] == ["report", "report", "revoke"]
    assert settings.registries[2].secret() == "from-the-environment"


@pytest.mark.parametrize(
    "body, message",
    [
        ('kind = "employer_hr"\nname = "hr"\nbatch_size = 251\nhmac_secret = "s"', "less than or equal to 250"),
        ('kind = "cebroker"\nname = "board"\nupload_key = "k"', "parent_provider_id"),
        ('kind = "cebroker"\nname = "board"\nparent_provider_id = "CEP-1"', "parent_provider_id"),
        ('kind = "cebroker"\nname = "board"\nparent_provider_id = "50-1"\nmax_message_bytes = 17000000', "16777216"),
        ('kind = "ama_pra"\nname = "ama"\nrate_limit_per_s = 0', "greater than 0"),
        ('kind = "ama_pra"\nname = "ama"\nextra_holdings = "delete"', "extra_holdings"),
    ],
)
def test_given_an_invalid_registry_setting_when_loaded_then_a_config_error_names_it(
    tmp_path: Path, body: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_for(tmp_path, f"[[registries]]\n{body}\n")


def test_given_a_roster_that_is_missing_when_building_then_config_error_names_the_registry(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    settings = settings_for(
        tmp_path, f'[[registries]]\nkind = "employer_hr"\nname = "hr"\nhmac_secret = "s"\nroster_path = "{missing}"\n'
    )

    with pytest.raises(ConfigError, match=r"registry hr: roster .*nope\.csv: cannot be read"):
        build_registries(settings)


def test_given_no_secret_anywhere_when_building_then_config_error_names_the_variable(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path,
        '[[registries]]\nkind = "cebroker"\nname = "board"\nparent_provider_id = "50-1"\n'
        'upload_key_env = "NO_SUCH_VAR_X"\n',
    )

    with pytest.raises(ConfigError, match="registry board upload key: set the environment variable NO_SUCH_VAR_X"):
        build_registries(settings)
