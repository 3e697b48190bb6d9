"""rtcxfer.protocol"""
