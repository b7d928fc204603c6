"""Flower's own simulation engine on ``tests/flower_apps/message_app`` (the driver ``flower.py`` runs).

Run with the Python of the Flower venv (``flwr[simulation]`` pins ray 2.55.1; see ``flower.py``),
from the repository root::

    /tmp/flwr-sim/bin/python benchmarks/flower_engine.py --nodes 10 \
        --run-config '{"num-server-rounds": 5, "fraction-train": 0.5, ...}' --probe-dir DIR

It calls ``flwr.simulation.run_simulation`` with the quickstart's ServerApp and ClientApp and
prints one line ``FLOWER_ENGINE_RESULT {json}`` at the end (timings, the final metrics).

The run config. In flwr 1.42, ``run_simulation(server_app, client_app, num_supernodes,
backend_name, backend_config, enable_tf_gpu_growth, verbose_logging)`` takes none: the ServerApp
gets ``Context(run_config=UserConfig())`` (empty) and each node's context is fused from an empty
``Run`` (no app directory, no FAB), so it is empty too (flwr/simulation/run_simulation.py,
flwr/compat/client/run_info_store.py). The run config Flower would read from ``pyproject.toml``
(``[tool.flwr.app.config]``) only reaches the apps through ``flwr run``. So the apps are wrapped
here: a ServerApp and a ClientApp whose functions set ``context.run_config`` to the given dict and
call the real app objects unchanged (``message_app.server(grid, context)``,
``message_app.app(message, context)``), exactly what the apps would see under ``flwr run``. The
ClientApp wrapper puts the node's (empty) run config back before it returns: Flower's node side
rejects a returned Context whose ``run_config`` changed (``run_info_store.update_context``), and
would turn every reply into an error. The run fails (exit 1) if any reply is an error.

Also here, all measurement only, none of it changes what the apps compute:

- the ServerApp's grid (Flower's ``InMemoryGrid``) has its ``send_and_receive`` timed: a server
  round starts with its ``train`` call and ends where the next round's ``train`` call starts, the
  last one where the ServerApp returns (the same boundaries as raysim's ``wall_time``, which is
  taken when the next round's first message is delivered, or at the end of the run);
- each ClientApp call appends (pid, start, end, message type, torch threads) to a file per
  process under ``--probe-dir``, so the caller sees when the first ClientApp ran (the engine's
  start-up: Ray up, actors created, the app imported there) and how many torch threads the actors
  use.

``backend_config``: ``client_resources`` 1 CPU / 0 GPU per ClientApp, ``init_args`` ``num_cpus``
2, no dashboard, and ``address = "local"``: without it ``ray.init()`` joins the cluster named in
``/tmp/ray/ray_current_cluster`` (left by any earlier ``ray start``, and stale on the development
machine), as raysim avoids with ``ray.init(address="local")``. Flower's other defaults stay
(``log_to_driver=True``, logging level WARNING). Python's, numpy's and torch's global generators
are seeded with ``--seed`` before the run (the ServerApp's initial model, FedAvg's node sampling).
"""

from __future__ import annotations

import time

T_PROCESS = time.time()  # before the heavy imports: the driver's own start, epoch seconds

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `tests` imports here and, through Flower's PYTHONPATH, in the actors

MARKER = "FLOWER_ENGINE_RESULT"


def make_apps(run_config: dict, probe_dir: str, calls: list):
    """The wrapping ServerApp and ClientApp (see the module's docstring). They are closures, so
    Flower's cloudpickle ships the ClientApp to its actors with the run config inside."""
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp

    from tests.flower_apps import message_app

    config = dict(run_config)

    def probed(message, context):
        import torch

        start = time.time()
        given = context.run_config  # Flower rejects a context whose run_config changed: put it back
        context.run_config = dict(config)
        try:
            reply = message_app.app(message, context)
        finally:
            context.run_config = given
        end = time.time()
        line = {"pid": os.getpid(), "start": start, "end": end, "type": message.metadata.message_type,
                "torch_threads": torch.get_num_threads()}
        with open(os.path.join(probe_dir, f"{os.getpid()}.jsonl"), "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")
        return reply

    client = ClientApp()

    @client.train()
    def _train(message, context):
        return probed(message, context)

    @client.evaluate()
    def _evaluate(message, context):
        return probed(message, context)

    server = ServerApp()

    @server.main()
    def _main(grid, context):
        context.run_config = dict(config)
        send_and_receive = grid.send_and_receive

        def timed(messages, *, timeout=None):
            messages = list(messages)
            kind = messages[0].metadata.message_type if messages else ""
            start = time.time()
            replies = list(send_and_receive(messages, timeout=timeout))
            calls.append({"type": kind, "start": start, "end": time.time(), "sent": len(messages),
                          "replies": len(replies), "errors": sum(r.has_error() for r in replies)})
            return replies

        grid.send_and_receive = timed
        calls.append({"type": "serverapp_start", "start": time.time()})
        message_app.server(grid, context)
        calls.append({"type": "serverapp_end", "start": time.time()})

    return server, client, message_app


def rounds_of(calls: list[dict], t_engine: float) -> dict:
    """Round ends (epoch) and durations from the timed grid calls (see the module's docstring)."""
    starts = [c["start"] for c in calls if c["type"] == "train"]
    end = next(c["start"] for c in calls if c["type"] == "serverapp_end")
    ends = starts[1:] + [end]
    durations = [b - a for a, b in zip(ends, ends[1:])]  # rounds 2..R
    return {"round_end_s": [e - t_engine for e in ends], "round_s": durations,
            "round_median_s": statistics.median(durations) if durations else None,
            "first_round_end_s": ends[0] - t_engine if ends else None,
            "first_train_sent_s": starts[0] - t_engine if starts else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--run-config", required=True, help="the apps' run config, JSON")
    parser.add_argument("--probe-dir", required=True)
    parser.add_argument("--num-cpus", type=int, default=2, help="Ray's CPUs (init_args.num_cpus)")
    parser.add_argument("--client-cpus", type=float, default=1.0, help="client_resources.num_cpus")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run_config = json.loads(args.run_config)
    Path(args.probe_dir).mkdir(parents=True, exist_ok=True)

    import numpy as np
    import ray
    import torch
    import flwr
    from flwr.simulation import run_simulation

    calls: list[dict] = []
    server, client, message_app = make_apps(run_config, args.probe_dir, calls)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    t_engine = time.time()
    run_simulation(
        server_app=server,
        client_app=client,
        num_supernodes=args.nodes,
        backend_config={
            "client_resources": {"num_cpus": args.client_cpus, "num_gpus": 0.0},
            "init_args": {"num_cpus": args.num_cpus, "include_dashboard": False, "address": "local"},
        },
    )
    t_done = time.time()

    result = message_app.LAST_RESULT
    if result is None:
        raise SystemExit("the ServerApp did not finish (message_app.LAST_RESULT is None): see the log above")
    errors = sum(c.get("errors", 0) for c in calls)
    if errors:
        raise SystemExit(f"{errors} ClientApp replies were errors: see the log above")
    rounds = int(run_config["num-server-rounds"])
    client_eval = dict(result.evaluate_metrics_clientapp.get(rounds, {}))
    central = dict(result.evaluate_metrics_serverapp.get(rounds, {}))
    probes = []
    for path in Path(args.probe_dir).glob("*.jsonl"):
        probes += [json.loads(line) for line in path.read_text().splitlines() if line]
    out = {
        "flwr": flwr.__version__, "ray": ray.__version__, "torch": torch.__version__,
        "t_process": T_PROCESS, "t_engine": t_engine, "t_done": t_done,
        "import_s": t_engine - T_PROCESS,
        "engine_total_s": t_done - t_engine,
        "first_clientapp_s": min(p["start"] for p in probes) - t_engine if probes else None,
        "clientapp_calls": len(probes),
        "clientapp_busy_s": sum(p["end"] - p["start"] for p in probes),
        "actor_pids": sorted({p["pid"] for p in probes}),
        "actor_torch_threads": sorted({p["torch_threads"] for p in probes}),
        **rounds_of(calls, t_engine),
        "serverapp_done_s": next(c["start"] for c in calls if c["type"] == "serverapp_end") - t_engine,
        "calls": calls,
        "final_eval_acc": client_eval.get("eval_acc"), "final_eval_loss": client_eval.get("eval_loss"),
        "final_train_loss": dict(result.train_metrics_clientapp.get(rounds, {})).get("train_loss"),
        "final_central_accuracy": central.get("accuracy"), "final_central_loss": central.get("loss"),
        "train_messages": sum(c.get("sent", 0) for c in calls if c["type"] == "train"),
        "evaluate_messages": sum(c.get("sent", 0) for c in calls if c["type"] == "evaluate"),
    }
    print(MARKER, json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
