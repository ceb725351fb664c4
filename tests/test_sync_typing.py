"""``mypy --strict`` accepts code that uses the sync client, and rejects misuse."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
USAGE = ROOT / "tests" / "typing" / "sync_usage.py"


def run_mypy(target: Path, cache_dir: Path) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "mypy",
        "--strict",
        "--cache-dir",
        str(cache_dir),
        "--no-error-summary",
        # Report only the target file: errors in modules it imports belong to
        # the package check that CI runs separately.
        "--follow-imports=silent",
        str(target),
    ]
    return subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, timeout=240, check=False
    )


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


def test_mypy_strict_accepts_sync_usage(cache_dir: Path) -> None:
    done = run_mypy(USAGE, cache_dir)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_rejects_awaiting_sync_results(cache_dir: Path, tmp_path: Path) -> None:
    misuse = tmp_path / "misuse.py"
    misuse.write_text(
        "from maestro_ml_async import MaestroClient\n"
        "\n"
        "\n"
        "async def main(client: MaestroClient) -> None:\n"
        "    await client.models.get('x')\n"
        "    client.models.get(name=1)\n"
    )
    done = run_mypy(misuse, cache_dir)
    assert done.returncode != 0
    assert 'Incompatible types in "await"' in done.stdout
    assert 'Argument "name"' in done.stdout
