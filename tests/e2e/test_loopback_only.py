"""`serve`, `listen` and `send` in a network namespace whose only interface is `lo`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]

SCENARIO = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from support import CliProcess, running_server, wait_for_event, write_random_file

    work = Path(sys.argv[2])
    source = write_random_file(work / "out" / "ns.bin", 500_000)
    with running_server() as (url, _server):
        listener = CliProcess(["listen", "--server", url, "--name", "bob", "--yes", "--json",
                               "--dir", str(work / "in")])
        try:
            wait_for_event(listener, "connected", timeout=60)
            sender = CliProcess(["send", "--server", url, "--name", "alice", "bob",
                                 str(source)])
            code = sender.wait(120)
            print(code, file=sys.stderr)
            print(sender.stderr, file=sys.stderr)
        finally:
            listener.stop()
    same = (work / "in" / "ns.bin").read_bytes() == source.read_bytes()
    print("ok" if code == 0 and same else "failed")
""")


def test_peers_connect_when_loopback_is_the_only_interface(tmp_path: Path) -> None:
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None:
        pytest.skip("needs unshare and ip to make a loopback-only network namespace")
    probe = subprocess.run([unshare, "-rn", ip, "link", "set", "lo", "up"],
                           capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.decode().strip()}")
    result = subprocess.run(
        [unshare, "-rn", "sh", "-c", f'{ip} link set lo up && exec "$@"', "sh",
         sys.executable, "-c", SCENARIO, str(TESTS), str(tmp_path)],
        capture_output=True, text=True, timeout=170,
    )
    assert result.stdout.strip() == "ok", result.stderr
