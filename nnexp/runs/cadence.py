"""When the epoch loop's bookkeeping happens: the checkpoint on a time cadence, the console line at most
about once a second. Both exist so that a tiny epoch (full-batch digits: about 3 ms) is not outweighed by
its records; metrics.csv still gets every epoch's row, unless trainer.log_every_n_epochs asks for
every Nth (runs/epoch_log.py).
"""

from __future__ import annotations

import time

# The checkpoint's default cadence (trainer.checkpoint_every_s). The checkpoint of a 2,000-epoch full-batch
# digits run (model, optimiser and the 2,000-row history: 392 KB), fsynced, took 100-180 ms to write on
# the 2-core development machine at load average 12 (1.5-12 ms without the history), so one write every
# 30 s costs under 0.6% of a run even there; a stop repeats at most 30 s of training on resume.
CHECKPOINT_EVERY_S = 30.0

# The console's epoch line: at most one per this many seconds, besides the first and last epochs and any
# epoch that raised a warning. A line is formatted, printed by rich and written to nnexp.log: per epoch,
# that was a visible share of a 3.5 ms full-batch digits epoch, and 2,000 lines are no use to a reader.
CONSOLE_EVERY_S = 1.0

# A stop signal lets an epoch this short finish (so its state is checkpointed and nothing is repeated on
# resume); a longer one stops at the next batch, as before, and resumes from the last checkpoint.
FINISH_EPOCH_UNDER_S = 1.0

# An epoch at least FINISH_EPOCH_UNDER_S long is checkpointed when it ends, whatever the cadence, as long
# as the last write took at most this share of it: a stop in the middle of a long epoch then loses only
# that epoch, not up to checkpoint_every_s of training.
LONG_EPOCH_WRITE_SHARE = 0.05


class Every:
    """Due when `seconds` have passed since it was last marked done (or when forced)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.last = time.monotonic()

    def due(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self.last >= self.seconds:
            self.last = now
            return True
        return False
