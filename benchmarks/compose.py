"""What Hydra's composition costs nnexp: one compose of the default config, and one sweep job's config as
Hydra's launcher composes it and as nnexp shares it (nnexp/cli/job_configs.py). Medians of 7, after one
that warms the caches; run on an idle machine.

    python benchmarks/compose.py
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path
from hydra.types import RunMode

from nnexp.cli.hydra_hooks import register_resolvers
from nnexp.cli.job_configs import _OncePerOptions
from nnexp.paths import CONFIG_DIR

REPEATS = 7


def median_ms(make: Callable[[int], object]) -> float:
    make(0)
    times = []
    for step in range(1, REPEATS + 1):
        started = time.perf_counter()
        make(step)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    register_resolvers()
    print(f"1-minute load before: {os.getloadavg()[0]:.2f}")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        default = median_ms(lambda _step: compose("config", return_hydra_config=True))
    print(f"one compose of the default config: {default:.0f} ms")
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(CONFIG_DIR)))
    sweep = ["experiment=digits_mlp", "seed=0,1,2"]
    master = loader.load_configuration("config", overrides=sweep, run_mode=RunMode.MULTIRUN)
    hydras_own = ConfigLoaderImpl.__dict__["load_sweep_config"]
    if isinstance(hydras_own, _OncePerOptions):  # installed in this process already
        hydras_own = hydras_own.hydras_own
    for name, load in (("Hydra's own", hydras_own), ("shared by nnexp", _OncePerOptions(hydras_own))):
        ms = median_ms(lambda seed, load=load: load(loader, master, [sweep[0], f"seed={seed}"]))
        print(f"a sweep job's config ({name}): {ms:.0f} ms")
    print(f"1-minute load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
