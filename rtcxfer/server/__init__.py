"""rtcxfer.server"""
