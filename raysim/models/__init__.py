"""Models by name, the flat parameter vector and its layout, local training (the only floor besides
the workers that imports torch; ``spec`` and ``layout`` do not, so the driver can hold them)."""
