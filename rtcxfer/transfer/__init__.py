"""rtcxfer.transfer"""
