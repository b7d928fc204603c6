"""The parties of a vertical run as Ray actors, one each (and the Paillier coordinator).

Each actor holds one party's share and nothing else: a party's columns and labels live only in
its own process. The actors take no CPU slot (``num_cpus=0``): the protocols run one step at a
time, the parties of a step side by side, and an actor must never wait for a slot another party
holds. ``RayParties`` answers the same requests as ``sim/bridges/vertical.py:LocalParties``.
"""

from __future__ import annotations

from typing import Any, Sequence

import ray

from raysim.runtime.session import fetch


class RayParties:
    def __init__(self, parties: dict[str, tuple[type, tuple, dict]]):
        """``parties``: name -> (class, args, kwargs) of the object each actor holds."""
        self.handles: dict[str, Any] = {}
        try:
            for name, (cls, args, kwargs) in parties.items():
                self.handles[name] = ray.remote(num_cpus=0)(cls).remote(*args, **kwargs)
            self([(name, "__ray_ready__", ()) for name in self.handles])
        except BaseException:
            self.close()
            raise

    def __call__(self, requests: Sequence[tuple[str, str, tuple]]) -> list:
        """Sends every request at once and waits for all: the parties of one step work side by
        side. A party's own error is raised as itself."""
        return fetch([getattr(self.handles[name], method).remote(*args) for name, method, args in requests])

    def close(self) -> None:
        for handle in self.handles.values():
            ray.kill(handle)
        self.handles = {}
