from nnexp.cli import main

main()
