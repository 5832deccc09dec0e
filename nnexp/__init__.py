"""nnexp: a command-line experiment runner for neural networks, driven by Hydra configs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nnexp")  # pyproject.toml is the one place the version is written
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"


def run(overrides=(), output_dir=None):
    """Run an experiment in this process, as `nnexp OVERRIDES...` would; see nnexp.api.run.

    `nnexp.run(["experiment=digits_mlp"])` returns a RunResult with `.metrics`, `.model`, `.run_dir`.
    """
    from nnexp.api import run as run_experiment  # torch is imported only now, not by `import nnexp`

    return run_experiment(overrides, output_dir)
