from nnexp.cli.entry import main

main()
