"""``run(vertical scenario)``: parties up, PSI, training, results; ``raysim.api.run`` hands over here.

As in ``api.py``, everything that fails on bad input (the data, Ray, the actors) happens before
the run folder exists, and a run stopped before its first epoch leaves none. The folder has
the usual tables, so ``raysim.results.load`` reads it: ``rounds.parquet`` has one row per epoch
(train/test loss, accuracy, AUC, bytes, HE seconds, simulated time, the central reference's
test metrics beside the federated ones), ``clients.parquet`` the bytes each party sent and
received so far, and ``summary.json`` the alignment, the privacy each trainer gives, what each
party learns (``disclosure``), and the federated and central test AUC and accuracy side by side.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from raysim.inputs import ConfigError
from raysim.results.model_file import MODEL_FILE, write_model
from raysim.results.results import RunWriter, new_run_dir
from raysim.runtime.run_ray import ray_for_run
from raysim.scenario.vertical import PreparedVertical, VerticalScenario, central_reference, prepare_vertical
from raysim.sim.bridges import vertical as sim
from raysim.vertical import disclosure
from raysim.vertical.lr import Coordinator
from raysim.vertical.party import Party


def run_vertical(scenario: VerticalScenario, *, results_root: str | Path = "results", address: str | None = None,
                 on_round: Callable[[dict], None] | None = None, resume: Path | None = None,
                 on_start: Callable[[Path], None] | None = None) -> tuple[Path, dict]:
    """Runs a vertical scenario to the end; returns the run folder and the summary."""
    if resume is not None:
        raise ConfigError("a vertical run cannot be resumed (it keeps no checkpoint): run its scenario again")
    started = time.perf_counter()
    use_ray = scenario.run.executor == "ray" or bool(address)
    with ray_for_run(scenario.ray, address=address, needed=use_ray):  # Ray first, the data after it
        prepared = prepare_vertical(scenario)
        parties = _parties(scenario, prepared, use_ray)
        try:
            return _train(scenario, prepared, parties, started, on_round, Path(results_root), on_start)
        finally:
            if hasattr(parties, "close"):
                parties.close()


def _parties(scenario: VerticalScenario, prepared: PreparedVertical, use_ray: bool):
    specs = {name: (Party, (k, share), {"seed": scenario.run.seed})
             for k, (name, share) in enumerate(zip(prepared.names, prepared.shares))}
    if scenario.vertical.trainer == "paillier_lr":
        specs[sim.COORDINATOR] = (Coordinator, (scenario.vertical.lr.key_bits,), {})
    if use_ray:
        from raysim.runtime.vertical_parties import RayParties

        return RayParties(specs)
    return sim.LocalParties({name: cls(*args, **kwargs) for name, (cls, args, kwargs) in specs.items()})


def _train(scenario: VerticalScenario, prepared: PreparedVertical, calls, started: float,
           on_round: Callable[[dict], None] | None, results_root: Path,
           on_start: Callable[[Path], None] | None = None) -> tuple[Path, dict]:
    v, names, seed = scenario.vertical, prepared.names, scenario.run.seed
    startup_s = time.perf_counter() - started
    ledger = sim.VerticalLedger(sim.Network(bandwidth_mbps=v.network.bandwidth_mbps, latency_s=v.network.latency_s),
                        sim.HeCost(**asdict(v.he)))
    alignment = sim.align(calls, names, ledger)
    psi_bytes, psi_time = int(sum(ledger.sent.values())), ledger.now
    aligned_ids, (train, test) = calls([(names[0], "aligned_ids", ()), (names[0], "split_rows", ())])
    epochs = scenario.run.rounds
    order = [sim.batches(seed, len(train), v.batch_size, e) for e in range(1, epochs + 1)]
    central = central_reference(scenario, prepared, aligned_ids, train, test, order)
    common = dict(epochs=epochs, batch_size=v.batch_size, seed=seed, train_rows=len(train))
    if v.trainer == "splitnn":
        rows = sim.train_splitnn(calls, names, ledger, shape=v.splitnn, classes=prepared.table.num_classes,
                                 **common)
    else:
        rows = sim.train_lr(calls, names, ledger, settings=v.lr.settings(), encrypted=v.trainer == "paillier_lr",
                            **common)
    labels = prepared.shares[0].labels
    writer = RunWriter(new_run_dir(results_root, scenario.run.name), scenario_toml=scenario.to_toml(),
                       histogram=np.bincount(labels, minlength=prepared.table.num_classes)[None, :])

    def summary_fields() -> dict:
        """The summary's own fields, read when the run ends."""
        return {
            "kind": "vertical", "trainer": v.trainer, "privacy": scenario.privacy,
            "disclosure": disclosure.statement(v.trainer, names, sim.COORDINATOR, v.lr.hide_gradients),
            "hide_gradients": v.lr.hide_gradients, "dataset": v.dataset,
            "parties": names, "intersection": alignment.intersection, "train_rows": alignment.train_rows,
            "test_rows": alignment.test_rows, "duplicate_ids": alignment.duplicates, "psi_bytes": psi_bytes,
            "psi_sim_time": psi_time, **{key: writer.rounds[-1][key] for key in (
                "test_auc", "central_test_auc", "test_accuracy", "central_test_accuracy", "bytes_total", "he_seconds")},
            "startup_s": startup_s, "num_actors": len(getattr(calls, "handles", ())),
            "executor": "ray" if hasattr(calls, "handles") else "local", "total_s": time.perf_counter() - started,
        }

    with writer.settled(scenario_name=scenario.run.name, extra=summary_fields) as summary:
        if on_start is not None:
            on_start(writer.run_dir)
        for row in rows:
            reference = central[min(row["round"], len(central)) - 1]
            row = {**row, **{f"central_{k}": val for k, val in reference.items() if k.startswith("test_")}}
            writer.append(row, sim.party_rows(row["round"], names, ledger))
            if on_round is not None:
                on_round(row)
        _write_parts(writer.run_dir, calls, names, int(writer.rounds[-1]["round"]))
    return writer.run_dir, summary


def _write_parts(run_dir: Path, calls, names: list[str], round_number: int) -> None:
    """Each party's trained part, named ``<party>/<entry>`` (``Party.model_part``), in the run's
    ``model.safetensors``; none when no party holds plaintext weights (hidden gradients)."""
    parts = calls([(name, "model_part", ()) for name in names])
    arrays = {f"{name}/{key}": value for name, part in zip(names, parts) for key, value in part.items()}
    if arrays:
        write_model(run_dir / MODEL_FILE, arrays, round_number=round_number, run="vertical",
                    content="each party's part, named <party>/<entry>")
