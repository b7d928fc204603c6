"""One party of a vertical federation: its share of the data and its half of every protocol.

A party holds only its own ids, its own columns for its own rows and, at the label party, the
labels. Every method takes and returns what would cross the network, nothing more, so the
runtime can put each party in its own Ray actor (``raysim/runtime/vertical_parties.py``) and the
orchestration (``raysim/sim/bridges/vertical.py``) can count the bytes of each message.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from raysim.seeding import Stream, rng
from raysim.vertical import lr, psi, splitnn
from raysim.vertical.data import Share
from raysim.vertical.netshape import NetShape, init_seed


def metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Log loss, accuracy and AUC (one-vs-rest for several classes) of predicted probabilities
    ``[n, classes]``."""
    from sklearn.metrics import roc_auc_score  # here: a horizontal run never loads scikit-learn (1 s, 100 MB)

    p = np.clip(probabilities, 1e-12, 1.0)
    loss = float(-np.mean(np.log(p[np.arange(len(labels)), labels])))
    accuracy = float(np.mean(p.argmax(axis=1) == labels))
    try:
        auc = float(roc_auc_score(labels, p[:, 1]) if p.shape[1] == 2
                    else roc_auc_score(labels, p, multi_class="ovr", labels=np.arange(p.shape[1])))
    except ValueError:  # one class only among these rows
        auc = float("nan")
    return {"loss": loss, "accuracy": accuracy, "auc": auc}


class Party:
    """Party ``index`` (0: the label party) of a run; its secret PSI scalar and the shuffle of its
    rows come from the seed, so a run repeats exactly."""

    def __init__(self, index: int, share: Share, *, seed: int):
        self.index, self.seed = index, seed
        _, first = np.unique(share.ids, return_index=True)  # a duplicated id: its first row only
        self.duplicates = len(share.ids) - len(first)
        self._rows = rng(seed, Stream.PSI, 1, index).permutation(np.sort(first))
        self._share = share
        self._key = psi.new_key(rng(seed, Stream.PSI, 0, index).bytes(32))
        self.aligned = self.train = self.test = None
        torch_threads()

    @property
    def is_label_party(self) -> bool:
        return self._share.labels is not None

    # --- alignment -----------------------------------------------------------------------------

    def psi_first(self) -> list[bytes]:
        """{k H(id)} for this party's distinct ids, in its own shuffled order."""
        return psi.mask_ids(self._key, self._share.ids[self._rows].tolist())

    def psi_second(self, points: list[bytes]) -> list[bytes]:
        return psi.blind(self._key, points)

    def psi_duplicates(self) -> int:
        return self.duplicates

    def psi_join(self, own_twice: list[list[bytes]], others_twice: list[list[bytes]]) -> list[np.ndarray]:
        """At the label party: the rows every party holds, in this party's order; returns, for
        each other party, the positions of those rows in the list that party sent.

        ``own_twice[k]`` is this party's ids masked by itself and then by party k (each party has
        its own key), so each pair is matched on its own lists."""
        keep = np.ones(len(self._rows), dtype=bool)
        where = []
        for mine_k, theirs in zip(own_twice, others_twice):
            mine, pos = psi.match(mine_k, theirs)
            lookup = np.full(len(self._rows), -1)
            lookup[mine] = pos
            keep &= lookup >= 0
            where.append(lookup)
        self.aligned = self._rows[keep]
        return [lookup[keep] for lookup in where]

    def aligned_ids(self) -> np.ndarray:
        """The intersection in the shared row order (every party learns it from PSI)."""
        return self._share.ids[self.aligned]

    def psi_align(self, positions: np.ndarray) -> int:
        self.aligned = self._rows[positions]
        return len(self.aligned)

    def split_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """At the label party: aligned positions of training and held-out rows."""
        held = self._share.held_out[self.aligned]
        self.set_split(np.flatnonzero(~held), np.flatnonzero(held))
        return self.train, self.test

    def set_split(self, train: np.ndarray, test: np.ndarray) -> None:
        self.train, self.test = train, test

    def _x(self, part: str, batch: np.ndarray | None = None) -> np.ndarray:
        rows = self.aligned[self.train if part == "train" else self.test]
        return self._share.features[rows if batch is None else rows[batch]]

    def _y(self, part: str, batch: np.ndarray | None = None) -> np.ndarray:
        rows = self.aligned[self.train if part == "train" else self.test]
        return self._share.labels[rows if batch is None else rows[batch]]

    # --- logistic regression (lr.py) ----------------------------------------------------------

    def lr_setup(self, scale_bits: int, public_key, learning_rate: float, l2: float,
                 hide_gradients: bool = False) -> Counter:
        """``hide_gradients``: the weights are held only as [[w]] (encryptions of 0 at first) and
        ``self.w`` is None: the party never sees a plaintext weight or gradient (lr.py)."""
        self.encoding, self.public_key = lr.Encoding(scale_bits), public_key
        self.learning_rate, self.l2, self.hidden = learning_rate, l2, hide_gradients
        self.w = np.zeros(self._share.features.shape[1] + self.is_label_party)
        self._masks, self._step, self._residuals, self._score_masks, ops = None, 0, 0, {}, Counter()
        if hide_gradients:
            self.w_encrypted, self.w = lr.encrypt(public_key, self.encoding, self.w, ops), None
        return ops

    def _design(self, part: str, batch: np.ndarray | None = None) -> np.ndarray:
        """Features, with a column of ones for the intercept at the label party."""
        x = self._x(part, batch).astype(np.float64)
        return np.hstack([x, np.ones((len(x), 1))]) if self.is_label_party else x

    def lr_scores(self, part: str) -> np.ndarray:
        """u_k = X_k w_k on every row of ``part`` (what a party reveals to predict)."""
        return self._design(part) @ self.w

    def lr_quarter_scores(self, batch: np.ndarray) -> tuple[object, Counter]:
        """[[u_k / 4]]; under hide_gradients [[4 (u_k / 4)]] = X_k [[w_k]] at scale 2^(2p)."""
        if self.hidden:
            return self.lr_encrypted_scores("train", batch)
        ops, quarter = Counter(), self._design("train", batch) @ self.w / 4.0
        return (quarter if self.public_key is None else lr.encrypt(self.public_key, self.encoding, quarter, ops)), ops

    def lr_residual(self, batch: np.ndarray, others: list) -> tuple[object, Counter]:
        ops = Counter()
        if self.public_key is None:
            own = self._design("train", batch) @ self.w
            return lr.residual(own, self._y("train", batch), others), ops
        self._residuals += 1
        draw = rng(self.seed, Stream.VERTICAL_TRAIN, 3, self.index, self._residuals)
        if self.hidden:
            own, ops = self.lr_encrypted_scores("train", batch)
            return lr.hidden_residual(self.encoding, own, self._y("train", batch), others, draw, ops), ops
        own = self._design("train", batch) @ self.w
        return lr.encrypted_residual(self.encoding, own, self._y("train", batch), others, draw, ops), ops

    def lr_gradient(self, batch: np.ndarray, d) -> tuple[object, Counter]:
        """The plain gradient, or [[X^T d + mask]] for the coordinator to decrypt."""
        ops, x = Counter(), self._design("train", batch)
        if self.public_key is None:
            return lr.gradient(x, d), ops
        self._step += 1
        self._masks = lr.draw_masks(rng(self.seed, Stream.VERTICAL_TRAIN, 2, self.index, self._step),
                                    x.shape[1], self.encoding)
        self._rows_in_batch = len(batch)
        return lr.encrypted_gradient(self.encoding, x, d, self._masks, ops), ops

    def lr_hidden_update(self, batch: np.ndarray, d: list) -> tuple[list, Counter]:
        """hide_gradients: [[w' 2^(5p) + mask]] for the coordinator to rescale to 2^p (lr.py)."""
        ops, x = Counter(), self._design("train", batch)
        self._step += 1
        self._masks = lr.wide_masks(rng(self.seed, Stream.VERTICAL_TRAIN, 4, self.index, self._step),
                                    x.shape[1], lr.update_bits(self.encoding))
        coefficients = lr.update_coefficients(self.encoding, self.learning_rate, self.l2, len(batch), x.shape[1],
                                              self.is_label_party)
        return lr.masked_update(self.encoding, x, d, self.w_encrypted, coefficients, self._masks, ops), ops

    def lr_hidden_apply(self, rescaled: list) -> Counter:
        """[[w']]: the coordinator's fresh ciphertexts less this party's rescaled masks."""
        ops = Counter()
        self.w_encrypted = lr.unmask_update(rescaled, self._masks, lr.rescale_bits(self.encoding), ops)
        return ops

    def lr_encrypted_scores(self, part: str, batch: np.ndarray | None = None) -> tuple[list, Counter]:
        """hide_gradients: [[X_k w_k]] at scale 2^(2p) on the rows of ``part`` (or of a batch)."""
        ops = Counter()
        return lr.encrypted_scores(self.encoding, self._design(part, batch), self.w_encrypted, ops), ops

    def lr_masked_total(self, part: str, others: list[list]) -> tuple[list, Counter]:
        """At the label party, hide_gradients: [[z + mask]] on every row of ``part``, for the
        coordinator to decrypt; only the total score z is ever revealed, and only to this party."""
        own, ops = self.lr_encrypted_scores(part)
        draw = rng(self.seed, Stream.VERTICAL_TRAIN, 5, self.index, self._step, part == "test")
        masks = self._score_masks[part] = lr.wide_masks(draw, len(own), lr.score_bits(self.encoding))
        total = [sum(cs[1:], cs[0]) + int(m) for *cs, m in zip(own, *others, masks)]
        ops["add"] += len(own) * (len(others) + 1)
        return total, ops

    def lr_evaluate_masked(self, part: str, decrypted: list[int]) -> dict[str, float]:
        return self._lr_metrics(part, lr.unmask_scores(decrypted, self._score_masks[part], self.encoding))

    def lr_apply(self, gradient) -> None:
        """One SGD step with L2 (not on the intercept); ``gradient`` is the coordinator's
        decryption of the masked gradient under Paillier."""
        if self.public_key is not None:
            gradient = lr.unmask(gradient, self._masks, self.encoding, self._rows_in_batch)
        penalty = self.l2 * self.w
        if self.is_label_party:
            penalty[-1] = 0.0
        self.w = self.w - self.learning_rate * (gradient + penalty)

    def lr_evaluate(self, part: str, others: list[np.ndarray]) -> dict[str, float]:
        return self._lr_metrics(part, self.lr_scores(part) + sum(others, 0.0))

    def _lr_metrics(self, part: str, z: np.ndarray) -> dict[str, float]:
        p1 = 1.0 / (1.0 + np.exp(-z))
        return {**metrics(np.c_[1 - p1, p1], self._y(part)), "taylor_loss": lr.taylor_loss(z, self._y(part))}

    # --- SplitNN (splitnn.py) -----------------------------------------------------------------

    def nn_setup(self, shape: NetShape, parties: int, classes: int) -> None:
        inputs = self._share.features.shape[1]
        self.bottom = splitnn.Bottom(splitnn.bottom(inputs, shape, init_seed(self.seed, self.index)), shape)
        if self.is_label_party:
            self.top = splitnn.Top(splitnn.top(parties, classes, shape, init_seed(self.seed, parties)), shape)

    def nn_forward(self, part: str, batch: np.ndarray | None = None) -> np.ndarray:
        return self.bottom.forward(self._x(part, batch), train=batch is not None)

    def nn_top(self, batch: np.ndarray, embeddings: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
        return self.top.step(embeddings, self._y("train", batch))

    def nn_backward(self, grad: np.ndarray) -> None:
        self.bottom.backward(grad)

    def nn_evaluate(self, part: str, embeddings: list[np.ndarray]) -> dict[str, float]:
        return metrics(self.top.predict(embeddings), self._y(part))

    def model_part(self) -> dict[str, np.ndarray]:
        """This party's trained weights by name, as the run's result: SplitNN's bottom model
        (``bottom.<entry>``, and ``top.<entry>`` at the label party), or the logistic regression's
        ``w`` (its last entry the intercept at the label party); none with hidden gradients, where
        the party holds only [[w]] under the coordinator's key."""
        if hasattr(self, "bottom"):
            modules = {"bottom": self.bottom.module, **({"top": self.top.module} if self.is_label_party else {})}
            return {f"{kind}.{name}": t.detach().cpu().numpy() for kind, module in modules.items()
                    for name, t in module.state_dict().items()}
        return {} if getattr(self, "w", None) is None else {"w": np.asarray(self.w)}


def torch_threads() -> None:
    """One thread per party: parties share a few cores, and more threads only contend."""
    import torch

    torch.set_num_threads(1)
