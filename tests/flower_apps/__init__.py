"""Unmodified Flower 1.42 apps for raysim's tests.

These modules are written exactly as a Flower user writes them, after Flower's own
PyTorch quickstart: they import only ``flwr``, ``torch``, ``numpy`` and the standard
library, never ``raysim``.  raysim's Flower adapter runs them; ``run_in_flower`` runs
them on Flower's own in-process machinery (no Ray) to prove they are valid Flower apps.

- ``task``: the shared pieces (``Net``, Fashion-MNIST partitions, ``train``, ``test``).
- ``message_app``: Message API (``ClientApp`` with ``@app.train``/``@app.evaluate``,
  ``ServerApp`` with ``@server.main`` running FedAvg / FedProx / FedAdam).
- ``stateful_app``: a Message-API ``ClientApp`` that counts its trainings in
  ``context.state``.
- ``draws_app``: a Message-API ``ClientApp`` reporting draws from Python's, numpy's and
  torch's global generators (and, unless told not to, its example count).
- ``legacy_app``: the legacy API (``NumPyClient`` + ``client_fn``, ``server_fn`` +
  ``ServerAppComponents`` with ``flwr.server.strategy.FedAvg``).
"""
