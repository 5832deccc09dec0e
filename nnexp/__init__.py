"""nnexp: a command-line experiment runner for neural networks, driven by Hydra configs."""


def __getattr__(name: str) -> str:
    # Looked up when asked for: importlib.metadata would slow every `nnexp` start (and widen the moment
    # before it can answer a Ctrl-C in one line).
    if name != "__version__":
        raise AttributeError(f"module 'nnexp' has no attribute {name!r}")
    from nnexp.runs.folder import nnexp_version

    return nnexp_version()


def run(overrides=(), output_dir=None):
    """Run an experiment in this process, as `nnexp OVERRIDES...` would; see nnexp.api.run.

    `nnexp.run(["experiment=digits_mlp"])` returns a RunResult with `.metrics`, `.model`, `.run_dir`.
    """
    from nnexp.api import run as run_experiment  # torch is imported only now, not by `import nnexp`

    return run_experiment(overrides, output_dir)
