"""`torchrun --nproc-per-node=N -m nnexp ...`: every rank runs the whole command; only rank 0 may write.

torchrun starts N copies of `nnexp`, each told its RANK and WORLD_SIZE; each composes the same config and
joins the others when its run starts (runs/launch.py). Hydra would give every copy a run folder of its
own (or all the same one, named on the command line), so the ranks other than 0 point Hydra at a scratch
folder, removed when they end: the run folder is rank 0's alone. (`nnexp trainer.devices=N` starts its
ranks itself and needs none of this.)

Standard library only: `nnexp` calls this before anything heavy is imported.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Mapping

SCRATCH_PREFIX = "nnexp-rank-"
_HYDRA_DIRS = ("hydra.run.dir=", "hydra.sweep.dir=", "hydra.output_subdir=")


def is_other_rank(env: Mapping[str, str]) -> bool:
    """A process torchrun (or a scheduler) started as a rank other than 0 of several."""
    return int(env.get("WORLD_SIZE", 1) or 1) > 1 and env.get("RANK", "0") != "0"


def keep_other_ranks_out(argv: list[str], env: Mapping[str, str]) -> list[str]:
    """The command line a rank other than 0 runs: Hydra's folders moved to a scratch folder (removed at
    exit) and no .hydra records. Rank 0's, and a resume's (its folder is only read: runs/launch.py gives
    the rank a copy), are returned as they are."""
    if not is_other_rank(env) or any(arg.startswith("resume=") for arg in argv):
        return argv
    scratch = tempfile.mkdtemp(prefix=SCRATCH_PREFIX)
    atexit.register(shutil.rmtree, scratch, True)
    kept = [arg for arg in argv if not arg.startswith(_HYDRA_DIRS)]
    return [*kept, f"hydra.run.dir={scratch}", f"hydra.sweep.dir={scratch}", "hydra.output_subdir=null"]
