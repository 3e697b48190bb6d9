"""rtcxfer.web"""
