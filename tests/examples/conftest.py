"""The example packages (examples/<name>/<name>/) as a user has them: importable once their
folder is on the path, run by ``python -m raysim run`` with PYTHONPATH set to it. Here: a tiny
client task for unit tests of their math without Ray, and one CLI run of a scenario file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from raysim.algorithms.sgd import SGDConfig
from raysim.models.algorithm import ClientSettings, LocalTask
from raysim.models.params import FlatModel

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
sys.path[:0] = [str(EXAMPLES / name) for name in ("feddyn", "moon", "ditto")]

# Fashion-MNIST split over 4 clients, 2 a round, the 2NN, 3 rounds each evaluated: seconds a run
TINY = ("data.num_clients=4", "selection.clients_per_round=2", "run.rounds=3", "run.eval_every=1",
        "model.name=mlp2nn", "ray.num_cpus=2")


def make_task(*, n: int = 40, seed: int = 0, client_id: int = 0, state: dict | None = None, server: dict | None = None,
              lr: float = 0.1, batch_size: int = 10, epochs: int = 1, module: nn.Module | None = None) -> LocalTask:
    """A client task on a small Sequential model and random data (3 classes), as a worker builds one."""
    torch.manual_seed(seed)
    flat = FlatModel(module or nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)))
    x, y = torch.randn(n, 4), torch.randint(0, 3, (n,))
    return LocalTask(model=flat.module, flat=flat, x=x, y=y, start=flat.flat.detach().clone(), state=state or {},
                     server=server or {}, client_id=client_id, round=1,
                     settings=ClientSettings(epochs=epochs, batch_size=batch_size, sgd=SGDConfig(lr=lr)),
                     generator=torch.Generator().manual_seed(seed))


def run_example(name: str, results: Path, *overrides: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs examples/<name>/fmnist_<name>.toml with the TINY overrides and ``overrides`` as a
    user would (from another folder, the package found through PYTHONPATH; a later override of
    a key wins); asserts it exits 0
    and returns its (rounds, clients) tables."""
    # the example's package, and the repository for a test's own data function (tests.examples...),
    # as a fresh clone's CI has no PYTHONPATH of its own
    paths = [str(EXAMPLES / name), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    sets = [arg for value in (*TINY, *overrides) for arg in ("--set", value)]
    done = subprocess.run([sys.executable, "-m", "raysim", "run", str(EXAMPLES / name / f"fmnist_{name}.toml"), *sets,
                           "--results", str(results), "--quiet"],
                          cwd=results.parent, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (results / f"fmnist_{name}").iterdir()
    return pd.read_parquet(run_dir / "rounds.parquet"), pd.read_parquet(run_dir / "clients.parquet")
