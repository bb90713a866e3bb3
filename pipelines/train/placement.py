"""Where training runs and how it uses the hardware: device, batch size, bf16, resident tensors, compile, DDP.

On the CPU: ``train.batch_size``, fp32, all cores. On CUDA: ``train.gpu_batch_size``, bf16
autocast where the GPU supports it, the tensors resident on the GPU when they fit in its free
memory (else pinned on the host and copied per batch), optionally ``torch.compile``. Across
processes the training module is wrapped in DDP.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

if TYPE_CHECKING:
    from pipelines.common.config import TrainConfig
    from pipelines.train.data import TrainingData
    from pipelines.train.distributed import Group

log = logging.getLogger(__name__)

RESIDENT_SHARE = 0.5  # tensors stay on the GPU when they take at most this share of its free memory


def select_device(preference: str, threads: int | None = None) -> torch.device:
    """CUDA when present and allowed by ``train.device``, else CPU with ``threads`` threads (None: all cores).

    A small network on small batches trains fastest on one thread: more threads only wait on each other.
    """
    if preference != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    if preference == "cuda":
        log.warning("train.device is 'cuda' but CUDA is not available; training on CPU")
    torch.set_num_threads(threads or os.cpu_count() or 1)
    return torch.device("cpu")


@dataclass(frozen=True)
class Placement:
    """How :func:`pipelines.train.loop.fit` uses its device."""

    device: torch.device
    batch_size: int
    bf16: bool = False  # forward and loss under CUDA bf16 autocast
    resident: bool = True  # all tensors on the device; else pinned on the host, copied per batch
    compile: bool = False  # torch.compile the training module

    def describe(self) -> dict[str, Any]:
        """The placement as JSON-friendly values (the stage's summary)."""
        return {
            "device": str(self.device),
            "batch_size": self.batch_size,
            "bf16": self.bf16,
            "resident": self.resident,
            "compile": self.compile,
        }


def plan_placement(
    cfg: TrainConfig,
    device: torch.device,
    data_bytes: int,
    free_bytes: int | None = None,
    bf16_supported: bool | None = None,
) -> Placement:
    """CPU: ``train.batch_size``, fp32. CUDA: ``train.gpu_batch_size``, bf16 where supported,
    the tensors resident when they take at most ``RESIDENT_SHARE`` of the free GPU memory.

    ``free_bytes`` and ``bf16_supported`` are read from the device when not given.
    """
    if device.type != "cuda":
        return Placement(device, cfg.batch_size, compile=cfg.compile)
    if free_bytes is None:
        free_bytes = torch.cuda.mem_get_info(device)[0]
    if bf16_supported is None:
        bf16_supported = torch.cuda.is_bf16_supported()
    resident = data_bytes <= RESIDENT_SHARE * free_bytes
    if not resident:
        log.warning(
            "training tensors (%.1f GB) exceed %.0f%% of the free GPU memory (%.1f GB): "
            "kept in pinned host memory, copied per batch",
            data_bytes / 1e9,
            100 * RESIDENT_SHARE,
            free_bytes / 1e9,
        )
    return Placement(device, cfg.gpu_batch_size, bool(bf16_supported), resident, cfg.compile)


def place(data: TrainingData, placement: Placement) -> TrainingData:
    """The tensors where ``placement`` wants them."""
    if placement.resident:
        return data.to(placement.device)
    return data.to(torch.device("cpu")).pinned()


def training_module(model: nn.Module, placement: Placement, group: Group) -> nn.Module:
    """What the training passes call: ``model`` wrapped in DDP across processes, then compiled if
    asked. It shares ``model``'s parameters; validation and checkpoints use ``model`` itself."""
    net = model
    if group.distributed:
        from torch.nn.parallel import DistributedDataParallel

        ids = [placement.device.index] if placement.device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids)
    if placement.compile:
        net = cast(nn.Module, torch.compile(net))  # an OptimizedModule: a Module wrapping ``net``
    return net
