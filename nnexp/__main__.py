from nnexp.cli.entry import console

console()
