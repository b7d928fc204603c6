"""FedDyn (Acar et al., ICLR 2021, arXiv:2111.04263) on raysim's client-algorithm and
server-strategy protocols: ``feddyn:FedDynClient`` and ``feddyn:FedDynServer``, and both as one
object, ``feddyn:FedDyn`` (``[algorithm]``: ``client()`` and ``server()``)."""

from feddyn.algorithm import FedDyn
from feddyn.client import FedDynClient
from feddyn.server import FedDynServer

__all__ = ["FedDyn", "FedDynClient", "FedDynServer"]
