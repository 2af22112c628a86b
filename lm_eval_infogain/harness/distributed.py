"""Data parallelism under ``accelerate launch -m lm_eval`` / ``torchrun -m lm_eval``.

lm-eval splits documents over ranks itself (``rank`` / ``world_size`` of the model) and, from
0.4.12 on, synchronises through the model's ``all_gather`` / ``barrier`` / ``gather_object``; up to
0.4.11 it called ``lm.accelerator.gather`` / ``wait_for_everyone`` directly. Both paths end up here.

The rank is accelerate's *global* ``process_index`` (``local_process_index`` would make the ranks
of a second node score the same documents as the first).

On a machine without CUDA (or with ``device=cpu``) the accelerator is created with ``cpu=True``,
so the processes form a gloo group by themselves: without it, plain ``torchrun`` on CPU leaves
accelerate in single-process mode and every process would evaluate every document as rank 0. The
launcher's ``WORLD_SIZE`` must match what accelerate sees, else :class:`DataParallelError`.
CPU devices are plain ``cpu`` (accelerate reports ``cpu:0``, which e.g. safetensors rejects).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, Callable

import torch

__all__ = ["Parallel", "AcceleratorProxy", "DataParallelError", "launched_world_size"]


class DataParallelError(RuntimeError):
    """The launcher started several processes, but they do not form one process group."""


def launched_world_size() -> int:
    """``WORLD_SIZE`` as set by ``torchrun`` / ``accelerate launch`` (1 when not launched so)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def wants_cpu(requested_device: str | None) -> bool:
    """Data parallel over CPU processes: no CUDA here, or the user asked for the CPU."""
    if requested_device is not None and torch.device(requested_device).type == "cpu":
        return True
    return not torch.cuda.is_available()


class Parallel:
    """The process group of a run (a single process when not launched distributed)."""

    def __init__(self, requested_device: str | None = None) -> None:
        self.accelerator: Any = None
        self.rank = 0
        self.world_size = 1
        launched = launched_world_size()
        if launched > 1:
            from accelerate import Accelerator
            from accelerate.utils import InitProcessGroupKwargs

            # A long timeout: ranks wait for each other at the end of every request type.
            self.accelerator = Accelerator(
                cpu=wants_cpu(requested_device),
                kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(weeks=52))],
            )
            self.rank = int(self.accelerator.process_index)
            self.world_size = int(self.accelerator.num_processes)
            if self.world_size != launched:
                raise DataParallelError(
                    f"launched as {launched} processes (WORLD_SIZE), but accelerate sees {self.world_size} "
                    f"({self.accelerator.distributed_type}); every process would evaluate every document"
                )

    @property
    def device(self) -> torch.device | None:
        if self.accelerator is None:
            return None
        device = torch.device(self.accelerator.device)
        return torch.device("cpu") if device.type == "cpu" else device

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor if self.world_size == 1 else self.accelerator.gather(tensor)

    def gather_object(self, obj: Any, dst: int = 0) -> list[Any] | None:
        if self.world_size == 1:
            return [obj]
        result: list[Any] | None = [None] * self.world_size if self.rank == dst else None
        torch.distributed.gather_object(obj, object_gather_list=result, dst=dst)
        return result

    def barrier(self) -> None:
        if self.world_size > 1:
            self.accelerator.wait_for_everyone()


class AcceleratorProxy:
    """What lm-eval <= 0.4.11 sees as ``lm.accelerator``: the real one, except that waiting for
    everyone also runs the model's barrier work (gathering statistics to rank 0)."""

    def __init__(self, accelerator: Any, barrier: Callable[[], None]):
        self._accelerator = accelerator
        self._barrier = barrier

    def wait_for_everyone(self) -> None:
        self._barrier()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._accelerator, name)
