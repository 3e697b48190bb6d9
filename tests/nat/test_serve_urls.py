"""``rtcxfer serve --host 0.0.0.0`` prints a URL for each interface address."""

from __future__ import annotations

import pytest
from nat.netns import HOME_NETS, ROUTER_WAN, RTCXFER, World, unavailable_reason


def test_wildcard_host_prints_every_interface_url() -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with World() as world:
        # The router of home A has three addresses: loopback, its WAN and its LAN.
        server = world.start("ra", [*RTCXFER, "serve", "--host", "0.0.0.0", "--port", "9090"])
        lan = f"{HOME_NETS['ra']}.1"
        server.wait_for_line(lambda line: line == f"open http://{lan}:9090/ in a browser")
        lines = server.stdout_lines
        assert lines[:2] == ["ws://127.0.0.1:9090", "open http://127.0.0.1:9090/ in a browser"]
        for address in (ROUTER_WAN["ra"], lan):
            assert f"ws://{address}:9090" in lines
            assert f"open http://{address}:9090/ in a browser" in lines
        assert len(lines) == 6, lines
        server.stop()
        assert server.popen.returncode == 0, server.stderr
