"""The ideal loop: plain Python and torch, no framework, the same local SGD for the same clients.

    python benchmarks/ideal.py --clients 1000 --per-round 100 --model logreg --batch 10   # W2, whole process

It is the floor raysim is measured against (../shared/reference/workloads.md): the faster of
(a) one process using every core's thread, training the sampled clients one after another, and
(b) one single-threaded process per core (plain multiprocessing, fork), the clients split
between them and the parent averaging. Both use raysim's pure pieces for what is not framework
(the partition, the seeded selection, the initial weights), so the work is the same.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from raysim.models.models import initial_model
from raysim.seeding import Stream, derive_seed, rng


@dataclass(frozen=True)
class IdealResult:
    mode: str
    startup_s: float
    round_s: list[float]
    total_s: float
    accuracy: float


_STATE: dict = {}  # the data and model spec, inherited by forked workers


def select(seed: int, population: int, count: int, round_number: int) -> list[int]:
    """raysim's synchronous selection: a seeded prefix of a random permutation, sorted."""
    draw = rng(seed, Stream.SELECTION, round_number)
    prefix = min(population, 4 * count + 64)
    return sorted(int(c) for c in draw.choice(population, size=prefix, replace=False)[:count])


def _train(args: tuple[int, int, np.ndarray]) -> tuple[np.ndarray, int]:
    client, round_number, params = args
    s = _STATE
    model = s["model"]
    torch.nn.utils.vector_to_parameters(torch.tensor(params), model.parameters())  # a copy: params stays the base
    idx = torch.as_tensor(s["parts"][client])
    x, y = s["x"][idx], s["y"][idx]
    optimizer = torch.optim.SGD(model.parameters(), lr=s["lr"])
    generator = torch.Generator().manual_seed(derive_seed(s["seed"], Stream.BATCHES, round_number, client))
    for _ in range(s["epochs"]):
        order = torch.randperm(len(idx), generator=generator)
        for start in range(0, len(idx), s["batch"]):
            batch = order[start : start + s["batch"]]
            optimizer.zero_grad()
            F.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return torch.nn.utils.parameters_to_vector(model.parameters()).detach().numpy() - params, len(idx)


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def run_ideal(*, mode: str, x: np.ndarray, y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
              parts: list[np.ndarray], model: str, input_shape: tuple, per_round: int, rounds: int,
              epochs: int, batch: int, lr: float, seed: int, cores: int) -> IdealResult:
    """One run of the ideal loop in ``mode`` "sequential" (a) or "processes" (b)."""
    started = time.perf_counter()
    module = initial_model(model, input_shape=input_shape, num_classes=10, options=None,
                           seed=derive_seed(seed, Stream.MODEL_INIT))
    _STATE.update(model=module, x=torch.as_tensor(x), y=torch.as_tensor(y), parts=parts, lr=lr,
                  epochs=epochs, batch=batch, seed=seed)
    params = torch.nn.utils.parameters_to_vector(module.parameters()).detach().numpy().copy()
    pool = None
    if mode == "processes":
        pool = mp.get_context("fork").Pool(cores, initializer=_init_worker, initargs=(1,))
    else:
        torch.set_num_threads(cores)
    startup = time.perf_counter() - started
    times = []
    try:
        for r in range(1, rounds + 1):
            t0 = time.perf_counter()
            work = [(c, r, params) for c in select(seed, len(parts), per_round, r)]
            if pool is None:
                results = [_train(w) for w in work]
            else:
                results = pool.map(_train, work, chunksize=max(1, len(work) // cores))
            weights = np.array([n for _, n in results], dtype=np.float64)
            mean = sum(w * d.astype(np.float64) for w, (d, _) in zip(weights, results)) / weights.sum()
            params = (params + mean).astype(np.float32)
            times.append(time.perf_counter() - t0)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    torch.nn.utils.vector_to_parameters(torch.as_tensor(params), module.parameters())
    with torch.no_grad():  # the final test evaluation counts in the total, as it does for raysim
        torch.set_num_threads(cores)
        correct = sum(int((module(torch.as_tensor(test_x[i : i + 2000])).argmax(1) == torch.as_tensor(test_y[i : i + 2000])).sum())
                      for i in range(0, len(test_x), 2000))
    total = time.perf_counter() - started
    return IdealResult(mode=mode, startup_s=startup, round_s=times, total_s=total, accuracy=correct / len(test_x))


def best_ideal(**kwargs) -> IdealResult:
    """The faster (by median round time) of the two ideal loops."""
    results = [run_ideal(mode=mode, **kwargs) for mode in ("sequential", "processes")]
    return min(results, key=lambda r: float(np.median(r.round_s)))



def main() -> None:
    """One whole process of the ideal loop on Fashion-MNIST, IID (what ``footprint.py`` times and
    measures beside ``raysim run``): imports, loading, the rounds, the final test, exit."""
    from raysim.data import load_dataset, partition
    from raysim.data.partitions import IID

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    for name, kind in (("--clients", int), ("--per-round", int), ("--model", str), ("--batch", int),
                       ("--rounds", int), ("--cores", int)):
        parser.add_argument(name, type=kind, required=name not in ("--rounds", "--cores"))
    parser.add_argument("--mode", choices=("processes", "sequential"), default="processes")
    args = parser.parse_args()
    ds = load_dataset("fashion_mnist")
    parts = partition(ds.train_y, args.clients, IID(), seed=derive_seed(0, Stream.PARTITION), num_classes=10)
    result = run_ideal(mode=args.mode, x=ds.inputs(ds.train_x), y=ds.train_y, test_x=ds.inputs(ds.test_x),
                       test_y=ds.test_y, parts=parts, model=args.model, input_shape=ds.input_shape,
                       per_round=args.per_round, rounds=args.rounds or 5, epochs=1, batch=args.batch, lr=0.05,
                       seed=0, cores=args.cores or mp.cpu_count())
    print(f"{result.mode}: {len(result.round_s)} rounds, accuracy {result.accuracy:.4f}, total {result.total_s:.2f} s")


if __name__ == "__main__":
    main()
