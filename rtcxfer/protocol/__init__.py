"""Wire formats without I/O: signaling messages (PROTOCOL.md section 1) in
:mod:`rtcxfer.protocol.signaling`, the data channel protocol (section 2) in
:mod:`rtcxfer.protocol.transfer`."""
