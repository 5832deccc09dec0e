"""nnexp's default job as a lightning-hydra-template project would run it: `src/train.py`'s flow (Hydra
composes; the data module, the LightningModule, the callbacks and the Trainer are instantiated from the
config; fit, then test on the best checkpoint) with the template's default callbacks (best and last
checkpoints on val/acc, early stopping with patience 100, the rich model summary and progress bar) and
its config tree printed first, as its `extras` do. Written for benchmarks/end_to_end.py's `template`
case; needs `pip install -e .[bench]` (Lightning).

    python benchmarks/template/train.py                 # 64-256-256-10, dropout 0.3, Adam 0.001, 30 epochs
    python benchmarks/template/train.py trainer.max_epochs=2
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import lightning as L
import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the template's `src` package: these modules


def print_config_tree(cfg: DictConfig) -> None:
    """The template's `extras.print_config`: each top-level group as a branch of a rich tree."""
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    for group in ("data", "model", "callbacks", "trainer", "seed"):
        branch = tree.add(group, style="dim", guide_style="dim")
        value = cfg.get(group)
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        branch.add(rich.syntax.Syntax(text, "yaml"))
    rich.print(tree)


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float:
    print_config_tree(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(cfg.model)
    callbacks = [hydra.utils.instantiate(callback) for callback in cfg.callbacks.values()]
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=False)
    trainer.fit(model=model, datamodule=datamodule)
    trainer.test(model=model, datamodule=datamodule, ckpt_path=trainer.checkpoint_callback.best_model_path)
    return float(trainer.callback_metrics["test/acc"])


if __name__ == "__main__":
    main()
