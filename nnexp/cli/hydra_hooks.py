"""What nnexp adds to Hydra: run folders that never collide, and that a mistake or a signal at start-up
removes again. (Standard library only at the top: `nnexp` imports this before anything else.)"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

# Imported here, not where it is used: a stop signal may land while that first import is half done.
from nnexp.runs.latest import forget_latest, point_latest  # standard library only

NOTHING_KEPT = "before the run began; nothing was kept"  # what a stop says once it removed the folder
_CLAIMED: dict[Path, list[Path]] = {}  # folder claimed by this process -> the parents it created
_FOUND: dict[Path, set[str]] = {}  # a claimed folder that existed already -> the names it held then
_RESUMED: list[Path] = []  # the sweep folder `nnexp -m resume=` continues (not claimed: it holds runs)


def claim_new_dir(path: str) -> str:
    """Create `path`, or `path_1`, `path_2`, ... if taken, atomically; return the one created.

    Hydra names run folders by the second, so two runs started together would share one folder.
    """
    base = Path(path)
    created = [parent for parent in reversed(base.parents) if not parent.exists()]
    base.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(10_000):
        candidate = base if attempt == 0 else base.with_name(f"{base.name}_{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        _CLAIMED[candidate.absolute()] = [parent.absolute() for parent in created]
        point_latest(candidate)  # outputs/latest names the newest run (a sweep's: its folder)
        return str(candidate)
    raise RuntimeError(f"could not create a new folder beside {base}")


def claim_named_dir(path: str | Path) -> None:
    """A folder named outright (hydra.run.dir=..., hydra.sweep.dir=...) becomes this process's: created if
    need be and locked before Hydra writes into it, so a second process naming it is refused. A mistake or
    a signal before the run began removes it as it removes a claimed one, or, if it was there before,
    only what nnexp wrote into it."""
    from nnexp.runs.folder import RunFolderBusy, hold_for_this_process, run_at_or_below

    folder = Path(path).absolute()
    created = [parent for parent in (*reversed(folder.parents), folder) if not parent.exists()]
    found = {entry.name for entry in folder.iterdir()} if folder.is_dir() else None
    folder.mkdir(parents=True, exist_ok=True)
    hold_for_this_process(folder)
    if run_at_or_below(folder) is not None:
        # Another process finished a run here between the preflight's look and the lock.
        raise RunFolderBusy(
            f"{folder} holds a run already, and nnexp never writes over one: give a new folder"
        )
    _CLAIMED[folder] = [parent for parent in created if parent != folder]
    if found is not None:  # an empty folder, or one of the user's files: only what nnexp adds goes
        _FOUND[folder] = found


def release_claimed_dir(path: str | Path) -> bool:
    """Remove a folder this process claimed, with the parents it created that are now empty.

    For a mistake found after Hydra claimed the run folder: the user is told, and nothing is left behind.
    Returns False (and removes nothing) for a folder this process did not claim.
    """
    folder = Path(path).absolute()
    if folder not in _CLAIMED:
        return False
    forget_latest(folder)  # latest goes back to the run it named before
    if folder in _FOUND:
        kept = _FOUND.pop(folder)
        for entry in folder.iterdir():
            if entry.name in kept:
                continue
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    else:
        shutil.rmtree(folder, ignore_errors=True)
    for parent in reversed(_CLAIMED.pop(folder)):
        with contextlib.suppress(OSError):  # not empty: another run lives there now
            parent.rmdir()
    return True


def release_unstarted_dirs() -> list[Path]:
    """Release every folder this process claimed in which no run has written its summary yet."""
    unstarted = [folder for folder in _CLAIMED if not any(folder.rglob("summary.json"))]
    for folder in unstarted:
        release_claimed_dir(folder)
    return unstarted


def resuming_sweep(folder: Path) -> None:
    """`nnexp -m resume=FOLDER` continues the sweep in `folder`: a stop names it again."""
    _RESUMED.append(folder.absolute())


def started_sweeps() -> list[Path]:
    """The sweep folders this process resumes, or claimed and began a job in (a summary.json below the
    folder, none in it): a stop between two jobs names the sweep to resume."""
    begun = [
        folder
        for folder in _CLAIMED
        if not (folder / "summary.json").exists()
        and any(found.parent != folder for found in folder.rglob("summary.json"))
    ]
    return [*_RESUMED, *begun]


def register_resolvers() -> None:
    from omegaconf import (
        OmegaConf,  # here, not above: the signal handler of a starting nnexp imports this module
    )

    # use_cache: Hydra resolves the run folder more than once and copies this cache to sweep jobs.
    if not OmegaConf.has_resolver("nnexp_new_dir"):
        OmegaConf.register_new_resolver("nnexp_new_dir", claim_new_dir, use_cache=True)
    if not OmegaConf.has_resolver("nnexp_gpu_count"):  # hydra/launcher=gpus: one job per GPU
        OmegaConf.register_new_resolver("nnexp_gpu_count", _gpu_count, use_cache=True)
    from nnexp.config.custom import register_free_keys

    register_free_keys()  # model=custom, data=custom: model.hidden=128 without a `+`


def _gpu_count() -> int:
    from nnexp.sweep.devices import visible_gpus

    return max(1, visible_gpus())


__all__ = [
    "claim_named_dir",
    "claim_new_dir",
    "register_resolvers",
    "release_claimed_dir",
    "release_unstarted_dirs",
    "resuming_sweep",
    "started_sweeps",
]
