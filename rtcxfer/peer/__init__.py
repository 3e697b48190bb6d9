"""rtcxfer.peer"""
