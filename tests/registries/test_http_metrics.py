"""Registry HTTP metrics over real HTTP: a registry built by the factory counts every attempt's status class and
every retry, against the AMA sandbox answering a storm of 429s and then an outage it does not outlast."""

from __future__ import annotations

import pytest

from connectors.registries.ama_pra import AmaRegistryConfig
from connectors.registries.base import RegistryCheckError
from deploy.sandbox.base import Faults
from deploy.sandbox.stack import SandboxStack
from pipeline import metrics
from pipeline.factory import build_registry


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_given_a_registry_answering_429_then_503_when_called_then_status_classes_and_retries_are_counted(
    sandboxes: SandboxStack,
) -> None:
    name = "ama-http-metrics"  # its own label values, untouched by other tests in this process
    registry = build_registry(
        AmaRegistryConfig(name=name, base_url=sandboxes.ama.url, token="ama-demo-token", max_attempts=3)
    )
    sandboxes.ama.faults = Faults(storm=2, retry_after_s=0.01)
    try:
        registry.check()  # two 429s, then the answer
        assert sample("cmesync_registry_http_responses_total", registry=name, status_class="4xx") == 2
        assert sample("cmesync_registry_http_responses_total", registry=name, status_class="2xx") == 1
        assert sample("cmesync_registry_http_retries_total", registry=name) == 2

        sandboxes.ama.faults = Faults(down=3)
        with pytest.raises(RegistryCheckError):
            registry.check()  # three 503s: it gives up after max_attempts
    finally:
        sandboxes.ama.faults = Faults()
    assert sample("cmesync_registry_http_responses_total", registry=name, status_class="5xx") == 3
    assert sample("cmesync_registry_http_retries_total", registry=name) == 4


def test_given_dead_letters_resolved_when_the_gauge_is_refreshed_then_their_series_drop_to_zero() -> None:
    metrics.set_dead_letters_open([("deliver", "REGISTRY_UNAVAILABLE", 3), ("normalise", "SCHEMA_INVALID", 1)])
    metrics.set_dead_letters_open([("normalise", "SCHEMA_INVALID", 2)])
    assert sample("cmesync_dead_letters_open", stage="deliver", reason_code="REGISTRY_UNAVAILABLE") == 0
    assert sample("cmesync_dead_letters_open", stage="normalise", reason_code="SCHEMA_INVALID") == 2
