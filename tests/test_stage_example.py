"""docs/architecture.md's "A stage: one optional feature", as written: a per-device energy budget
charged per task, written outside raysim/ against the stage protocol alone, added to a driver
built from plain parts, with its own column in the client rows. The code below is the code in
the document; if one changes, change the other."""

from __future__ import annotations

from pathlib import Path

from raysim.sim.cost.devices import TaskTiming
from raysim.sim.stages.stage import Stage
from tests.sim.test_driver_parts import driver, run_rounds
from tests.test_architecture_examples import python_blocks


class EnergyBudget(Stage):
    """Each device starts with ``budget_j`` joules; a task costs its compute seconds at
    ``compute_w`` watts and its transfer seconds at ``radio_w``, charged when it is planned (a
    device that drops out spent it anyway). A device with nothing left is not dispatched again."""

    key = "energy"

    def __init__(self, budget_j: float, *, compute_w: float = 2.0, radio_w: float = 1.0):
        self.budget_j, self.compute_w, self.radio_w = budget_j, compute_w, radio_w
        self.spent: dict[int, float] = {}

    def cost_j(self, compute_s: float, transfer_s: float) -> float:
        return compute_s * self.compute_w + transfer_s * self.radio_w

    def eligible(self, client: int, now: float) -> bool:
        return self.spent.get(client, 0.0) < self.budget_j

    def timing(self, client: int, timing: TaskTiming, *, download: bool, model_bytes: int,
               update_bytes: int) -> TaskTiming:
        charge = self.cost_j(timing.compute_s, timing.download_s + timing.upload_s)
        self.spent[client] = self.spent.get(client, 0.0) + charge
        return timing

    def client_columns(self, task) -> dict:
        return {"energy_j": self.cost_j(task.compute_s, task.download_s + task.upload_s)}


def test_the_energy_budget_adds_its_column_and_retires_spent_devices():
    budget = EnergyBudget(budget_j=0.2)
    reports = run_rounds(driver(rounds=6, stages=(budget,)))
    rows = [row for report in reports for row in report.client_rows]
    assert all(row["energy_j"] > 0 for row in rows)
    used = {}
    for row in rows:
        used[row["client_id"]] = used.get(row["client_id"], 0.0) + row["energy_j"]
    assert used == budget.spent  # the column adds up to what the stage charged
    # a device is dispatched only while it has budget left: each task starts below the budget
    before = {}
    for row in sorted(rows, key=lambda r: r["task_id"]):
        assert before.get(row["client_id"], 0.0) < budget.budget_j
        before[row["client_id"]] = before.get(row["client_id"], 0.0) + row["energy_j"]
    assert any(spent >= budget.budget_j for spent in budget.spent.values())


def test_the_energy_budget_survives_a_resume():
    whole_budget = EnergyBudget(budget_j=0.2)
    whole = run_rounds(driver(rounds=6, stages=(whole_budget,)))
    cut = driver(rounds=6, stages=(EnergyBudget(budget_j=0.2),))
    while cut.round < 3:
        cut.advance()
    resumed_budget = EnergyBudget(budget_j=0.2)
    resumed = driver(rounds=6, stages=(resumed_budget,))
    resumed.restore(cut.snapshot())
    rest = run_rounds(resumed)
    assert [r.client_rows for r in whole[3:]] == [r.client_rows for r in rest]
    assert resumed.stages[0].spent == whole_budget.spent


def test_the_document_shows_this_code():
    blocks = python_blocks("## A stage: one optional feature")
    source = Path(__file__).read_text()
    assert len(blocks) == 2
    for block in blocks:
        assert block.strip() in source, block
