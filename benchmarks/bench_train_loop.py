"""Training throughput of Flywheel's ``fit`` loop against a bare PyTorch loop, in one process.

Both loops train the same :class:`TabularNet` on the same synthetic tensors
(5 numeric + 3 categorical columns) with the same batch size, AdamW optimizer,
class-weighted loss and per-epoch ``torch.randperm`` batch slicing, for the same
number of epochs. Only training is timed: ``fit`` measures its training passes
itself and leaves its per-epoch validation and early-stopping bookkeeping out
(patience is set so it never stops early); the bare loop has neither. Each side
is warmed up once, then run ``repeats`` times alternately; the best run counts.

    python -m benchmarks.bench_train_loop --rows 200000
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from torch import nn

from pipelines.common.config import TrainConfig
from pipelines.train.data import TrainingData
from pipelines.train.loop import fit, make_optimizer, positive_weight, seed_everything
from pipelines.train.network import TabularNet

N_NUMERIC = 5
CARDINALITIES = (12, 7, 4)  # codes per categorical column, the unknown code 0 included


def make_data(rows: int, seed: int = 0) -> TrainingData:
    """Synthetic model tensors with a learnable signal; a validation set of a tenth of ``rows``."""
    rng = np.random.default_rng(seed)
    n = rows + rows // 10
    numeric = rng.standard_normal((n, N_NUMERIC)).astype(np.float32)
    categorical = np.stack([rng.integers(0, c, n) for c in CARDINALITIES], axis=1).astype(np.int64)
    logit = numeric @ rng.normal(size=N_NUMERIC) + (categorical[:, 0] % 3 - 1) - 1.5
    target = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    parts = [torch.from_numpy(a) for a in (numeric, categorical, target)]
    return TrainingData(*(p[:rows] for p in parts), *(p[rows:] for p in parts))


def new_model(cfg: TrainConfig, seed: int) -> TabularNet:
    """A freshly initialised network, identical for both loops."""
    seed_everything(seed)
    return TabularNet(N_NUMERIC, CARDINALITIES, cfg.hidden, cfg.dropout, cfg.max_embedding_dim)


def bare_loop(model: nn.Module, data: TrainingData, cfg: TrainConfig, device: torch.device) -> float:
    """The baseline: a plain PyTorch loop; returns training samples per second."""
    model.to(device).train()
    numeric, categorical, target = data.train_numeric, data.train_categorical, data.train_target
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(positive_weight(target), device=device))
    opt = make_optimizer(model, cfg)
    start = time.perf_counter()
    for _ in range(cfg.epochs):
        order = torch.randperm(len(target), device=device)
        for i in range(0, len(target), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            loss = loss_fn(model(numeric[idx], categorical[idx]), target[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return len(target) * cfg.epochs / (time.perf_counter() - start)


def flywheel_loop(model: TabularNet, data: TrainingData, cfg: TrainConfig, device: torch.device) -> float:
    """Flywheel's :func:`fit`; returns its training samples per second (validation not counted)."""
    return fit(model, data, cfg, device).samples_per_s


def bench(
    rows: int = 200_000,
    epochs: int = 3,
    batch_size: int = 1024,
    repeats: int = 3,
    device: str = "cpu",
    seed: int = 0,
    threads: int | None = None,
) -> dict:
    """Best-of-``repeats`` training throughput of ``fit`` and of the bare loop, and their ratio.

    ``threads`` sets PyTorch's CPU threads for both loops (default: all cores, as training uses).
    """
    dev = torch.device(device)
    torch.set_num_threads(threads or os.cpu_count() or 1)
    data = make_data(rows, seed).to(dev)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, gpu_batch_size=batch_size, patience=epochs)
    warm = cfg.model_copy(update={"epochs": 1, "patience": 1})
    flywheel_loop(new_model(warm, seed), data, warm, dev)
    bare_loop(new_model(warm, seed), data, warm, dev)
    flywheel, baseline = [], []
    for _ in range(repeats):
        flywheel.append(flywheel_loop(new_model(cfg, seed), data, cfg, dev))
        baseline.append(bare_loop(new_model(cfg, seed), data, cfg, dev))
    return {
        "name": "train_loop_samples_per_s",
        "flywheel": {"samples_per_s": max(flywheel)},
        "baseline": {"samples_per_s": max(baseline)},
        "ratio": max(flywheel) / max(baseline),
        "rows": rows,
        "batch_size": batch_size,
        "epochs": epochs,
        "repeats": repeats,
        "device": dev.type,
        "threads": torch.get_num_threads(),
        "timed": "training passes only: fit's per-epoch validation and early-stopping bookkeeping excluded",
        "notes": f"{rows:,} rows × {epochs} epochs, batch {batch_size}, {dev.type}, best of {repeats}; "
        "same TabularNet, AdamW, weighted BCE and randperm slicing; training samples/s only "
        "(fit's validation excluded). Ratio = Flywheel / bare loop (higher is better).",
    }


def main() -> None:
    """Print the benchmark result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="PyTorch CPU threads (default: all cores)")
    args = parser.parse_args()
    result = bench(args.rows, args.epochs, args.batch_size, args.repeats, args.device, threads=args.threads)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
