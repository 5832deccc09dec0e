"""What nnexp adds to Hydra: run folders that never collide."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf


def claim_new_dir(path: str) -> str:
    """Create `path`, or `path_1`, `path_2`, ... if taken, atomically; return the one created.

    Hydra names run folders by the second, so two runs started together would share one folder.
    """
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(10_000):
        candidate = base if attempt == 0 else base.with_name(f"{base.name}_{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return str(candidate)
    raise RuntimeError(f"could not create a new folder beside {base}")


def register_resolvers() -> None:
    # use_cache: Hydra resolves the run folder more than once and copies this cache to sweep jobs.
    if not OmegaConf.has_resolver("nnexp_new_dir"):
        OmegaConf.register_new_resolver("nnexp_new_dir", claim_new_dir, use_cache=True)


__all__ = ["claim_new_dir", "register_resolvers"]
