"""Client selection: who a dispatch starts (the policy decides when and how many)."""

from raysim.sim.selection.oort import Oort
from raysim.sim.selection.outcomes import ClientRecord
from raysim.sim.selection.power_of_choice import PowerOfChoice
from raysim.sim.selection.protocol import SelectionView, Selector
from raysim.sim.selection.stage import SelectionError, SelectionStage
from raysim.sim.selection.uniform import UniformSelection, idle_online, next_online, sample_clients

SELECTORS: dict[str, type] = {s.kind: s for s in (UniformSelection, PowerOfChoice, Oort)}

__all__ = ["SELECTORS", "ClientRecord", "Oort", "PowerOfChoice", "SelectionError", "SelectionStage",
           "SelectionView", "Selector", "UniformSelection", "idle_online", "next_online", "sample_clients"]
