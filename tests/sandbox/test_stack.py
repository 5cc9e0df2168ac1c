"""The sandbox stack and `python -m deploy.sandbox`: start together, stop together, also after a failed start."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

pytest.importorskip("deploy.sandbox.schema_registry")

from deploy.sandbox.stack import DEFAULT_STATEMENTS, SandboxStack

REPO_ROOT = Path(__file__).parents[2]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def refuses_connections(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
    except requests.ConnectionError:
        return True
    return False


def test_given_default_statements_path_when_resolved_then_it_is_the_bundled_sample() -> None:
    assert DEFAULT_STATEMENTS == REPO_ROOT / "deploy" / "sample" / "xapi_statements.json"
    assert DEFAULT_STATEMENTS.is_file()


@pytest.mark.sandbox
def test_given_sample_stack_when_started_then_all_three_sandboxes_answer() -> None:
    with SandboxStack() as stack:
        lrs = requests.get(
            f"{stack.lrs.url}/xapi/statements",
            params={"limit": 500},
            auth=("lrs-demo", "lrs-demo-secret"),
            headers={"X-Experience-API-Version": "1.0.3"},
            timeout=5,
        )
        ama = requests.get(
            f"{stack.ama.url}/v1/holdings", headers={"Authorization": "Bearer ama-demo-token"}, timeout=5
        )
        registry = requests.get(f"{stack.schema_registry.url}/subjects", timeout=5)

    assert len(lrs.json()["statements"]) == 35
    assert ama.json() == {"entries": [], "next_page_token": None}
    assert registry.status_code == 200


@pytest.mark.sandbox
def test_given_started_stack_when_stopped_then_no_sandbox_accepts_connections() -> None:
    stack = SandboxStack().start()
    urls = [server.url for server in stack.servers]

    stack.stop()

    assert all(refuses_connections(url) for url in urls)


@pytest.mark.sandbox
def test_given_schema_registry_port_taken_when_starting_then_already_started_sandboxes_are_stopped(
    busy_port: int,
) -> None:
    stack = SandboxStack(schema_registry_port=busy_port)
    started: list[str] = []
    original_start = stack.ama.start

    def start_and_remember() -> None:
        original_start()
        started.extend([stack.lrs.url, stack.ama.url])

    stack.ama.start = start_and_remember  # type: ignore[method-assign]

    with pytest.raises(OSError):
        stack.start()

    assert len(started) == 2
    assert all(refuses_connections(url) for url in started)


def test_given_help_flag_when_running_the_module_then_usage_explains_statements_option() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "deploy.sandbox", "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30
    )

    assert result.returncode == 0
    assert "--statements PATH" in result.stdout
    assert "xAPI LRS" in result.stdout


@pytest.mark.sandbox
def test_given_module_running_when_sigterm_then_it_printed_working_urls_and_exits_cleanly() -> None:
    command = [sys.executable, "-m", "deploy.sandbox"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(4)]
        lrs_url = re.search(r"(http://127\.0\.0\.1:\d+)/xapi/statements", banner[1])
        assert lrs_url, banner
        response = requests.get(
            f"{lrs_url[1]}/xapi/statements",
            auth=("lrs-demo", "lrs-demo-secret"),
            headers={"X-Experience-API-Version": "1.0.3"},
            timeout=5,
        )
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=10)
    finally:
        process.kill()
        process.wait()

    assert response.status_code == 200
    assert "Bearer ama-demo-token" in banner[2]
    assert returncode == 0
