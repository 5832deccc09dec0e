"""What training is made of: the experiment's objects built from the config (build), one training step
and evaluation for every task (loop; start reading at `loop.train_one_epoch`), text generation, losses,
metrics, regularisation, augmentation, the divergence and signal safeguards, and the learning-rate finder.
Nothing here writes files: runs/ records what training does."""
