"""SWAP aggregation on simulated classifications: the pure core, no database.

What it measures:
- batch SWAP (`swap_batch`, skills learned first) on 1,000,000 and 10,000,000
  classifications, each size in a fresh subprocess that loads the table and runs it three
  times: the median wall time, the median CPU time (what the wall time would be on an idle
  machine; the two differ when something else shares the cores), the process's peak resident
  memory (VmHWM) and its resident memory before the first run (interpreter, numpy and the
  table itself). Target: 10 million in under 10 s. The skill-at-classification variant
  (mode "online") is measured the same way.
- the online update (`online_step`, one classification on immutable states, as the live path
  runs it): median and p99 latency per classification over many.
- on the same 1,000,000-row table, in this process: a straightforward per-classification
  Python loop (OnlineSwap replay, the way Space Warps works) against the vectorised
  swap_batch(skill_timing="at_classification"), which must agree with it; EM (with the
  prior fixed at 0.5 and learned); and crowd-kit's Dawid-Skene (if installed:
  requirements-bench.txt), each as a ratio of times, with the accuracy and size of every
  method's label set against the simulated truth on the non-reference subjects (majority
  vote's tie rule: aggregation.swap.TIE_RULE).

The data (`make_table`, vectorised): subjects are 30% Real; 8% are reference subjects whose
truth SWAP sees, and they take 12% of the classifications, as gold injection serves them.
Volunteers' activity is heavy-tailed (Zipf, exponent 1: most give a handful of
classifications, a few give tens of thousands); their skills are a mix of good (Beta(9, 2) per
class), near-random, optimistic (almost always "Real") and pessimistic (almost always
"Bogus") volunteers. Rows are in time order, which here is random order.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aggregation.swap import (
    REAL,
    UNKNOWN,
    ClassificationTable,
    EmOptions,
    OnlineSwap,
    SubjectState,
    SwapParams,
    VolunteerState,
    label_accuracy,
    majority_vote,
    online_step,
    swap_batch,
    swap_em,
)
from bench.results import BenchError, Results, log

SIZES = (1_000_000, 10_000_000)
LOOP_SIZE = 1_000_000  # the Python loop, EM and crowd-kit run on this many
REPEATS = 3
ONLINE_STEPS = 200_000

CLASSIFICATIONS_PER_SUBJECT = 4  # retired at 2 or 7, a few gold subjects seen many times
CLASSIFICATIONS_PER_VOLUNTEER = 270  # 1,000,000 by 3,750 volunteers, as in bench.rubin
REFERENCE_FRACTION = 0.08
REFERENCE_SHARE = 0.12
REAL_FRACTION = 0.3
ZIPF_EXPONENT = 1.0
# Volunteer kinds and their shares: good, near-random, optimistic, pessimistic.
KIND_SHARES = (0.70, 0.15, 0.075, 0.075)


@dataclass(frozen=True)
class Simulated:
    table: ClassificationTable
    truth: np.ndarray  # what SWAP sees: REAL/BOGUS on reference subjects, UNKNOWN elsewhere
    true_label: np.ndarray  # the simulated truth of every subject
    p_real: np.ndarray  # each volunteer's simulated skills
    p_bogus: np.ndarray


def make_table(n_classifications: int, seed: int = 0) -> Simulated:
    rng = np.random.default_rng(seed)
    n = n_classifications
    n_subjects = max(n // CLASSIFICATIONS_PER_SUBJECT, 10)
    n_volunteers = max(n // CLASSIFICATIONS_PER_VOLUNTEER, 10)

    true_label = np.where(rng.random(n_subjects) < REAL_FRACTION, REAL, 0).astype(np.int8)
    n_ref = max(int(n_subjects * REFERENCE_FRACTION), 1)
    reference = rng.permutation(n_subjects)[:n_ref]
    is_reference = np.zeros(n_subjects, bool)
    is_reference[reference] = True
    science = np.flatnonzero(~is_reference)
    truth = np.where(is_reference, true_label, UNKNOWN).astype(np.int8)

    on_reference = rng.random(n) < REFERENCE_SHARE
    subject = science[rng.integers(0, science.shape[0], n)]
    subject[on_reference] = reference[rng.integers(0, n_ref, int(on_reference.sum()))]

    weights = 1.0 / np.arange(1, n_volunteers + 1) ** ZIPF_EXPONENT
    cdf = np.cumsum(weights / weights.sum())
    rank = np.minimum(np.searchsorted(cdf, rng.random(n)), n_volunteers - 1)
    volunteer = rng.permutation(n_volunteers)[rank]

    kind = rng.choice(4, n_volunteers, p=KIND_SHARES)
    p_real = rng.beta(9, 2, n_volunteers)
    p_bogus = rng.beta(9, 2, n_volunteers)
    random_ = kind == 1
    p_real[random_] = rng.uniform(0.4, 0.6, int(random_.sum()))
    p_bogus[random_] = rng.uniform(0.4, 0.6, int(random_.sum()))
    optimistic, pessimistic = kind == 2, kind == 3
    p_real[optimistic] = rng.uniform(0.9, 1.0, int(optimistic.sum()))
    p_bogus[optimistic] = rng.uniform(0.0, 0.1, int(optimistic.sum()))
    p_real[pessimistic] = rng.uniform(0.0, 0.1, int(pessimistic.sum()))
    p_bogus[pessimistic] = rng.uniform(0.9, 1.0, int(pessimistic.sum()))

    draw = rng.random(n)
    is_real = true_label[subject] == REAL
    says_real = np.where(is_real, draw < p_real[volunteer], draw >= p_bogus[volunteer])
    table = ClassificationTable(subject.astype(np.int64), volunteer.astype(np.int64),
                                says_real, n_subjects, n_volunteers)
    return Simulated(table, truth, true_label, p_real, p_bogus)


def _table_mb(table: ClassificationTable) -> float:
    return (table.subject.nbytes + table.volunteer.nbytes + table.says_real.nbytes) / 2**20


def _peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not getrusage's ru_maxrss: Linux carries
    ru_maxrss across exec, so a child would report its parent's peak (the generator's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: best effort


# ---------------------------------------------------------------------------- child process


def _child(folder: str, skill_timing: str) -> None:
    """Load a table, run swap_batch REPEATS times, print one JSON line of figures."""
    path = Path(folder)

    def load(name: str) -> np.ndarray:  # .npy straight into its array: no second copy
        return np.load(path / f"{name}.npy")

    sizes = json.loads((path / "sizes.json").read_text())
    table = ClassificationTable(load("subject"), load("volunteer"), load("says_real"),
                                sizes["n_subjects"], sizes["n_volunteers"])
    truth = load("truth")
    params = SwapParams()
    rss_before = _peak_rss_mb()
    times, cpu = [], []
    for _ in range(REPEATS):
        started, cpu_started = time.perf_counter(), time.process_time()
        result = swap_batch(table, truth, params, skill_timing=skill_timing)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        del result
    print(json.dumps({"time_s": statistics.median(times), "cpu_s": statistics.median(cpu),
                      "peak_rss_mb": _peak_rss_mb(), "rss_before_mb": rss_before}))


def _in_subprocess(sim: Simulated, skill_timing: str, workdir: Path) -> dict:
    if not (workdir / "sizes.json").exists():
        t = sim.table
        for name, array in (("subject", t.subject), ("volunteer", t.volunteer),
                            ("says_real", t.says_real), ("truth", sim.truth)):
            np.save(workdir / f"{name}.npy", array)
        (workdir / "sizes.json").write_text(json.dumps(
            {"n_subjects": t.n_subjects, "n_volunteers": t.n_volunteers}))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run(
        [sys.executable, "-m", "bench.swap", "--child", str(workdir), skill_timing],
        capture_output=True, text=True, env=env, check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"swap_batch subprocess failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- the measurements


def _label(n: int) -> str:
    return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else str(n)


# The bound on swap_batch at ten million classifications.
TARGET_10M_S = 10.0


def _batch_sizes(results: Results, sizes, loop_size: int) -> dict[int, Simulated]:
    kept = {}
    for n in sizes:
        log(f"swap: generating {n:,} classifications")
        sim = make_table(n)
        label = _label(n)
        results.add(f"swap_{label}_subjects", sim.table.n_subjects)
        results.add(f"swap_{label}_volunteers", sim.table.n_volunteers)
        results.add(f"swap_{label}_table_mb", _table_mb(sim.table))
        with tempfile.TemporaryDirectory(prefix="bench-swap-") as workdir:
            for timing, name in (("final", "batch"), ("at_classification", "batch_online")):
                log(f"swap: {name} on {n:,} classifications, {REPEATS} runs in a subprocess")
                figures = _in_subprocess(sim, timing, Path(workdir))
                target = TARGET_10M_S if (n, name) == (10_000_000, "batch") else None
                results.figure(f"swap_{name}_{label}_s", figures["time_s"], unit="s",
                               at_most=target)
                # CPU time says what the wall time would be on an otherwise idle machine.
                results.add(f"swap_{name}_{label}_cpu_s", figures["cpu_s"])
                results.add(f"swap_{name}_{label}_peak_rss_mb", figures["peak_rss_mb"])
                results.add(f"swap_{name}_{label}_rss_before_mb", figures["rss_before_mb"])
        if n == loop_size:
            kept[n] = sim
    return kept


def _online_latency(results: Results, steps: int) -> None:
    """online_step on a realistic mix: volunteers with and without references, subjects with
    and without truth, trajectories of the lengths subjects reach before retiring."""
    log(f"swap: online_step latency over {steps:,} classifications")
    params = SwapParams()
    rng = np.random.default_rng(1)
    volunteers = [VolunteerState(int(a), int(a * 0.8), int(b), int(b * 0.8))
                  for a, b in rng.integers(0, 40, (1000, 2))]
    subjects = [SubjectState.initial(params)]
    for _ in range(6):
        subjects.append(online_step(subjects[-1], volunteers[1], True, UNKNOWN, params)[0])
    says = rng.random(steps) < 0.4
    truth = rng.choice([UNKNOWN, UNKNOWN, UNKNOWN, 0, REAL], steps)
    pick_v = rng.integers(0, len(volunteers), steps)
    pick_s = rng.integers(0, len(subjects), steps)
    timings = np.empty(steps)
    clock = time.perf_counter_ns
    for i in range(steps):
        subject, volunteer = subjects[pick_s[i]], volunteers[pick_v[i]]
        r, t = bool(says[i]), int(truth[i])
        started = clock()
        online_step(subject, volunteer, r, t, params)
        timings[i] = clock() - started
    results.add("swap_online_step_median_us", float(np.median(timings)) / 1000)
    results.add("swap_online_step_p99_us", float(np.percentile(timings, 99)) / 1000)


def _timed(fn, *args, **kwargs):
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - started


def _comparisons(results: Results, sim: Simulated) -> None:
    table, truth, params = sim.table, sim.truth, SwapParams()
    label = _label(len(table))
    science = truth == UNKNOWN
    true_science = np.where(science, sim.true_label, UNKNOWN)

    def accuracy(name: str, labels: np.ndarray) -> None:
        acc = label_accuracy(labels, true_science)
        results.add(f"swap_{label}_{name}_accuracy", acc.accuracy)
        results.add(f"swap_{label}_{name}_labelled", acc.n_labelled)

    log(f"swap: vectorised batch and online-order SWAP on {len(table):,} classifications")
    batch, batch_s = _timed(swap_batch, table, truth, params)
    online, online_s = _timed(swap_batch, table, truth, params, skill_timing="at_classification")
    log(f"swap: the per-classification Python loop (OnlineSwap) on {len(table):,}")
    loop, loop_s = _timed(lambda: OnlineSwap(params, truth).replay(table).result(
        table.n_subjects, table.n_volunteers))
    same_shape = np.array_equal(loop.traj_offsets, online.traj_offsets)
    max_diff = (float(np.abs(loop.traj_values - online.traj_values).max(initial=0.0))
                if same_shape else float("inf"))
    if not same_shape or max_diff > 1e-12:
        raise BenchError(f"OnlineSwap and swap_batch(at_classification) disagree: {max_diff}")
    results.add(f"swap_loop_{label}_s", loop_s)
    results.add(f"swap_batch_online_{label}_inprocess_s", online_s)
    results.add(f"swap_loop_over_batch_online_{label}", loop_s / online_s)
    results.add(f"swap_loop_vs_batch_online_max_abs_diff_{label}", max_diff)

    log(f"swap: EM on {len(table):,}")
    em, em_s = _timed(swap_em, table, truth, params, EmOptions(prior_mode="fixed"))
    results.add(f"swap_batch_{label}_inprocess_s", batch_s)
    results.add(f"swap_em_{label}_s", em_s)
    results.add(f"swap_em_{label}_iterations", em.iterations)
    em_learned, em_learned_s = _timed(swap_em, table, truth, params, EmOptions())
    results.add(f"swap_em_learned_prior_{label}_s", em_learned_s)
    results.add(f"swap_em_learned_prior_{label}_prior", em_learned.params.prior)
    results.add(f"swap_{label}_true_real_fraction", float(sim.true_label[science].mean()))

    accuracy("majority_vote", majority_vote(table))
    accuracy("batch_stable", batch.stable_label)
    accuracy("batch_unstable", batch.unstable_label)
    accuracy("online_stable", online.stable_label)
    accuracy("online_unstable", online.unstable_label)
    accuracy("em_stable", em.stable_label)
    accuracy("em_unstable", em.unstable_label)
    accuracy("em_learned_prior_stable", em_learned.stable_label)
    accuracy("em_learned_prior_unstable", em_learned.unstable_label)

    try:
        from aggregation.swap.baselines import _crowdkit, crowdkit_dawid_skene

        _crowdkit()
    except ImportError as exc:
        log(f"swap: skipped crowd-kit's Dawid-Skene: {exc}")
        results.add("swap_crowdkit_skipped", str(exc).split(";")[0])
        return
    log(f"swap: crowd-kit Dawid-Skene on {len(table):,}")
    ds, ds_s = _timed(crowdkit_dawid_skene, table)
    results.add(f"swap_crowdkit_ds_{label}_s", ds_s)
    results.add(f"swap_crowdkit_ds_over_em_{label}", ds_s / em_s)
    results.add(f"swap_crowdkit_ds_over_batch_{label}", ds_s / batch_s)
    accuracy("crowdkit_ds", ds)


def run(results: Results, sizes=SIZES, *, loop_size: int = LOOP_SIZE,
        online_steps: int = ONLINE_STEPS) -> None:
    """`sizes`, `loop_size` and `online_steps` are the full run's unless the smoke test
    (tests/bench) shrinks them."""
    kept = _batch_sizes(results, sizes, loop_size)
    _online_latency(results, online_steps)
    sim = kept.get(loop_size) or make_table(loop_size)
    _comparisons(results, sim)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3])
    else:
        sys.exit("internal: run the SWAP benchmark with `python -m bench swap`")
