"""Every test gets its own rtcxfer config folder (identity and pinned peers).

Set in the environment, so CLI subprocesses started with ``cli_env()`` inherit it;
a test that needs two different identities passes its own ``XDG_CONFIG_HOME``.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_config_home(tmp_path_factory: pytest.TempPathFactory,
                         monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path_factory.mktemp("xdg-config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return config
