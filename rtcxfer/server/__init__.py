"""The signaling server behind ``rtcxfer serve`` (docs/server.md)."""

from rtcxfer.server.server import ServerConfig, SignalingServer

__all__ = ["ServerConfig", "SignalingServer"]
