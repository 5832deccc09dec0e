"""What nnexp adds to Hydra: run folders that never collide."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from omegaconf import OmegaConf

_CLAIMED: dict[Path, list[Path]] = {}  # folder claimed by this process -> the parents it created


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
        return str(candidate)
    raise RuntimeError(f"could not create a new folder beside {base}")


def release_claimed_dir(path: str | Path) -> bool:
    """Remove a folder this process claimed, with the parents it created that are now empty.

    For a mistake found after Hydra claimed the run folder: the user is told, and nothing is left behind.
    Returns False (and removes nothing) for a folder this process did not claim.
    """
    folder = Path(path).absolute()
    if folder not in _CLAIMED:
        return False
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


def register_resolvers() -> None:
    # use_cache: Hydra resolves the run folder more than once and copies this cache to sweep jobs.
    if not OmegaConf.has_resolver("nnexp_new_dir"):
        OmegaConf.register_new_resolver("nnexp_new_dir", claim_new_dir, use_cache=True)


__all__ = ["claim_new_dir", "register_resolvers", "release_claimed_dir", "release_unstarted_dirs"]
