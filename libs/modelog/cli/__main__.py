from modelog.cli import main

main()
