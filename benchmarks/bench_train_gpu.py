"""GPU training throughput of Flywheel's ``fit``: samples/s, GPU utilisation, time in kernels.

Where CUDA exists, :func:`bench_gpu` trains the benchmark's :class:`TabularNet` on
``rows`` synthetic rows (resident on the GPU, bf16 autocast, ``gpu_batch_size``) and
reports:

- training samples/s of ``fit`` (validation excluded) beside the bare fp32 PyTorch loop
  of ``bench_train_loop`` at the same batch size (ratio = Flywheel / bare loop);
- GPU utilisation during ``fit``: the mean of NVML samples (``nvidia-ml-py`` when
  installed, else ``nvidia-smi``), None when neither is there;
- the fraction of the GPU's time spent in kernels: the union of CUDA kernel intervals
  recorded by ``torch.profiler`` over ``profile_steps`` training steps, divided by the
  wall time of those steps (the profiler's own overhead included, so a lower bound);
- the peak GPU memory allocated by each side (``torch.cuda.max_memory_allocated``, MiB).

Without CUDA it returns ``{"name", "skipped": "skipped: no CUDA"}``; ``benchmarks/run.py``
registers it only where CUDA exists.

    python -m benchmarks.bench_train_gpu --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable

import torch

from benchmarks.bench_train_loop import bare_loop, make_data, new_model
from pipelines.common.config import TrainConfig
from pipelines.train.loop import fit, positive_weight, train_epoch
from pipelines.train.placement import plan_placement


def label(rows: int) -> str:
    """``1000000`` → ``1m``, ``250000`` → ``250k``."""
    if rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}m"
    return f"{rows // 1000}k" if rows % 1000 == 0 else str(rows)


def _nvml_reader(index: int) -> Callable[[], float] | None:
    try:
        import pynvml
    except ImportError:
        pynvml = None
    if pynvml is not None:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        return lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    argv = [smi, f"--id={index}", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
    return lambda: float(subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip())


class UtilisationSampler:
    """Samples GPU utilisation (percent) in a thread while the ``with`` block runs."""

    def __init__(self, index: int = 0, interval_s: float = 0.2) -> None:
        self.read = _nvml_reader(index)
        self.interval_s = interval_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.samples.append(self.read())
            except Exception:  # a failed sample is a missing sample
                pass

    def __enter__(self) -> UtilisationSampler:
        if self.read is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def peak_memory_mib(device: torch.device) -> float:
    """The most GPU memory PyTorch allocated on ``device`` since the last reset, in MiB."""
    return torch.cuda.max_memory_allocated(device) / 2**20


def busy_time_us(intervals: list[tuple[float, float]]) -> float:
    """Total length of the union of ``(start, end)`` intervals."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def kernel_time_fraction(cfg: TrainConfig, rows: int, steps: int, device: torch.device) -> float:
    """Share of the wall time of ``steps`` profiled training steps during which a kernel ran."""
    from torch.profiler import ProfilerActivity, profile

    data = make_data(min(rows, steps * cfg.gpu_batch_size)).to(device)
    model = new_model(cfg, 0).to(device)
    placement = plan_placement(cfg, device, data.nbytes)
    weight = torch.tensor(positive_weight(data.train_target), device=device)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=weight)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)

    def one_epoch() -> None:
        train_epoch(
            model,
            opt,
            loss_fn,
            data.train_numeric,
            data.train_categorical,
            data.train_target,
            cfg.gpu_batch_size,
            bf16=placement.bf16,
        )
        torch.cuda.synchronize(device)

    one_epoch()  # warm-up: cuBLAS handles, allocator
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        one_epoch()
        wall_us = (time.perf_counter() - start) * 1e6
    kernels = [
        (e.time_range.start, e.time_range.end)
        for e in prof.events()
        if e.device_type == torch.autograd.DeviceType.CUDA
    ]
    return busy_time_us(kernels) / wall_us if wall_us > 0 else float("nan")


def bench_gpu(rows: int, epochs: int = 3, batch_size: int = 8192, profile_steps: int = 200) -> dict:
    """samples/s, GPU utilisation and kernel-time fraction of ``fit`` on ``rows`` rows.

    Skipped without CUDA.
    """
    name = f"train_gpu_{label(rows)}"
    if not torch.cuda.is_available():
        return {"name": name, "skipped": "skipped: no CUDA", "rows": rows}
    device = torch.device("cuda")
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, gpu_batch_size=batch_size, patience=epochs)
    data = make_data(rows)
    warm = cfg.model_copy(update={"epochs": 1, "patience": 1})
    fit(new_model(warm, 0), data, warm, device)
    torch.cuda.reset_peak_memory_stats(device)
    with UtilisationSampler(device.index or 0) as util:
        result = fit(new_model(cfg, 0), data, cfg, device)
    fit_peak = peak_memory_mib(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    baseline = bare_loop(new_model(cfg, 0), data.to(device), cfg, device)
    bare_peak = peak_memory_mib(device)
    fraction = kernel_time_fraction(cfg, rows, profile_steps, device)
    placement = result.placement.describe() if result.placement else {}
    return {
        "name": name,
        "flywheel": {
            "samples_per_s": result.samples_per_s,
            "gpu_util_pct": util.mean,
            "kernel_time_fraction": fraction,
            "peak_memory_mib": fit_peak,
        },
        "baseline": {"samples_per_s": baseline, "peak_memory_mib": bare_peak},
        "ratio": result.samples_per_s / baseline,
        "rows": rows,
        "epochs": epochs,
        "batch_size": batch_size,
        "placement": placement,
        "gpu": torch.cuda.get_device_name(device),
        "notes": f"{rows:,} rows × {epochs} epochs on {torch.cuda.get_device_name(device)}, "
        f"batch {batch_size}; "
        f"fit with {placement} vs the bare fp32 loop at the same batch; GPU utilisation = mean NVML sample "
        f"during fit; kernel_time_fraction = union of CUDA kernel intervals / wall time over "
        f"{profile_steps} profiled steps (torch.profiler; its overhead included).",
    }


def main() -> None:
    """Print the benchmark result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8192)
    args = parser.parse_args()
    print(json.dumps(bench_gpu(args.rows, args.epochs, args.batch_size), indent=2))


if __name__ == "__main__":
    main()
