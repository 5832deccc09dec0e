"""`debug=profile` (`trainer.profile_steps=N`): torch.profiler over N training steps after one warm-up step.

It leaves two files in the run folder: profile.trace.json, a Chrome trace of every operation (open it in
https://ui.perfetto.dev or chrome://tracing), and profile.txt, a table of the operations that took the most
time. The warm-up step is left out because a first step pays for allocations and kernel choices once.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from types import TracebackType

import torch
from torch.profiler import ProfilerActivity, profile, schedule

from nnexp.atomic import write_atomically

log = logging.getLogger("nnexp")

TRACE_FILE = "profile.trace.json"
TABLE_FILE = "profile.txt"
TOP_OPERATIONS = 25  # rows of profile.txt


class StepProfiler:
    """A context around the epoch loop; `step()` after each training batch. Off (costs nothing) when
    `steps` is None."""

    def __init__(self, folder: Path, steps: int | None, device: torch.device) -> None:
        self.folder, self.steps, self.device = Path(folder), steps, device
        self.written = False
        self._profile: profile | None = None

    @property
    def on(self) -> bool:
        return self.steps is not None

    def __enter__(self) -> StepProfiler:
        if self.on:
            # Kineto (the profiler's C++ side) prints its stages to stderr, and on a machine without a GPU an
            # ERROR that it found none: noise around the one line that matters. Read when it starts.
            os.environ.setdefault("KINETO_LOG_LEVEL", "6")
            activities = [ProfilerActivity.CPU]
            if self.device.type == "cuda":
                activities.append(ProfilerActivity.CUDA)
            self._profile = profile(
                activities=activities,
                schedule=schedule(wait=0, warmup=1, active=self.steps, repeat=1),
                on_trace_ready=self._write,
            )
            self._profile.__enter__()
        return self

    def step(self) -> None:
        if self._profile is not None and not self.written:
            self._profile.step()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._profile is None:
            return
        self._profile.__exit__(kind, error, trace)  # a run shorter than the window: what it recorded
        if not self.written and kind is None:
            log.warning("profile: the run ended before a step after the warm-up one: nothing profiled")

    def _write(self, profiler: profile) -> None:
        """torch.profiler's on_trace_ready: the trace and the table, each written whole."""
        with tempfile.TemporaryDirectory() as scratch:  # the exporter writes a path, not a file object
            exported = Path(scratch) / TRACE_FILE
            profiler.export_chrome_trace(str(exported))
            write_atomically(self.folder / TRACE_FILE, exported.read_bytes())
        on_gpu = self.device.type == "cuda"
        table = profiler.key_averages().table(
            sort_by="self_device_time_total" if on_gpu else "self_cpu_time_total", row_limit=TOP_OPERATIONS
        )
        write_atomically(self.folder / TABLE_FILE, table + "\n")
        self.written = True
        log.info(
            "profile: %d training steps; the top operations by their own %s time are in %s, a Chrome trace "
            "in %s (open it in https://ui.perfetto.dev)",
            self.steps,
            "GPU" if on_gpu else "CPU",
            self.folder / TABLE_FILE,
            self.folder / TRACE_FILE,
        )
