"""FedDyn (Acar et al., ICLR 2021, arXiv:2111.04263) on raysim's client-algorithm and
server-strategy protocols: ``feddyn:FedDynClient`` and ``feddyn:FedDynServer``."""

from feddyn.client import FedDynClient
from feddyn.server import FedDynServer

__all__ = ["FedDynClient", "FedDynServer"]
