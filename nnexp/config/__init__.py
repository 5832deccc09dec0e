"""The rules a config must keep, at the bottom of the package: nothing here imports another stage.

`trust.py`: what a config may make nnexp run (which `_target_`s and resolvers), applied to the command
line's configs and to every config read back from a run or sweep folder, which is data somebody else
may have written.
"""
