"""rtcxfer: peer-to-peer file transfer over WebRTC data channels."""

__version__ = "0.1.0"
