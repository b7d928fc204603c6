"""``run(scenario)``: the one entry point that wires data, workers, driver and results together.

Order matters for "no half-written results": everything that can fail on bad input (the data
set, the partition, the model, the cluster's resources, the actors' start) happens before the
run folder is created; after that, every finished round is on disk.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

from raysim.data.datasets import forget_loaded
from raysim.files import check_received_folder
from raysim.inputs import ConfigError
from raysim.results.figures import pyplot
from raysim.results.checkpoints import CHECKPOINT, CLIENT_STATE, read_checkpoint, write_checkpoint
from raysim.results.metric import TaskMetrics
from raysim.results.model_file import CLIENT_FILES, MODEL_FILE, ROUND_FILES, client_path, round_path, write_model
from raysim.results.results import ResultsError, RunWriter, new_run_dir
from raysim.runtime import DriverLost
from raysim.runtime.memory import release_freed_memory
from raysim.scenario.composition import UserObjects, driver_parts, learning_task
from raysim.scenario.preparation import InitialModel, Prepared, initial_model, prepare
from raysim.scenario.sections import Scenario
from raysim.scenario.flower import FlowerScenario
from raysim.scenario.vertical import VerticalScenario
from raysim.sim.state.checkpoint import CheckpointError
from raysim.sim.kernel.driver import Driver
from raysim.sim.kernel.records import RoundReport
from raysim.sim.kernel.run_loop import RunLoop


@dataclass(frozen=True)
class RunOutcome:
    run_dir: Path
    summary: dict


def run(
    scenario: Scenario | VerticalScenario,
    *,
    results_root: str | Path = "results",
    address: str | None = None,
    on_round: Callable[[dict], None] | None = None,
    resume: Path | None = None,
    on_start: Callable[[Path], None] | None = None,
    client_algorithm: Any = None,
    strategy: Any = None,
    policy: Any = None,
    algorithm: Any = None,
) -> RunOutcome:
    """Runs a scenario to the end and writes its results; returns the run folder and summary.

    With ``resume`` (a run folder) the run continues from its last checkpoint, in that folder;
    a checkpoint that does not fit the folder, the scenario or the driver is refused
    (ResultsError) before anything is run or changed. ``on_start`` is called with the run folder
    once it exists, before the first round.

    ``client_algorithm``, ``strategy``, ``algorithm`` and ``policy`` hand in objects written in a
    notebook or script (a class or an object of the client-algorithm and server-strategy
    protocols, or of both halves' at once as ``[algorithm]`` names one, a policy's settings
    dataclass) in place of the scenario's names; they are checked as names are, reach
    the driver and the client actors, and the run's ``scenario.toml`` records their classes'
    ``package.module:Name`` and options (``composition.UserObjects``), so that a run of objects
    from a module is resumed from its folder by ``raysim run --resume``. ``scenario`` comes from
    ``raysim.scenario.load(path, overrides)`` or ``raysim.scenario.from_dict(table, overrides)``.
    """
    if isinstance(scenario, VerticalScenario):  # [vertical]: parties, PSI and a vertical trainer
        from raysim.runs.vertical import run_vertical

        return RunOutcome(*run_vertical(scenario, results_root=results_root, address=address, on_round=on_round,
                                        resume=resume, on_start=on_start))
    if isinstance(scenario, FlowerScenario):  # [flower]: a Flower ServerApp and ClientApp on raysim's clock
        from raysim.runs.flower import run_flower

        if resume is not None:
            raise ConfigError("a Flower run cannot be resumed (it keeps no checkpoint): run its scenario again")
        return RunOutcome(*run_flower(scenario, results_root=results_root, address=address, on_round=on_round,
                                      on_start=on_start))
    started = time.perf_counter()
    phases = StartupPhases(started)
    objects = UserObjects(client_algorithm=client_algorithm, strategy=strategy, policy=policy, algorithm=algorithm)
    scenario = objects.named(scenario)
    scenario_toml = scenario.to_toml()
    if resume is not None:
        check_received_folder(resume, deep=(CLIENT_STATE, ROUND_FILES, CLIENT_FILES))
    checkpoint = read_checkpoint(resume, scenario_toml=scenario_toml) if resume is not None else None
    with _driver(scenario, address=address, objects=objects, phases=phases) as driver:
        if checkpoint is not None:
            driver.use_state_dir(resume / CLIENT_STATE)
            _restore(driver, checkpoint.driver, resume / CHECKPOINT)
            writer = RunWriter.resume(resume, after_round=checkpoint.round)
        else:
            writer = RunWriter(
                new_run_dir(Path(results_root), scenario.run.name),
                scenario_toml=scenario_toml, histogram=driver.histogram,
                task=TaskMetrics.of(scenario.task.kind, learning_task(scenario)),
            )
            driver.use_state_dir(writer.run_dir / CLIENT_STATE)
        startup_s = phases.mark("run_folder")
        every = scenario.run.checkpoint_every
        model = _ModelFacts(scenario, driver.model_spec)
        status = "failed"
        try:
            if on_start is not None:  # the folder exists and has its name: e.g. --track names its runs by it
                on_start(writer.run_dir)
            while reports := driver.advance():
                phases.mark_once("first_round")
                for report in reports:
                    writer.append(report.round_row, report.client_rows, report.eval_rows, tables=report.tables,
                                  network=report.network)
                    if report.model is not None:  # [run] save_model_every
                        number = int(report.round_row["round"])
                        write_model(round_path(writer.run_dir, number), report.model, **model.facts(number))
                if every and any(r.round_row["round"] % every == 0 for r in reports):
                    write_checkpoint(writer.run_dir, driver.snapshot(), scenario_toml=scenario_toml)
                for report in reports:
                    if on_round is not None:
                        on_round(report.round_row)
            status = "completed"
        except KeyboardInterrupt:
            status = "interrupted"
            driver.interrupted = True
            raise
        except DriverLost as exc:
            driver.interrupted = True
            raise DriverLost(f"{exc}; {_what_is_kept(writer)}") from None
        finally:
            if status != "completed" and not writer.rounds and checkpoint is None:
                shutil.rmtree(writer.run_dir, ignore_errors=True)  # stopped before recording anything
            else:
                if status == "completed":  # an interrupted driver may be mid-step: its resume writes the model
                    _write_models(driver, writer, model)
                summary = writer.finish(
                    status=status, scenario_name=scenario.run.name,
                    extra={"startup_s": startup_s, "total_s": time.perf_counter() - started,
                           "startup_phases": phases.marks,
                           "resumed_after_round": checkpoint.round if checkpoint else None, **driver.describe()},
                )
    return RunOutcome(run_dir=writer.run_dir, summary=summary)


class StartupPhases:
    """When each phase of the start-up ended, for the summary (``startup_phases``): seconds since
    ``run`` was entered and this process's CPU seconds since it began (its imports included), so
    that a start-up can be taken apart without a profiler (benchmarks/startup.py). The first mark,
    ``entered``, holds the CPU the process spent before ``run``: mostly imports."""

    def __init__(self, started: float):
        self.started = started
        self.marks: list[dict[str, Any]] = []
        self.mark("entered")

    def mark(self, phase: str) -> float:
        """Records ``phase`` as ended now; returns the seconds since ``run`` was entered."""
        at = time.perf_counter() - self.started
        self.marks.append({"phase": phase, "at_s": at, "process_cpu_s": time.process_time()})
        return at

    def mark_once(self, phase: str) -> None:
        if not any(m["phase"] == phase for m in self.marks):
            self.mark(phase)


@dataclass(frozen=True)
class _ModelFacts:
    """What a run's model files say of themselves (``results/model_file.py``): the kind of run,
    what the arrays are (the driver class's ``MODEL_CONTENT`` and ``CLIENT_CONTENT``), the model."""

    scenario: Scenario
    spec: Any

    def facts(self, round_number: int, client: int | None = None) -> dict[str, Any]:
        kind = _driver_class(self.scenario)
        content = kind.MODEL_CONTENT if client is None else kind.CLIENT_CONTENT.format(client=client)
        topology = self.scenario.network.topology
        return {"round_number": round_number, "run": topology if topology in ("gossip", "hierarchical") else "star",
                "content": content, "spec": self.spec, "client": client}


def _write_models(driver: RunLoop, writer: RunWriter, model: _ModelFacts) -> None:
    """The model after the last round as ``model.safetensors``, and each client's own part
    (``clients/``) where the run has them."""
    if not writer.rounds:
        return
    last = int(writer.rounds[-1]["round"])
    write_model(writer.run_dir / MODEL_FILE, driver.model_arrays(), **model.facts(last))
    for client, arrays in driver.client_models().items():
        write_model(client_path(writer.run_dir, client), arrays, **model.facts(last, client))


def _restore(driver: RunLoop, snapshot: bytes, path: Path) -> None:
    """The driver continues from ``snapshot``; one that does not fit it is bad input, named."""
    try:
        driver.restore(snapshot)
    except CheckpointError as exc:
        raise ResultsError(f"{path} was refused: {exc}; nothing in it was run and nothing was changed (was "
                           "the run folder edited or copied together from several runs?)") from None


def _what_is_kept(writer: RunWriter) -> str:
    """The closing words of a failed run: what is on disk and, when a checkpoint is there, how
    to go on."""
    if not writer.rounds:
        return "no round had finished, so nothing was written"
    done = f"the {len(writer.rounds)} rounds finished are in {writer.run_dir}"
    if (writer.run_dir / CHECKPOINT).exists():
        return f"{done}; continue with `raysim run --resume {writer.run_dir}`"
    return done


def _driver_args(scenario: Scenario, prepared: Prepared, initial: InitialModel) -> dict[str, Any]:
    """What the driver is handed: its parts (the evaluating stages hold the held-out and
    validation rows), the model's initial state and layout (no torch module), the clients'
    sizes and the test set's size."""
    sizes = prepared.shards.sizes()
    parts = driver_parts(scenario, layout=initial.layout, num_classes=prepared.model.num_classes,
                         num_clients=len(sizes), client_sizes=sizes, objects=prepared.objects,
                         test_size=prepared.test_size, holdout=prepared.holdout, validation=prepared.validation)
    return {"parts": parts, "initial_params": initial.params, "layout": initial.layout,
            "client_sizes": sizes, "test_size": prepared.test_size}


def _driver_class(scenario: Scenario) -> type:
    """The event-driven driver, or the round loop of a topology without a server (imported only
    for such a run: gossip's graphs need networkx)."""
    if scenario.network.topology == "gossip":
        from raysim.sim.loops.gossip import GossipRounds

        return GossipRounds
    if scenario.network.topology == "hierarchical":
        from raysim.sim.loops.hierfavg import HierRounds

        return HierRounds
    return Driver


class _LocalDriver:
    """The run's loop (sim/kernel/run_loop.py:RunLoop) in this process, training clients in this
    process too."""

    def __init__(self, scenario: Scenario, prepared: Prepared, phases: StartupPhases):
        from raysim.runtime.worker import ClientWorker

        self.histogram = prepared.histogram
        self.model_spec = prepared.model
        initial = initial_model(scenario, prepared.model)
        phases.mark("model_built")
        ds = prepared.dataset
        threads = max(1, int(scenario.resources.num_cpus))
        worker = ClientWorker(model=prepared.model, plan=prepared.plan, train_x=ds.train_x, train_y=ds.train_y,
                              shards=prepared.shards, test_x=ds.test_x, test_y=ds.test_y, pixels=prepared.pixels,
                              threads=threads)
        from raysim.runtime.local import LocalExecutor

        self.driver = _driver_class(scenario)(**_driver_args(scenario, prepared, initial),
                                              executor_factory=lambda: LocalExecutor(worker, vectorize=initial.vectorize))

    def advance(self) -> list[RoundReport]:
        return self.driver.advance()

    def snapshot(self) -> bytes:
        return self.driver.snapshot()

    def restore(self, snapshot: bytes) -> None:
        self.driver.restore(snapshot)

    def use_state_dir(self, directory: Path) -> None:
        self.driver.use_state_dir(directory)

    interrupted = False  # nothing to spare: the local driver is never mid-call when asked

    def describe(self) -> dict[str, Any]:
        return {"executor": "local", "num_actors": 0}

    def model_arrays(self) -> dict[str, Any]:
        return self.driver.model_arrays()

    def client_models(self) -> dict[int, dict[str, Any]]:
        return self.driver.client_models()

    def close(self) -> None:
        self.driver.close()


class _RayDriver:
    """The run's loop (sim/kernel/run_loop.py:RunLoop) as a Ray actor; client workers are actors it
    creates and balances."""

    def __init__(self, scenario: Scenario, prepared: Prepared, arrays: dict[str, Any], *, started_here: bool,
                 host: Any, phases: StartupPhases):
        """``arrays``: the data set's arrays (``Prepared.without_arrays``), as object-store refs;
        ``host``: the driver actor (``session.start_driver``), which builds the driver here."""
        from raysim.runtime import session
        from raysim.runtime.ray_executor import RayExecutor, actor_state_bytes, start_workers

        self._session = session
        self._started_here = started_here
        self.histogram = prepared.histogram  # the data itself is not kept: the object store has it
        self.model_spec = prepared.model
        self._host = host
        self.handle = None  # the driver actor, once its driver is built
        self.interrupted = False  # set by run() when a signal or the driver's death ends it
        try:
            self.pool = session.plan_pool(scenario.resources, population=scenario.data.num_clients)
            worker_kwargs = {"model": prepared.model, "plan": prepared.plan, "shards": session.put(prepared.shards),
                             "pixels": prepared.pixels, **arrays}
            pool = dict(num_cpus=self.pool.num_cpus, num_gpus=self.pool.num_gpus, worker_kwargs=worker_kwargs,
                        placements=[session.in_group(b) for b in self.pool.bundles],
                        state_bytes=actor_state_bytes(round(scenario.resources.client_state_mb * 2**20),
                                                      self.pool.num_actors))
            actors = start_workers(num_actors=self.pool.num_actors, **pool)
            # the model is built by the first client actor, which imports torch anyway: this
            # process never does (a bad model raises its error here, before anything is written)
            initial = initial_model(scenario, prepared.model,
                                    lambda _model, seed: session.fetch(actors[0].initial_state.remote(seed)))
            phases.mark("model_built")  # the first client actor is up (torch imported, data mapped)
            factory = partial(RayExecutor, actors=actors, vectorize=initial.vectorize,
                              actor_failure=scenario.resources.actor_failure, **pool)
            session.build_driver(host, **_driver_args(scenario, prepared, initial), executor_factory=factory)
            self.handle = host
            session.call(self.handle, "view")  # waits until the client actors are up
            phases.mark("driver_ready")
            session.record_processes(started_here)
        except BaseException as exc:
            self.interrupted = isinstance(exc, KeyboardInterrupt)
            self.close()
            raise

    def advance(self) -> list[RoundReport]:
        return self._session.call(self.handle, "advance")

    def snapshot(self) -> bytes:
        return self._session.call(self.handle, "snapshot")

    def restore(self, snapshot: bytes) -> None:
        self._session.call(self.handle, "restore", snapshot)

    def use_state_dir(self, directory: Path) -> None:
        self._session.call(self.handle, "use_state_dir", directory)

    def model_arrays(self) -> dict[str, Any]:
        return self._session.call(self.handle, "model_arrays")

    def client_models(self) -> dict[int, dict[str, Any]]:
        return self._session.call(self.handle, "client_models")

    def describe(self) -> dict[str, Any]:
        """Facts for the summary; an interrupted or dead driver actor is not asked (it may be
        busy with a round, or gone), so only what this side knows is reported."""
        mine = {"executor": "ray", "num_actors": self.pool.num_actors}
        return mine if self.interrupted else {**mine, **self._session.call(self.handle, "describe")}

    def close(self) -> None:
        host, built, self._host, self.handle = self._host, self.handle is not None, None, None
        if host is not None:
            try:
                if built and not self.interrupted:  # an interrupted driver may be mid-round: kill it outright
                    self._session.call(host, "close")
            finally:
                self._session.kill(host)
        self._session.stop(self._started_here)


class _driver:
    """Context manager choosing the local or Ray driver and always closing it.

    With Ray, Ray starts first and the data is prepared after it, never alongside: Ray forks its
    processes during ``ray.init`` and a thread running BLAS at that moment can deadlock the
    fork (session.py). Ray is stopped again if preparing fails, so bad input still leaves
    nothing behind.
    """

    def __init__(self, scenario: Scenario, *, address: str | None, objects: UserObjects | None = None,
                 phases: StartupPhases):
        # matplotlib (about 0.4 s) loads on a side thread while the data is prepared, so that the
        # plots after the last round do not wait for it; with Ray only once ``ray.init`` has
        # returned, since no thread of ours may run while Ray forks its processes (session.py)
        self._plotting = threading.Thread(target=pyplot, name="raysim-load-plotting", daemon=True)
        try:
            self.driver = self._start(scenario, address, objects, phases)
        except BaseException:
            self._join_plotting()
            raise

    def _start(self, scenario: Scenario, address: str | None, objects: UserObjects | None,
               phases: StartupPhases) -> _LocalDriver | _RayDriver:
        if scenario.run.executor == "local" and not address:
            self._plotting.start()
            prepared = prepare(scenario, objects)
            phases.mark("data_prepared")
            return _LocalDriver(scenario, prepared, phases)
        from raysim.runtime import session

        started_here, host = False, None
        try:
            started_here = session.start(scenario.ray, address=address)
            phases.mark("ray_started")
            host = session.start_driver(_driver_class(scenario))  # its process starts while the data is prepared
            self._plotting.start()
            prepared, arrays = _prepare_for_ray(scenario, session, objects, phases)
        except BaseException:
            if host is not None:
                session.kill(host)
            session.stop(started_here)
            raise
        return _RayDriver(scenario, prepared, arrays, started_here=started_here, host=host, phases=phases)

    def __enter__(self):
        return self.driver

    def __exit__(self, *exc: object) -> None:
        self._join_plotting()
        self.driver.close()

    def _join_plotting(self) -> None:
        """No thread of ours outlives the run (a next run's ``ray.init`` may fork)."""
        if self._plotting.is_alive():
            self._plotting.join()


def _prepare_for_ray(scenario: Scenario, session: Any, objects: UserObjects | None,
                     phases: StartupPhases) -> tuple[Prepared, dict[str, Any]]:
    """The prepared run without its data set, and the data set's arrays as object-store refs.

    Preparing the data needs no torch (the model is built by a client actor: ``_RayDriver``), and
    this process keeps no copy of the data once the object store has it, so preparing here costs
    it neither torch's memory nor the data set's for the rest of the run.
    """
    prepared, arrays = prepare(scenario, objects).without_arrays()
    phases.mark("data_prepared")
    refs = {name: session.put(array) for name, array in arrays.items()}
    forget_loaded()  # the object store has the data now; this process's copy would double it
    release_freed_memory()  # and what reading and partitioning it freed (runtime/memory.py)
    phases.mark("data_in_store")
    return prepared, refs
