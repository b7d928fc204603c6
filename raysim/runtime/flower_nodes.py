"""The nodes of a Flower run as Ray actors: each imports the ``ClientApp`` by name and answers
the deliveries of the nodes it hosts (``sim/bridges/flower_grid.py:answer``). Node p goes to actor
p mod A; each delivery carries its own seeds, so the replies do not depend on A."""

from __future__ import annotations

from typing import Any

import ray

from raysim.inputs import import_object
from raysim.runtime.session import fetch, plan_pool
from raysim.runtime.resources import ResourcesConfig
from raysim.sim.bridges.flower_grid import GridDelivery, answer


class FlowerNode:
    """One actor's ClientApp (imported once, where it runs)."""

    def __init__(self, client_app: str, threads: int):
        import torch

        torch.set_num_threads(max(1, threads))
        self.name, self.app = client_app, import_object(client_app, what="flower.client_app", choices=[])

    def answer(self, deliveries: list[GridDelivery]) -> list[tuple[Any, Any]]:
        return [answer(self.app, delivery, name=self.name) for delivery in deliveries]


class RayFlowerNodes:
    """Deliveries to ClientApps on ``resources``' actors, all of a call side by side."""

    def __init__(self, client_app: str, resources: ResourcesConfig, *, num_nodes: int):
        plan = plan_pool(resources, population=num_nodes)
        threads = max(1, int(plan.num_cpus))
        node = ray.remote(num_cpus=plan.num_cpus, num_gpus=plan.num_gpus)(FlowerNode)
        self.actors = [node.remote(client_app, threads) for _ in range(plan.num_actors)]
        try:
            fetch([a.__ray_ready__.remote() for a in self.actors])
        except BaseException:
            self.close()
            raise

    def __call__(self, deliveries: list[GridDelivery]) -> list[tuple[Any, Any]]:
        shares: dict[int, list[int]] = {}
        for index, delivery in enumerate(deliveries):
            shares.setdefault(delivery.partition % len(self.actors), []).append(index)
        pending = {actor: self.actors[actor].answer.remote([deliveries[i] for i in indices])
                   for actor, indices in shares.items()}
        results: list = [None] * len(deliveries)
        for actor, ref in pending.items():
            for index, result in zip(shares[actor], fetch(ref)):
                results[index] = result
        return results

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
