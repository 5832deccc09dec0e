"""Where the configs and experiment presets live: beside the package in a checkout, inside it in a wheel."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _resource_dir(name: str) -> Path:
    bundled = PACKAGE_DIR / "_bundled" / name
    return bundled if bundled.is_dir() else PACKAGE_DIR.parent / name


CONFIG_DIR = _resource_dir("configs")
EXPERIMENT_DIR = _resource_dir("experiments")
