"""One run from start to summary (`run.run`), its epoch loop (fit), and everything it leaves in its folder:
the folder itself, checkpoints, resume, loggers and the console. (Not `nnexp/run/`: `nnexp.run` is the
Python API's function.)"""
