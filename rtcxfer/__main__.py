from rtcxfer.cli import main

main()
