"""The page's rtcxfer/2 machines (machines2.js) against the same vectors, with node."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

RUNNER = Path(__file__).parents[1] / "vectors" / "run_vectors.mjs"


def test_js_machines_pass_the_shared_vectors() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    result = subprocess.run([node, str(RUNNER)], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    vectors = len(list(RUNNER.parent.glob("*.json")))
    assert f"{vectors} vectors, 0 mismatching steps" in result.stdout
