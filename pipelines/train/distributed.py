"""Training on several devices: DDP, launched with ``torchrun``, one process per GPU.

With ``train.devices > 1``, the stage re-launches itself as

    python -m torch.distributed.run --standalone --nproc-per-node N -m <worker module> ...

(one process per GPU with NCCL; without CUDA, N CPU processes with gloo, which is how
the tests run it). Each process trains on its own shard of the training rows; DDP
all-reduces the gradients; rank 0 validates, decides early stopping for all, logs to
MLflow, writes the checkpoints and the stage's outputs, and leaves its summary in a
file the launcher reads back. :class:`Group` is the little the training loop needs
to know about its process group; the default one is a single process and costs nothing.

This module knows nothing of the stage: :func:`launch` is told which worker module to
start, and that module hands its work to :func:`run_worker` (``pipelines.train.worker``
for the train stage).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from pipelines.train.errors import TrainError

if TYPE_CHECKING:
    from pipelines.common.config import Params, TrainConfig
    from pipelines.common.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Group:
    """This process's place among the training processes (one process: every method is a no-op)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that validates, logs and writes outputs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def device(self) -> torch.device:
        """The device this process trains on: its own GPU with NCCL, else the CPU."""
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")

    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank (a collective: all ranks call it together)."""
        if not self.distributed:
            return flag
        value = torch.tensor([int(flag)], device=self.device)
        dist.broadcast(value, src=0)
        return bool(value.item())

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of ``value`` over the ranks."""
        if not self.distributed:
            return value
        total = value.detach().clone()
        dist.all_reduce(total)
        return total / self.world_size

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


SINGLE = Group()

if TYPE_CHECKING:  # what one training process runs; rank 0's summary is kept
    Worker = Callable[[Params, Settings, Path, Group], dict[str, Any]]


def processes_for(cfg: TrainConfig, cuda_devices: int) -> int:
    """How many training processes ``train.devices`` means on a machine with ``cuda_devices`` GPUs."""
    if cfg.devices <= 1:
        return 1
    if cfg.device != "cpu" and cuda_devices > 0:
        if cuda_devices < cfg.devices:
            log.warning(
                "train.devices is %d but %d CUDA devices are visible; using %d",
                cfg.devices,
                cuda_devices,
                cuda_devices,
            )
        return min(cfg.devices, cuda_devices)
    log.warning("train.devices is %d without CUDA: %d CPU processes with gloo", cfg.devices, cfg.devices)
    return cfg.devices


def torchrun_argv(
    module: str, nproc: int, workspace: Path, params: Path, summary: Path, python: str = sys.executable
) -> list[str]:
    """The command that runs worker ``module`` in ``nproc`` processes on this machine."""
    return [
        python,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        module,
        "--workspace",
        str(workspace),
        "--params",
        str(params),
        "--summary",
        str(summary),
    ]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: killed with us


def _stdout_to_stderr() -> int | None:
    try:
        return sys.stderr.fileno()  # the CLI's stdout carries only its JSON summary
    except (AttributeError, OSError, ValueError):
        return None


def launch(module: str, nproc: int, params: Params, settings: Settings, workspace: Path) -> dict[str, Any]:
    """Run worker ``module`` under torchrun in ``nproc`` processes with ``params``; return rank 0's summary.

    The torchrun process gets SIGTERM if this one dies (Linux), and stops its workers.
    """
    import yaml

    with tempfile.TemporaryDirectory(prefix="flywheel-ddp-") as tmp:
        summary, params_path = Path(tmp) / "summary.json", Path(tmp) / "params.yaml"
        params_path.write_text(yaml.safe_dump(params.model_dump(mode="json", by_alias=True), sort_keys=False))
        argv = torchrun_argv(module, nproc, workspace, params_path, summary)
        log.info("training in %d processes: %s", nproc, " ".join(argv))
        threads = str(max(1, (os.cpu_count() or 1) // nproc))
        env = {"OMP_NUM_THREADS": threads, **os.environ, **settings.as_env()}
        proc = subprocess.run(
            argv,
            cwd=workspace,
            env=env,
            stdout=_stdout_to_stderr(),
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        if proc.returncode != 0 or not summary.exists():
            raise TrainError(
                f"distributed training failed: torchrun exited with status {proc.returncode}; "
                f"the workers' errors are in the log above (`{' '.join(argv)}`)"
            )
        result: dict[str, Any] = json.loads(summary.read_text())
        return result


# -- inside a worker torchrun started ----------------------------------------------------------------


def init_group(cfg: TrainConfig) -> Group:
    """Join the process group torchrun set up: NCCL on one GPU per process, else gloo on the CPU."""
    use_cuda = cfg.device != "cpu" and torch.cuda.is_available()
    group = Group(
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ["LOCAL_RANK"]),
        backend="nccl" if use_cuda else "gloo",
    )
    if use_cuda:
        torch.cuda.set_device(group.local_rank)
        dist.init_process_group("nccl", device_id=group.device)
    else:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // group.world_size))
        dist.init_process_group("gloo")
    return group


def worker_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments :func:`torchrun_argv` gives a worker: ``--workspace``, ``--params``, ``--summary``."""
    parser = argparse.ArgumentParser(description="one DDP training process (started by torchrun)")
    parser.add_argument("--workspace", required=True, type=Path)
    parser.add_argument("--params", required=True, type=Path, help="the stage's params (written by launch)")
    parser.add_argument("--summary", required=True, type=Path, help="where rank 0 writes its summary")
    return parser.parse_args(argv)


def run_worker(work: Worker, argv: list[str] | None = None) -> int:
    """One training process: join the group, run ``work`` (rank 0 writes its summary), leave the group."""
    from pipelines.common.config import load_params
    from pipelines.common.settings import Settings

    args = worker_args(argv)
    rank = os.environ.get("RANK", "?")
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s [rank {rank}] %(name)s: %(message)s",
    )
    params = load_params(args.params)
    group = init_group(params.train)
    try:
        summary = work(params, Settings.from_env(), args.workspace, group)
        if group.is_main:
            args.summary.write_text(json.dumps(summary, default=str))
    finally:
        dist.destroy_process_group()
    return 0
