from nnexp.cli.command import main

main()
