"""Results on disk: the writer and loader (``results.py``), comparing runs (``report.py``).

``load`` is re-exported here because ``raysim.results.load(run_dir)`` is the public way to read
a run back.
"""

from raysim.results.results import Results, load

__all__ = ["Results", "load"]
