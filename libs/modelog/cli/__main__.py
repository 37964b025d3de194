from modelog.cli import main

main(prog_name="modelog")
