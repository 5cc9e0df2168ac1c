"""The import-linter contracts in pyproject.toml hold on the tree, and break when a lower layer imports a
higher one or code outside ledger/ imports SQLAlchemy or the ledger's tables: checked on a copy of the packages
with one such import added, so each contract is shown to bite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("flows", "pipeline", "connectors", "ledger", "reconcile", "schemas", "deploy")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_given_the_tree_when_linted_then_every_contract_is_kept(tree: Path) -> None:
    result = lint_imports(tree)

    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "reverse_import"),
    [
        ("schemas/codec.py", "import reconcile.vocabulary"),
        ("reconcile/engine.py", "import ledger.store"),
        ("ledger/store.py", "import connectors.http"),
        ("connectors/http.py", "import pipeline.config"),
        ("pipeline/reports/run_report.py", "import flows.nightly"),
        ("pipeline/stages/pull.py", "import deploy.broker"),
        ("pipeline/stages/publish.py", "import pipeline.ops.replay"),
        ("pipeline/reports/summary.py", "import pipeline.stages.deliver"),
        ("pipeline/kafka/topics.py", "import pipeline.reports.summary"),
        ("pipeline/kafka/confluent.py", "import pipeline.kafka.kafka_python"),
        ("pipeline/stages/republish.py", "import sqlalchemy"),
        ("pipeline/reports/transcript.py", "import ledger.tables"),
        ("connectors/sources/base.py", "import sqlalchemy"),
        ("reconcile/merge.py", "import sqlalchemy"),
        ("flows/cli.py", "import sqlalchemy"),
        ("flows/nightly.py", "import ledger.tables"),
    ],
)
def test_given_a_reverse_import_when_linted_then_the_contract_is_broken_naming_it(
    tree: Path, module: str, reverse_import: str
) -> None:
    path = tree / module
    path.write_text(f"{path.read_text(encoding='utf-8')}\n{reverse_import}  # injected\n", encoding="utf-8")

    result = lint_imports(tree)

    assert result.returncode == 1, result.stdout[-3000:]
    assert "BROKEN" in result.stdout
    importer = module.removesuffix(".py").replace("/", ".")
    assert importer in result.stdout and reverse_import.split()[1] in result.stdout
