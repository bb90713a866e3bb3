"""``make gpu-check``: every GPU check in one prepared run of at most 8 minutes, figures to results.json.

A machine with a GPU is at hand for a few minutes at a time, so everything that needs CUDA runs
here at once, each part in its own process with its own time budget (a part that fails or runs
past its budget is recorded as such, and the next one starts):

- ``cuda_tests`` (100 s): ``pytest -m cuda`` on the modules that hold them, the tests skipped without CUDA;
- ``train_gpu_1m`` (90 s): ``bench_train_gpu`` on 1M rows: ``fit``'s samples/s vs the bare loop, GPU
  utilisation, the fraction of time in kernels, peak memory;
- ``variants_1m`` (110 s): training epochs with bf16 off/on × ``torch.compile`` off/on: samples/s,
  warm-up (compile) time, peak memory, utilisation;
- ``ddp_1m`` (70 s): ``fit`` on one GPU vs all visible GPUs with DDP over NCCL (skipped with one GPU);
- ``train_gpu_10m`` (100 s): ``bench_train_gpu`` on 10M rows, skipped when less than 60 s are left.

The figures go to ``benchmarks/results.json`` under ``"gpu_check"`` with the GPU's name, after each
part; the ``train_gpu_*`` entries are also merged into ``"benchmarks"`` as ``make bench`` would, and
``benchmarks/RESULTS.md`` is rewritten. Without CUDA it says so and exits 0 (nothing written). It
needs only the repository and its ``.venv``: no network, no services. The exit status is 1 when a
part failed or ran out of time, else 0.

    python -m benchmarks.gpu_check [--budget 470] [--results benchmarks/results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.json"
TOTAL_BUDGET_S = 470.0  # under the 8 minutes promised, with room for start-up and the final write
BATCH = 8192


@dataclass(frozen=True)
class Part:
    """One check: its name, its time budget and the least time worth starting it with."""

    name: str
    budget_s: float
    min_s: float


PARTS = (
    Part("cuda_tests", 100, 30),
    Part("train_gpu_1m", 90, 30),
    Part("variants_1m", 110, 40),
    Part("ddp_1m", 70, 30),
    Part("train_gpu_10m", 100, 60),
)


def timeout_for(part: Part, remaining_s: float) -> float | None:
    """The seconds ``part`` may run with ``remaining_s`` left in all; None: not worth starting."""
    if remaining_s < part.min_s:
        return None
    return min(part.budget_s, remaining_s)


# -- without CUDA -------------------------------------------------------------------------------


def no_cuda_message() -> str | None:
    """Why there is nothing to check here, or None when CUDA is available."""
    import torch

    if torch.cuda.is_available():
        return None
    build = f"torch {torch.__version__}, " + (
        f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    )
    smi = shutil.which("nvidia-smi")
    driver = "nvidia-smi found but torch sees no GPU" if smi else "no nvidia-smi"
    return (
        f"gpu-check: no CUDA on this machine ({build}; {driver}): nothing to check, "
        "benchmarks/results.json left as it is"
    )


# -- the parts, each run in its own process -----------------------------------------------------


def cuda_test_files() -> list[str]:
    """The test modules that hold ``cuda``-marked tests: only these are collected, so a GPU machine's
    Python needs torch and the training code's few dependencies, not Airflow or MLflow."""
    files = (path for path in sorted((ROOT / "tests").rglob("test_*.py")) if "mark.cuda" in path.read_text())
    return [str(path.relative_to(ROOT)) for path in files]


def part_cuda_tests(record: Callable[[str, Any], None], workdir: Path) -> None:
    """``pytest -m cuda`` on the modules with CUDA tests: counts, failures and the pytest status."""
    report = workdir / "cuda-tests.xml"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-m", "cuda"]
    argv += cuda_test_files()
    status = subprocess.run([*argv, f"--junitxml={report}"], cwd=ROOT).returncode
    record("command", " ".join(argv[2:]))
    record("exit_status", status)
    record("ok", status == 0)
    if report.exists():
        record("counts", junit_counts(report.read_text()))
        record("failed", junit_failures(report.read_text()))


def junit_counts(xml: str) -> dict[str, int]:
    """tests / failures / errors / skipped of a pytest JUnit XML report."""
    root = ET.fromstring(xml)
    inner = root.find("testsuite")
    suite = inner if root.tag != "testsuite" and inner is not None else root
    return {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}


def junit_failures(xml: str) -> list[dict[str, str]]:
    """The failed or erroring tests of a JUnit XML report, with the first line of their message."""
    failed = []
    for case in ET.fromstring(xml).iter("testcase"):
        for outcome in ("failure", "error"):
            node = case.find(outcome)
            if node is not None:
                message = (node.get("message") or node.text or "").strip().splitlines()
                failed.append(
                    {
                        "test": f"{case.get('classname')}::{case.get('name')}",
                        "outcome": outcome,
                        "message": message[0][:300] if message else "",
                    }
                )
    return failed


def part_train_gpu(record: Callable[[str, Any], None], rows: int) -> None:
    """``bench_train_gpu.bench_gpu(rows)``: the entry ``make bench`` would write."""
    from benchmarks.bench_train_gpu import bench_gpu

    record("entry", bench_gpu(rows, batch_size=BATCH))


def part_variants(record: Callable[[str, Any], None], rows: int, epochs: int = 2) -> None:
    """Training epochs with bf16 off/on and torch.compile off/on, the compiled ones last."""
    import torch

    n = max(BATCH, rows // BATCH * BATCH)  # whole batches: one shape for torch.compile
    record("rows", n)
    record("epochs", epochs)
    record("batch_size", BATCH)
    bf16_options = (False, True) if torch.cuda.is_bf16_supported() else (False,)
    for compiled in (False, True):
        for bf16 in bf16_options:
            name = f"bf16_{'on' if bf16 else 'off'}_compile_{'on' if compiled else 'off'}"
            try:
                record(name, train_variant(n, epochs, bf16, compiled))
            except Exception as exc:  # one variant failing (a compiler error) leaves the others
                record(name, {"error": f"{type(exc).__name__}: {exc}"[:500]})


def train_variant(rows: int, epochs: int, bf16: bool, compiled: bool) -> dict[str, float | None]:
    """samples/s, warm-up (compile) seconds, peak memory and utilisation of ``epochs`` training epochs."""
    import torch

    from benchmarks.bench_train_gpu import UtilisationSampler, peak_memory_mib
    from benchmarks.bench_train_loop import make_data, new_model
    from pipelines.common.config import TrainConfig
    from pipelines.train.distributed import SINGLE
    from pipelines.train.loop import make_optimizer, positive_weight, train_epoch
    from pipelines.train.placement import Placement, training_module

    device = torch.device("cuda", 0)
    cfg = TrainConfig(batch_size=BATCH, gpu_batch_size=BATCH, compile=compiled)
    data = make_data(rows).to(device)
    model = new_model(cfg, 0).to(device)
    net = training_module(model, Placement(device, BATCH, bf16=bf16, compile=compiled), SINGLE)
    weight = torch.tensor(positive_weight(data.train_target), device=device)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=weight)
    opt = make_optimizer(model, cfg)

    def epoch() -> None:
        train_epoch(
            net,
            opt,
            loss_fn,
            data.train_numeric,
            data.train_categorical,
            data.train_target,
            BATCH,
            None,
            bf16,
        )

    start = time.perf_counter()
    epoch()  # warm-up: compiles when asked
    torch.cuda.synchronize(device)
    warmup_s = time.perf_counter() - start
    torch.cuda.reset_peak_memory_stats(device)
    with UtilisationSampler(0) as util:
        start = time.perf_counter()
        for _ in range(epochs):
            epoch()
        torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    return {
        "samples_per_s": rows * epochs / seconds,
        "warmup_s": warmup_s,
        "peak_memory_mib": peak_memory_mib(device),
        "gpu_util_pct": util.mean,
    }


def part_ddp(record: Callable[[str, Any], None], workdir: Path, rows: int, epochs: int = 3) -> None:
    """``fit`` on one GPU, then in one process per visible GPU (DDP, NCCL) under torchrun."""
    import torch

    gpus = torch.cuda.device_count()
    record("gpus", gpus)
    if gpus < 2:
        record("skipped", f"{gpus} visible GPU: DDP needs two or more (NCCL takes one GPU per process)")
        return
    single = ddp_fit(rows, epochs)
    record("one_gpu", single)
    torch.cuda.empty_cache()  # the processes below share GPU 0 with this one
    out = workdir / "ddp.json"
    argv = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={gpus}",
        "-m",
        "benchmarks.gpu_check",
        "--ddp-worker",
        "--rows",
        str(rows),
        "--epochs",
        str(epochs),
        "--out",
        str(out),
    ]
    status = subprocess.run(argv, cwd=ROOT, env=part_env()).returncode
    record("torchrun_exit_status", status)
    if status != 0 or not out.exists():
        raise RuntimeError(f"torchrun over {gpus} GPUs exited with status {status}")
    every = json.loads(out.read_text())
    record("all_gpus", every)
    ratio = every["samples_per_s"] / single["samples_per_s"]
    record("ratio", ratio)
    record("scaling_efficiency", ratio / gpus)


def ddp_fit(rows: int, epochs: int) -> dict[str, Any]:
    """``fit`` on the benchmark's data in this process: alone, or as one rank of a torchrun group."""
    import torch

    from benchmarks.bench_train_gpu import peak_memory_mib
    from benchmarks.bench_train_loop import make_data, new_model
    from pipelines.common.config import TrainConfig
    from pipelines.train.distributed import SINGLE, init_group
    from pipelines.train.loop import fit

    cfg = TrainConfig(epochs=epochs, batch_size=BATCH, gpu_batch_size=BATCH, patience=epochs, device="cuda")
    group = init_group(cfg) if "RANK" in os.environ else SINGLE
    device = group.device if group.distributed else torch.device("cuda", 0)
    torch.cuda.reset_peak_memory_stats(device)
    result = fit(new_model(cfg, 0), make_data(rows), cfg, device, group=group)
    return {
        "processes": group.world_size,
        "samples_per_s": result.samples_per_s,
        "peak_memory_mib_rank0": peak_memory_mib(device),
        "placement": result.placement.describe() if result.placement else {},
    }


def ddp_worker(rows: int, epochs: int, out: Path) -> int:
    """One rank under torchrun: fit in the group; rank 0 writes the figures."""
    import torch.distributed as dist

    try:
        figures = ddp_fit(rows, epochs)
        if int(os.environ.get("RANK", "0")) == 0:
            out.write_text(json.dumps(figures))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


def run_part(name: str, workdir: Path, out: Path) -> int:
    """Run part ``name`` in this process, recording its figures in ``out`` as they come."""
    figures: dict[str, Any] = {}

    def record(key: str, value: Any) -> None:
        figures[key] = value
        out.write_text(json.dumps(figures, default=str))

    if name == "cuda_tests":
        part_cuda_tests(record, workdir)
    elif name.startswith("train_gpu_"):
        part_train_gpu(record, rows_of(name))
    elif name.startswith("variants_"):
        part_variants(record, rows_of(name))
    elif name.startswith("ddp_"):
        part_ddp(record, workdir, rows_of(name))
    else:
        raise SystemExit(f"unknown part {name!r}; expected one of {[p.name for p in PARTS]}")
    return 0


def rows_of(name: str) -> int:
    """``train_gpu_10m`` → 10 000 000; ``variants_250k`` → 250 000."""
    size = name.rsplit("_", 1)[1]
    scale = {"k": 1_000, "m": 1_000_000}.get(size[-1], 1)
    return int(size.rstrip("km")) * scale


# -- the driver ---------------------------------------------------------------------------------


def part_env() -> dict[str, str]:
    """The environment of a part: the repository first on the path (the venv may come from elsewhere)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false"}


def spawn(argv: list[str], timeout_s: float) -> tuple[str, float]:
    """Run ``argv`` in its own process group, killed whole at ``timeout_s``: (outcome, seconds)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, env=part_env(), start_new_session=True)
    try:
        status = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return "timed out", time.perf_counter() - start
    except BaseException:  # Ctrl-C: the part and everything it started go too
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    outcome = "ok" if status == 0 else f"failed (exit status {status})"
    return outcome, time.perf_counter() - start


def gpu_description() -> dict[str, Any]:
    """The GPUs as torch and nvidia-smi see them."""
    import torch

    info: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name(0),
        "gpus": torch.cuda.device_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "bf16_supported": torch.cuda.is_bf16_supported(),
        "memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
    }
    smi = shutil.which("nvidia-smi")
    if smi:
        query = [smi, "--query-gpu=name,driver_version", "--format=csv,noheader"]
        done = subprocess.run(query, capture_output=True, text=True)
        info["nvidia_smi"] = done.stdout.strip().splitlines() if done.returncode == 0 else done.stderr.strip()
    return info


def save(results_path: Path, check: dict[str, Any]) -> None:
    """Merge ``check`` under ``"gpu_check"`` (and its ``train_gpu_*`` entries under ``"benchmarks"``)."""
    from benchmarks import run

    results = json.loads(results_path.read_text()) if results_path.exists() else {"benchmarks": {}}
    results["gpu_check"] = check
    for name, part in check["parts"].items():
        entry = part.get("entry")
        if name.startswith("train_gpu_") and entry and "ratio" in entry:
            results.setdefault("benchmarks", {})[name] = {
                **entry,
                "machine": check["machine"],
                "when": check["when"],
            }
    if results_path.resolve() == run.RESULTS.resolve():
        run.write(results)  # results.json and RESULTS.md
    else:
        results_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def check_all(results_path: Path, budget_s: float) -> int:
    """Run every part within ``budget_s``, saving after each; 1 when one failed or timed out."""
    from benchmarks import run

    deadline = time.monotonic() + budget_s
    check: dict[str, Any] = {
        **gpu_description(),
        "machine": run.machine(),
        "when": datetime.now(UTC).isoformat(),
        "budget_s": budget_s,
        "parts": {},
    }
    print(f"gpu-check on {check['gpu']} ×{check['gpus']}, {budget_s:.0f} s in all", flush=True)
    bad = 0
    with tempfile.TemporaryDirectory(prefix="flywheel-gpu-check-") as tmp:
        for part in PARTS:
            timeout = timeout_for(part, deadline - time.monotonic())
            if timeout is None:
                left = deadline - time.monotonic()
                note = f"skipped: {left:.0f} s left of the budget, the part needs at least {part.min_s:.0f} s"
                check["parts"][part.name] = {"outcome": note}
                print(f"== {part.name}: {note}", flush=True)
                save(results_path, check)
                continue
            print(f"== {part.name} (up to {timeout:.0f} s)", flush=True)
            out = Path(tmp) / f"{part.name}.json"
            argv = [sys.executable, "-m", "benchmarks.gpu_check", "--part", part.name]
            outcome, seconds = spawn([*argv, "--workdir", tmp, "--out", str(out)], timeout)
            figures = json.loads(out.read_text()) if out.exists() else {}
            if part.name == "cuda_tests" and outcome == "ok" and not figures.get("ok"):
                outcome = f"failed (pytest exit status {figures.get('exit_status')})"
            bad += outcome != "ok"
            check["parts"][part.name] = {"outcome": outcome, "seconds": round(seconds, 1), **figures}
            print(f"== {part.name}: {outcome} in {seconds:.0f} s", flush=True)
            save(results_path, check)
    print(summary(check))
    print(f"results: {results_path} (key 'gpu_check')")
    return 1 if bad else 0


def summary(check: dict[str, Any]) -> str:
    """A few lines a person reads at the end of the run."""
    lines = [f"gpu-check on {check['gpu']} ×{check['gpus']}:"]
    for name, part in check["parts"].items():
        line = f"  {name}: {part['outcome']}"
        entry = part.get("entry") or {}
        if "ratio" in entry:
            fly = entry["flywheel"]
            line += (
                f"; fit {fly['samples_per_s']:,.0f} samples/s = {entry['ratio']:.2f}× the bare loop, "
                f"GPU util {fly.get('gpu_util_pct')}, kernel time {fly.get('kernel_time_fraction'):.2f}, "
                f"peak {fly.get('peak_memory_mib', 0):,.0f} MiB"
            )
        if "skipped" in part:
            line += f"; {part['skipped']}"
        if "counts" in part:
            line += f"; {part['counts']}"
        if "ratio" in part and name.startswith("ddp_"):
            line += f"; {part['ratio']:.2f}× one GPU over {part['gpus']}"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``make gpu-check``; ``--part NAME`` and ``--ddp-worker`` are the processes it starts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=TOTAL_BUDGET_S, help="seconds for all parts")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=1_000_000, help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ddp_worker:
        return ddp_worker(args.rows, args.epochs, args.out)
    if args.part:
        return run_part(args.part, args.workdir, args.out)
    message = no_cuda_message()
    if message is not None:
        print(message)
        return 0
    return check_all(args.results, args.budget)


if __name__ == "__main__":
    sys.exit(main())
