"""Error feedback: what a biased codec leaves out is carried into the client's next update.

Stich, Cordonnier, Jaggi 2018 (arXiv:1809.07599); Karimireddy et al. 2019 (arXiv:1901.09847):
p_t = D_t + e_t, send s_t = C(p_t), keep e_{t+1} = p_t - s_t. So the sum of what was sent plus
the memory left equals the sum of the updates (sum s_t + e_T = sum D_t): no mass is lost, only
delayed. The memory is the client's own state: it persists across rounds it is not sampled in.
"""

from __future__ import annotations

import numpy as np

from raysim.compression.codec import Codec


def encode(codec: Codec, delta: np.ndarray, memory: np.ndarray | None,
           rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray | None]:
    """``encode(delta, state, rng) -> (payload, state)``: the payload's fields and the new
    memory. ``memory`` None means no error feedback (and None comes back); with feedback, a
    client that never sent starts from a zero memory (pass zeros)."""
    if memory is None:
        return codec.encode(delta, rng), None
    corrected = np.asarray(delta, dtype=np.float64) + memory
    fields = codec.encode(corrected, rng)
    return fields, corrected - codec.decode(fields)
