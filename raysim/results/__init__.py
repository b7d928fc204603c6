"""Results on disk: the writer and loader (``results.py``), comparing runs (``report.py``).

``load`` and ``load_model`` are re-exported here: ``raysim.results.load(run_dir)`` is the public way to read
a run back, ``raysim.results.load_model(run_dir)`` the way to take its trained model out.
"""

from raysim.results.model_file import load_model
from raysim.results.results import Results, load

__all__ = ["Results", "load", "load_model"]
