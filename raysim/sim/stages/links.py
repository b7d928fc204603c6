"""The links stage: a broker's or a ledger's network, through whose nodes every transfer goes
(sim/cost/links.py times them): each task's timing, the messages and bytes carried so far, the
nodes' traffic and, with ``network.log_messages``, the messages of each round."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from raysim.sim.cost.devices import TaskTiming
from raysim.sim.cost.links import NetworkLinks
from raysim.sim.stages.stage import NOTHING, Stage, StageContext, Step, StepOutput


class LinksStage(Stage):
    key = "links"

    def __init__(self, links: NetworkLinks):
        self.links = links

    def timing(self, client: int, timing: TaskTiming, *, download: bool, model_bytes: int,
               update_bytes: int) -> TaskTiming:
        return self.links.timing(client, timing, model_bytes=model_bytes, update_bytes=update_bytes,
                                 download=download)

    def after_step(self, step: Step, context: StageContext) -> StepOutput:
        messages = self.links.new_messages(context.round)
        return StepOutput(tables={"messages": messages}) if messages else NOTHING

    def round_columns(self, client_rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        messages, nbytes = self.links.totals()
        return {"network_messages_total": messages, "network_bytes_total": nbytes}

    def network(self, round_number: int) -> dict[str, Any]:
        return {"nodes": self.links.node_rows()}
