"""The real/bogus CNN on this machine's CPU: how fast it scores and trains, and how that
compares with what the cores can do at best. No database.

What it measures, in one process (`torch_threads` says how many threads torch used):
- the baseline: float32 matrix multiplication (2048 x 2048, torch.matmul), GFLOP/s, median
  over repeats: about the best rate dense arithmetic reaches here;
- inference: RealBogusCNN in eval mode on batches of 1,024 raw stamps (NaN rows included,
  normalisation inside the model), triplets/s (median over repeats), and the model's
  achieved GFLOP/s as a fraction of the matmul rate. The model's FLOPs per triplet are
  counted analytically: 2 x the multiply-accumulates of its convolutions and dense layers
  (biases, ReLU, pooling and the normalisation are left out: they are a few percent);
- scoring: `predict` on 10,000 triplets, batch 1,024, seconds;
- training: one epoch of `fit` with the design's settings (Adam, lr 1e-4, batch 128) on
  40,000 random triplets with random labels held in memory: the epoch's seconds as `fit`
  records them (with its 5,000-triplet validation pass), the seconds until the last
  training batch, training triplets/s, and the process's CPU seconds over the epoch (on an
  idle machine about `torch_threads` x the wall time; much less means something else had
  the cores).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import TensorDataset

from bench.results import Results, log
from training.ml.model import STAMP_SHAPE, RealBogusCNN
from training.ml.scoring import DEFAULT_BATCH_SIZE, predict
from training.ml.train import TrainingConfig, fit

MATMUL_REPEATS = 7
INFERENCE_REPEATS = 5
SEED = 0
CPU = torch.device("cpu")


@dataclass(frozen=True)
class Sizes:
    matmul: int = 2048
    scored: int = 10_000
    train: int = 40_000
    val: int = 5_000  # the 0.8/0.1/0.1 split of a 50,000-subject label set


# The smoke test's sizes (tests/bench): every step runs, in seconds.
SMOKE = Sizes(matmul=64, scored=64, train=256, val=64)


def _matmul_gflops(size: int) -> float:
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    torch.matmul(a, b)  # warm-up: thread pool, caches
    rates = []
    for _ in range(MATMUL_REPEATS):
        started = time.perf_counter()
        torch.matmul(a, b)
        rates.append(2 * size**3 / (time.perf_counter() - started) / 1e9)
    return statistics.median(rates)


def model_flops_per_triplet(model: RealBogusCNN) -> int:
    """2 x the multiply-accumulates of the convolutions and dense layers for one stamp."""
    macs = []

    def count(layer: torch.nn.Module, inputs, output: torch.Tensor) -> None:
        if isinstance(layer, torch.nn.Conv2d):
            per_output = layer.in_channels // layer.groups * int(np.prod(layer.kernel_size))
            macs.append(output[0].numel() * per_output)
        elif isinstance(layer, torch.nn.Linear):
            macs.append(layer.in_features * layer.out_features)

    hooks = [layer.register_forward_hook(count) for layer in model.modules()]
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros((1, *STAMP_SHAPE)))
    finally:
        for hook in hooks:
            hook.remove()
    return 2 * sum(macs)


def _random_stamps(n: int, generator: torch.Generator) -> np.ndarray:
    """Raw stamps in nJy-like units with a NaN row in every tenth, as real ones have."""
    stamps = torch.randn((n, *STAMP_SHAPE), generator=generator).mul_(30.0).numpy()
    stamps[::10, :, 7] = np.nan
    return stamps


def _inference(results: Results, model: RealBogusCNN, stamps: np.ndarray,
               matmul_gflops: float) -> None:
    scored = len(stamps)
    batch = torch.from_numpy(stamps[:min(DEFAULT_BATCH_SIZE, scored)].copy())
    model.eval()
    rates = []
    with torch.inference_mode():
        model(batch)  # warm-up
        for _ in range(INFERENCE_REPEATS):
            started = time.perf_counter()
            model(batch)
            rates.append(len(batch) / (time.perf_counter() - started))
    triplets_per_s = statistics.median(rates)
    flops = model_flops_per_triplet(model)
    achieved = triplets_per_s * flops / 1e9
    results.add("training_model_mflop_per_triplet", flops / 1e6)
    results.add("training_inference_triplets_per_s", triplets_per_s)
    results.add("training_inference_gflops", achieved)
    results.add("training_inference_over_matmul", achieved / matmul_gflops)

    log(f"training: scoring {scored:,} triplets")
    started = time.perf_counter()
    predict(model, stamps, batch_size=DEFAULT_BATCH_SIZE, device=CPU)
    results.figure(f"training_score_{scored}_s", time.perf_counter() - started, unit="s")


def _epoch(results: Results, generator: torch.Generator, sizes: Sizes) -> None:
    log(f"training: one epoch on {sizes.train:,} random triplets "
        f"(+{sizes.val:,} validation)")
    n = sizes.train + sizes.val
    stamps = torch.from_numpy(_random_stamps(n, generator))
    labels = torch.randint(0, 2, (n,), generator=generator).float()
    train = TensorDataset(stamps[:sizes.train], labels[:sizes.train])
    val = TensorDataset(stamps[sizes.train:], labels[sizes.train:])
    torch.manual_seed(SEED)
    model = RealBogusCNN()
    last_batch_at = []
    cpu_started = time.process_time()
    started = time.perf_counter()

    def on_batch(done: int, total: int) -> None:
        if done == total:
            last_batch_at.append(time.perf_counter())

    result = fit(model, train, val, TrainingConfig(epochs=1, seed=SEED), device=CPU,
                 on_batch=on_batch)
    cpu_s = time.process_time() - cpu_started
    (record,) = result.history
    train_s = last_batch_at[0] - started
    results.add("training_epoch_s", record.seconds)
    results.add("training_epoch_train_s", train_s)
    results.add("training_epoch_triplets_per_s", sizes.train / train_s)
    results.add("training_epoch_cpu_s", cpu_s)


def run(results: Results, sizes: Sizes = Sizes()) -> None:
    results.add("training_torch_threads", torch.get_num_threads())
    log(f"training: matmul {sizes.matmul} x {sizes.matmul} float32")
    matmul = _matmul_gflops(sizes.matmul)
    results.add("training_matmul_gflops", matmul)
    generator = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    model = RealBogusCNN()
    log(f"training: inference, batch {DEFAULT_BATCH_SIZE}")
    _inference(results, model, _random_stamps(sizes.scored, generator), matmul)
    _epoch(results, generator, sizes)
