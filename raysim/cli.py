"""The ``raysim`` command: run, validate, compare, sweep, report, verify, model, list.

Exit status: 0 success; 1 a run failed (e.g. a client raised), or ``verify`` found an edited
block; 2 bad input (scenario, CLI
arguments, data paths or damaged data files, resources, damaged or foreign results and
checkpoints), in which case nothing is written; 130 interrupted (the
rounds already finished stay on disk).
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
from pathlib import Path
from typing import Callable, NoReturn

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from raysim.data import DatasetError, DatasetNotFoundError
from raysim.files import UnsafeFolderError, atomic_write, check_received_folder, refuse_link
from raysim.inputs import ConfigError
from raysim.results.results import ResultsError

console = Console(stderr=True)


def command() -> NoReturn:
    """The ``raysim`` command (and ``python -m raysim``): ``main``, then the exit handlers, then
    an exit that skips the interpreter's teardown. By then every result is written and closed
    and Ray is stopped; the teardown (freeing each module's objects) took 0.3-0.7 s after the
    last round on a 2-core machine, for nothing a user could see."""
    code = main()
    atexit._run_exitfuncs()  # what a normal exit runs: Ray's, logging's, trackers' handlers
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.command(args)
    except (ConfigError, DatasetNotFoundError, DatasetError, ResultsError, UnsafeFolderError) as exc:
        _error("error", exc)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: the rounds already finished are on disk")
        return 130


def _error(label: str, exc: BaseException) -> None:
    """Prints an error unwrapped, so paths and keys stay whole when copied or grepped."""
    console.print(f"[bold red]{label}:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raysim", description="Federated-learning simulation on Ray.")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a scenario file")
    run.add_argument("scenario", type=Path, nargs="?", help="a TOML scenario file, e.g. scenarios/quickstart.toml")
    run.add_argument("--resume", type=Path, metavar="RUN_DIR",
                     help="continue an interrupted run from its last checkpoint (uses RUN_DIR/scenario.toml)")
    run.add_argument("--trust-code", action="store_true",
                     help="with --resume: import the code RUN_DIR/scenario.toml names (model.name or "
                          "server.weighting = 'package.module:Name'); without it a received folder is data")
    _add_overrides(run)
    run.add_argument("--address", default=None, help="join this Ray cluster (overrides ray.address)")
    run.add_argument("--results", type=Path, default=Path("results"), help="results root folder (default: results)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--track", action="append", default=[], choices=["tensorboard", "mlflow"],
                     help="also feed the round rows to TensorBoard or MLflow under RESULTS/tracking (repeatable; "
                          "needs pip install 'raysim[tracking]')")
    run.set_defaults(command=_run)

    validate = sub.add_parser("validate", help="check a scenario file and prepare its data and model, without training")
    validate.add_argument("scenario", type=Path)
    _add_overrides(validate)
    validate.set_defaults(command=_validate)

    compare = sub.add_parser("compare", help="compare runs: accuracy vs simulated time and rounds, a table")
    compare.add_argument("runs", nargs="+", type=Path, help="run folders, scenario folders or a results root")
    compare.add_argument("--target", type=float, default=None,
                         help="the runs' primary metric to reach for time-to-target (accuracy: default 0.8; "
                              "required for a lower-is-better metric such as mse or perplexity)")
    compare.add_argument("--out", type=Path, default=Path("results/compare"), help="where to write the plot and table")
    compare.set_defaults(command=_compare)

    sweep = sub.add_parser("sweep", help="run a scenario over a grid of values and seeds: Ray Tune trials in parallel")
    sweep.add_argument("scenario", type=Path, help="a scenario file with a [sweep] table (or give --grid)")
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=[V1,V2]",
                       help="a swept key and its values, e.g. --grid client.lr=[0.01,0.05] or --grid seeds=[0,1,2] "
                            "(repeatable; replaces the same key of [sweep])")
    _add_overrides(sweep)
    sweep.add_argument("--out", type=Path, default=None,
                       help="the sweep folder (default: results/sweeps/<run.name>); the same command again resumes it")
    sweep.add_argument("--address", default=None, help="join this Ray cluster (overrides ray.address)")
    sweep.set_defaults(command=_sweep)

    report = sub.add_parser("report", help="write a self-contained HTML report of a run, a scenario folder or a sweep")
    report.add_argument("path", type=Path, help="a run folder, a scenario folder, a results root or a sweep folder")
    report.add_argument("--out", type=Path, default=None, help="the HTML file (default: PATH/report.html)")
    report.set_defaults(command=_report)

    verify = sub.add_parser("verify", help="check a run's model files, and recompute a ledger run's chain and report "
                                           "any edited block")
    verify.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    verify.add_argument("--head", metavar="HASH", default=None,
                        help="the last block's hash as published elsewhere (64 hex digits): the chain's head "
                             "must be it (default: the last block_hash in RUN_DIR/rounds.parquet)")
    verify.set_defaults(command=_verify)

    model = sub.add_parser("model", help="show a run's trained model: its arrays' names, shapes, dtypes and metadata")
    model.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    model.add_argument("--round", type=int, default=None, metavar="N",
                       help="the model kept after round N ([run] save_model_every; default: the final model)")
    model.add_argument("--client", type=int, default=None, metavar="C",
                       help="client C's own part (personal layers or model, a gossip node's model)")
    model.set_defaults(command=_model)

    listing = sub.add_parser("list", help="show datasets, models, partitions, strategies, policies and selectors")
    listing.set_defaults(command=_list)
    return parser


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override a scenario value, e.g. --set run.rounds=5 (repeatable)",
    )


def _validate(args: argparse.Namespace) -> int:
    """Runs everything ``run`` does before training (data, partition, model, user code), without Ray."""
    from raysim.scenario.preparation import initial_model, prepare
    from raysim.scenario.sections import read_table
    from raysim.scenario.flower import FlowerScenario, load_apps
    from raysim.scenario.vertical import VerticalScenario, load_any, prepare_vertical

    table = read_table(args.scenario)
    sweep = "sweep" in table  # a sweep's file: every trial's scenario is checked
    _say_named_code(table, args.overrides)
    if sweep:
        from raysim.experiments.sweep import load_sweep

        sweep = load_sweep(args.scenario, overrides=tuple(args.overrides))
        scenario = next(iter(sweep.scenarios.values()))
        console.print(f"[green]ok[/]: its \\[sweep] gives {len(sweep.trials)} valid trials")
    else:
        scenario = load_any(args.scenario, tuple(args.overrides))
    if isinstance(scenario, FlowerScenario):
        load_apps(scenario.flower)
        console.print(f"[green]ok[/]: {args.scenario} is a valid Flower scenario ({scenario.run.name}, "
                      f"{scenario.flower.num_nodes} nodes) and both apps load")
        return 0
    if isinstance(scenario, VerticalScenario):
        prepare_vertical(scenario)
        console.print(f"[green]ok[/]: {args.scenario} is a valid vertical scenario ({scenario.run.name}, "
                      f"{scenario.vertical.trainer}, {len(scenario.vertical.parties)} parties) and its data is ready")
        return 0
    prepared = prepare(scenario)
    initial_model(scenario, prepared.model, plan=prepared.plan)
    console.print(f"[green]ok[/]: {args.scenario} is a valid scenario ({scenario.run.name}, "
                  f"{scenario.run.rounds} rounds, {scenario.data.num_clients} clients) and its data, "
                  f"partition and model are ready")
    return 0


def _say_named_code(table: dict, overrides: list[str]) -> None:
    """``validate`` says which code the scenario names before anything imports or calls it: each
    ``package.module:Name`` passes the one gate (``inputs.import_object``), which refuses Python's
    standard library and callables that are not Python code, and is called only with the
    parameters its signature has (``inputs.check_call``)."""
    from raysim.inputs import named_code
    from raysim.scenario.config import apply_override

    for assignment in overrides:
        apply_override(table, assignment)
    for key, spec in named_code(table).items():
        print(f"names code: {key} = {spec!r} (imported from module {spec.partition(':')[0]!r}, checked, then "
              "built or called)")


def _run(args: argparse.Namespace) -> int:
    from raysim.api import run
    from raysim.results.checkpoints import CLIENT_STATE
    from raysim.runtime import DriverLost, WorkersLost
    from raysim.runtime.interrupts import interruptible
    from raysim.runtime.session import ResourceError
    from raysim.scenario.flower import FlowerScenario
    from raysim.scenario.vertical import load_any
    from raysim.sim.kernel.dispatch import RunStalled
    from raysim.sim.selection import SelectionError
    from raysim.sim.kernel.server_step import RunDiverged, StrategyError
    from raysim.sim.kernel.tasks import ClientError, FlowerAppError

    if (args.scenario is None) == (args.resume is None):
        raise ConfigError("give a scenario file, or --resume RUN_DIR (not both)")
    if args.resume is not None and args.overrides:
        raise ConfigError("--set cannot change a run that is resumed: it continues its own scenario.toml")
    if args.resume is None:
        scenario = load_any(args.scenario, tuple(args.overrides))
    else:
        check_received_folder(args.resume, deep=(CLIENT_STATE,))
        scenario = _received_scenario(args.resume / "scenario.toml", trust_code=args.trust_code)
    open_tracking, sinks = _sinks(args.track, args.results, scenario), []
    # no refresh thread: Ray must start while this process runs no other thread (session.py)
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[metric]}"), TimeElapsedColumn(), console=console, disable=args.quiet,
        auto_refresh=False,
    )
    try:
        with interruptible() as signals, progress:
            rounds = (scenario.flower.run_config.get("num-server-rounds") if isinstance(scenario, FlowerScenario)
                      else scenario.run.rounds)
            bar = progress.add_task(scenario.run.name, total=rounds, metric="-")

            def on_round(row: dict) -> None:
                name, value = next(((k[5:], v) for k, v in row.items() if k.startswith("test_")), ("", float("nan")))
                progress.update(bar, completed=row["round"], **({} if value != value else {"metric": f"{name} {value:.4f}"}))
                progress.refresh()
                for sink in sinks:
                    sink.write(row)

            try:
                outcome = run(scenario, results_root=args.results, address=args.address, on_round=on_round,
                              resume=args.resume, on_start=lambda run_dir: sinks.extend(open_tracking(run_dir.name)))
            except FileNotFoundError as exc:  # --resume of a folder without a checkpoint
                raise ConfigError(str(exc)) from exc
            finally:
                for sink in sinks:
                    sink.close()
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted[/] (exit {signals.exit_status}): the rounds already finished are on disk")
        return signals.exit_status
    except ResourceError as exc:
        _error("error", exc)
        return 2
    except (ClientError, DriverLost, WorkersLost, RunDiverged, RunStalled, SelectionError, StrategyError,
            FlowerAppError) as exc:
        _error("run failed", exc)
        return 1
    _print_summary(outcome.summary, outcome.run_dir)
    return 0


def _received_scenario(path: Path, *, trust_code: bool):
    """A results folder's scenario. A folder is data: unless the user passes --trust-code for this
    run, the decision is taken on the TOML as data (no module it names is imported, no class built)
    and the file is then parsed with every import refused. A run of objects a script or notebook
    defined (``__main__:Name``) is refused first, whatever the trust: no run can import them again."""
    from raysim.inputs import importing_nothing, named_code, refuse_script_code
    from raysim.scenario.sections import read_table
    from raysim.scenario.vertical import parse_any

    table = read_table(path)
    refuse_script_code(table, where=f"cannot resume {path.parent}")
    if trust_code:
        return parse_any(table)
    named = named_code(table)
    if named:
        listed = ", ".join(f"{key} = {spec!r} (module {spec.partition(':')[0]!r})" for key, spec in named.items())
        raise ConfigError(f"{path} names code to import: {listed}; a results folder is data and --resume "
                          "imports no code it names: pass --trust-code if you trust that code")
    with importing_nothing("a results folder is data: --resume imports nothing it names without --trust-code"):
        return parse_any(table)


def _sinks(names: list[str], results: Path, scenario) -> Callable[[str], list]:
    """Checks the tracking sinks ``--track`` names before the run (a missing package is bad input)
    and returns what opens them by the run id, the run folder's name, once the folder exists."""
    if not names:
        return lambda run_id: []
    from raysim.results.sinks import check_sinks, flatten, open_sinks
    from raysim.scenario.config import to_table

    check_sinks(names)
    try:  # here, so that no tracker's own error type stands for a --results that cannot be a folder
        (results / "tracking").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--results {results}: --track cannot create {results / 'tracking'} "
                          f"({exc.strerror or exc}); choose another --results folder") from exc
    params = flatten(to_table(scenario))
    return lambda run_id: open_sinks(names, results / "tracking", name=scenario.run.name, run_id=run_id, params=params)


def _print_summary(summary: dict, run_dir: Path) -> None:
    table = Table(title=f"{summary['scenario']}: {summary['status']}", show_header=False)
    vertical = ("test_auc", "central_test_auc", "central_test_accuracy", "bytes_total", "he_seconds")
    metric = summary.get("metric", "accuracy")
    for key in ("rounds", f"final_{metric}", f"best_{metric}", "sim_time", "wall_time", "startup_s", "num_actors",
                *(k for k in vertical if k in summary)):
        value = summary.get(key)
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    table.add_row("results", str(run_dir))
    Console().print(table)


def _sweep(args: argparse.Namespace) -> int:
    from raysim.experiments.sweep import load_sweep, run_sweep
    from raysim.runtime.session import ResourceError

    sweep = load_sweep(args.scenario, overrides=tuple(args.overrides), grid=tuple(args.grid))
    out = args.out or Path("results") / "sweeps" / sweep.name
    try:
        failed = run_sweep(sweep, out, address=args.address, say=_say)
    except ResourceError as exc:
        _error("error", exc)
        return 2
    _print_sweep_summary(out, [k for k, _ in sweep.spec.grid])
    if failed:
        console.print(f"[red]{len(failed)} trial(s) failed[/]: {', '.join(failed)}; the same command runs them again")
        return 1
    return 0


def _say(text: str) -> None:
    """A sweep's progress lines (a module function: Ray Tune pickles the callback that calls it)."""
    console.print(text, highlight=False, soft_wrap=True)


def _print_sweep_summary(sweep_dir: Path, keys: list[str]) -> None:
    """The final primary metric (accuracy, MSE, ...) per arm over the seeds (mean, std, 95%
    t-interval), written as CSV and printed, with the per-round plot and its ribbons."""
    from raysim.results.results import load, save_figure
    from raysim.results.summary import arms_figure, summarize

    results = load(sweep_dir)
    by = keys or ["trial"]
    metric = results.metric
    summary = summarize(results.summary, by=by, metric=f"final_{metric.name}")
    atomic_write(sweep_dir / "summary.csv", summary.arms.to_csv(index=False))
    atomic_write(sweep_dir / "differences.csv", summary.differences.to_csv(index=False))
    save_figure(arms_figure(results.rounds, by, metric=metric.column), sweep_dir / "arms.png")
    print(summary.arms.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if not summary.differences.empty:
        print(summary.differences.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    console.print(f"wrote {sweep_dir / 'summary.csv'}, {sweep_dir / 'differences.csv'} and {sweep_dir / 'arms.png'}")


def _report(args: argparse.Namespace) -> int:
    from raysim.results.html import report_page, write_page

    out = args.out or args.path / "report.html"
    if args.out is None:  # inside the received folder: no link there may redirect the page
        refuse_link(out, what=f"writing the report into {args.path}")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder: give the report's file name, e.g. {out / 'report.html'}")
    try:
        page = report_page(args.path)
    except FileNotFoundError as exc:
        raise ConfigError(str(exc)) from exc
    try:
        write_page(page, out)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write the report ({exc.strerror or exc}); nothing was "
                          "written") from exc
    console.print(f"wrote {out}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from raysim.results.report import plot_comparison, summarise
    from raysim.results.results import load

    try:
        results = load(*args.runs)
    except FileNotFoundError as exc:
        raise ConfigError(str(exc)) from exc
    if results.rounds.empty:
        raise ResultsError(f"no run under {[str(p) for p in args.runs]} finished a round: nothing to compare")
    metric = results.metric
    if args.target is None:
        if metric.name != "accuracy":
            raise ConfigError(f"--target is needed: the runs are judged by {metric.name}"
                              f"{' (lower is better)' if metric.lower_is_better else ''}; e.g. --target 0.5")
        args.target = 0.8
    if metric.name == "accuracy" and not 0 < args.target <= 1:
        raise ConfigError(f"--target must be an accuracy in (0, 1], got {args.target}")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {args.out}: cannot create the folder ({exc.strerror})") from exc
    table = summarise(results, target=args.target)
    try:
        atomic_write(args.out / "comparison.csv", table.to_csv(index=False))
        plot_comparison(results, args.out / "comparison.png")
    except OSError as exc:  # a full disk, a read-only folder
        raise ConfigError(f"--out {args.out}: cannot write the comparison ({exc.strerror or exc})") from exc
    print(table.drop(columns=["run_id"]).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    console.print(f"wrote {args.out / 'comparison.csv'} and {args.out / 'comparison.png'}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    """0 when the model files read back whole (``model_file.read_model``) and every block matches
    what was committed, 1 when a block was edited, 2 when a model file is damaged or the input is
    not a chain (or --head not a hash). Whether the head was checked, and against what, is said."""
    from raysim.results.ledger import verify_run
    from raysim.results.model_file import CLIENT_FILES, ROUND_FILES, model_files, read_model

    check_received_folder(args.run_dir, deep=(ROUND_FILES, CLIENT_FILES))
    models = model_files(args.run_dir)
    for path in models:
        read_model(path)
    chain = not models or args.head is not None or (args.run_dir / "ledger.json").exists()
    verdict, head = verify_run(args.run_dir, head=args.head) if chain else (None, "")
    if models:
        console.print(f"[green]valid[/]: {len(models)} model file(s) in {escape(str(args.run_dir))}",
                      highlight=False, soft_wrap=True)
    if verdict is None:
        return 0
    console.print(head, highlight=False, soft_wrap=True)
    if verdict.valid:
        console.print(f"[green]valid[/]: {escape(str(args.run_dir / 'ledger.json'))}", highlight=False)
        return 0
    console.print(f"[bold red]tampered:[/] block {verdict.first_bad}: {escape(verdict.reason)}", highlight=False)
    return 1


def _model(args: argparse.Namespace) -> int:
    """Prints a model file's arrays (name, shape, dtype) and metadata once ``read_model`` has
    checked it; a damaged or crafted file is one line and exit 2."""
    from raysim.results.model_file import CLIENT_FILES, ROUND_FILES, model_path, read_model

    check_received_folder(args.run_dir, deep=(ROUND_FILES, CLIENT_FILES))
    path = model_path(args.run_dir, round=args.round, client=args.client)
    arrays, meta = read_model(path)
    out = Console(highlight=False)
    out.print(escape(str(path)), soft_wrap=True)
    for key, value in meta.items():
        out.print(f"  {key}: {escape(str(value))}", soft_wrap=True)
    table = Table("name", "shape", "dtype", title=f"{len(arrays)} arrays", title_justify="left")
    for name, array in arrays.items():
        table.add_row(escape(name), str(tuple(array.shape)), str(array.dtype))
    out.print(table)
    return 0


def _list(args: argparse.Namespace) -> int:
    from raysim.data import DATASETS, PARTITIONS
    from raysim.models.models import MODELS
    from raysim.scenario.sections import STRATEGIES
    from raysim.sim.policies import POLICIES
    from raysim.sim.selection import SELECTORS

    out = Console()
    sections = {
        "datasets": {**{name: info.description for name, info in DATASETS.items()},
                     "table": "your Parquet or CSV file: data.path, data.label (see README, 'Your own data and task')",
                     "leaf": "a LEAF folder (train/*.json, test/*.json): data.path",
                     "package.module:function": "your function returning train_x, train_y, test_x, test_y"},
        "models": {name: info.description for name, info in MODELS.items()} | {"package.module:Class": "any torch.nn.Module"},
        "partitions": {name: _first_line(cls.__doc__) for name, cls in PARTITIONS.items()},
        "strategies": dict(STRATEGIES),
        "policies": {name: _first_line(cls.__doc__) for name, cls in POLICIES.items()},
        "selectors": {name: _first_line(cls.__doc__) for name, cls in SELECTORS.items()}
        | {"package.module:Name": "your selector (docs/architecture.md, 'A selector')"},
    }
    for title, entries in sections.items():
        table = Table(title=title, show_header=False, title_justify="left")
        for name, text in entries.items():
            table.add_row(name, text)
        out.print(table)
    return 0


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if text else ""


if __name__ == "__main__":
    sys.exit(main())
