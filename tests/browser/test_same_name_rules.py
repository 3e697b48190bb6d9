"""The page refuses the same file names as the CLI receiver (issue 8: invisible and
bidi characters), checked by running the page's own module in node."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from rtcxfer.transfer.paths import UnsafeName, split_name

STATIC = Path(__file__).resolve().parents[2] / "rtcxfer" / "web" / "static"
NAMES = ["photo\u202egnp.exe", "a\u200bb.txt", "x\u2066y", "line\u2028break", "soft\u00adhyphen",
         "\u3164", "ok.txt", "Zoë/李雷.txt", "a b/c.d", "bom\ufeff.txt", "e\u0301.txt"]


def test_page_and_cli_agree_on_invisible_names() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = (f"import {{ unsafeNameReason }} from {json.dumps(str(STATIC / 'transfer.js'))};"
              f"const names = {json.dumps(NAMES)};"
              "console.log(JSON.stringify(names.map((n) => unsafeNameReason(n) === null)));")
    result = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True,
                            text=True, timeout=60, check=True)
    page_accepts = json.loads(result.stdout)

    def cli_accepts(name: str) -> bool:
        try:
            split_name(name)
        except UnsafeName:
            return False
        return True

    assert page_accepts == [cli_accepts(name) for name in NAMES]
    assert page_accepts[:6] == [False] * 6 and page_accepts[6] is True
