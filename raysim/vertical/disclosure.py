"""What each party of a vertical run learns, protocol by protocol, from the messages it receives.

Written to ``summary.json`` as ``disclosure`` so that a result never claims more privacy than the
protocol gives. Each statement is about semi-honest parties that see exactly their own messages;
``tests/vertical/test_privacy.py`` plays each party with the messages it received in a real run
and checks the statements that say what can and cannot be recovered.

Sources: ECDH-PSI as FATE runs it (both sides learn the intersection); Hardy et al. 2017
(arXiv:1711.10677): every party learns its own plaintext gradient, which is inherent in the
protocol, not a flaw of this implementation, and ``HIDDEN`` is the variant without it
(``[vertical.lr] hide_gradients``, lr.py); SplitNN's gradient leak of labels: Li et al. 2021
(arXiv:2102.08504).
"""

from __future__ import annotations

LABEL, OTHER, COORDINATOR = "label party", "other party", "coordinator"
SEEDED = ("every party's secrets (PSI scalars, gradient masks, re-randomisers) come from the run's seed so "
          "that a simulated run repeats; a deployment draws them from the OS, as the statements assume")

PSI = {
    LABEL: {
        "learns": ["how many distinct ids each other party holds",
                   "which of its own ids every party holds (the intersection)"],
        "does_not_learn": ["the other parties' ids outside the intersection", "their columns"],
    },
    OTHER: {
        "learns": ["how many distinct ids the label party holds",
                   "which of its own ids are in the intersection, in the shared row order",
                   "which aligned rows are held out for testing"],
        "does_not_learn": ["the label party's ids outside the intersection", "the labels"],
    },
}

TRAINERS = {
    "paillier_lr": {
        LABEL: {
            "learns": ["its own gradient per batch, (1/h) X_0^T d: through it linear combinations of the sum "
                       "of the other parties' scores on the batch (that sum on every row when a batch has no "
                       "more rows than the label party has columns + 1)",
                       "the other parties' plaintext scores X_k w_k on every train and test row after each "
                       "epoch (scoring, as FATE's prediction does)"],
            "does_not_learn": ["anything from the ciphertexts [[u_k / 4]] (randomness it does not know, a key "
                               "it does not hold)", "the other parties' columns, weights or gradients"],
        },
        OTHER: {
            "learns": ["its own gradient per batch, (1/h) X_k^T d with d = z/4 - s/2, and so its weights: in "
                       "the first batch (w = 0) this is -(1/2h) X_k^T s, every label of that batch when the "
                       "batch has no more rows than the party has columns, otherwise as many linear "
                       "combinations of the batch's labels as it has columns (inherent in Hardy et al.'s "
                       "protocol; no claim that a lattice attack cannot solve them)"],
            "does_not_learn": ["the residuals d, the labels or the label party's scores from [[d]] (re-randomised "
                               "by the label party: dividing out its own [[u_k / 4]] yields nothing)",
                               "the other parties' scores, columns or gradients"],
        },
        COORDINATOR: {
            "learns": ["each party's gradient sum plus a fresh uniform mask of 2p + 40 bits (p = scale_bits; "
                       "a sum needs about 2p + 10), which hides it statistically",
                       "from the message sizes, the batch size and each party's column count"],
            "does_not_learn": ["gradients, scores, residuals, labels or columns (it holds the private key: "
                               "the statements assume it colludes with no party)"],
        },
    },
    "plain_lr": {
        LABEL: {
            "learns": ["the other parties' scores X_k w_k on every batch and every scored row"],
            "does_not_learn": ["their columns or weights"],
        },
        OTHER: {
            "learns": ["the residual d = z/4 - s/2 of every row of every batch: in the first batch (w = 0) "
                       "d = -s/2, every label", "its own gradient"],
            "does_not_learn": ["the label party's columns"],
        },
    },
    "splitnn": {
        LABEL: {
            "learns": ["each other party's embeddings h_k of every training batch and of every scored row "
                       "(functions of its columns, open to model inversion)"],
            "does_not_learn": ["the raw columns", "the bottom models' weights"],
        },
        OTHER: {
            "learns": ["dL/dh_k for every row of every batch: with two classes and the linear top every row's "
                       "gradient is (p_1 - y) times one shared vector, so its sign splits each batch into the "
                       "two classes (Li et al. 2021, arXiv:2102.08504); with more classes it clusters them"],
            "does_not_learn": ["which group is which class from the gradients alone",
                               "the other parties' embeddings or columns", "the top model"],
        },
    },
}


# ``[vertical.lr] hide_gradients = true``: every party's weights stay [[w_k]] under the coordinator's
# key (lr.py); what a party receives during training is ciphertexts and public values only.
HIDDEN = {
    LABEL: {
        "learns": ["after each epoch the model's total score z = sum_k X_k w_k of every train and test row "
                   "(decrypted by the coordinator under its mask; what prediction needs): regressing z on its own "
                   "columns estimates the part of the others' scores that those columns explain",
                   "the final model's predictions; its own and the other parties' weights stay encrypted"],
        "does_not_learn": ["its own gradients or weights (encrypted, updated by the coordinator's fresh "
                           "ciphertexts)", "any party's own score u_k, residual, gradient or weights",
                           "anything from the ciphertexts [[u_k]] (randomness it does not know, a key it does not "
                           "hold)"],
    },
    OTHER: {
        "learns": ["nothing from training beyond the batch order: every message it receives is a ciphertext it "
                   "cannot decrypt (re-randomised [[4d]], the coordinator's fresh [[w_k]]) or a public value"],
        "does_not_learn": ["its own gradients or weights (encrypted from start to end, the final model too)",
                           "the residuals, the labels, the label party's scores, the total scores"],
    },
    COORDINATOR: {
        "learns": ["each party's updated weight plus a fresh uniform mask 2^40 times larger (to rescale it), and "
                   "each row's total score plus such a mask (to score it)",
                   "from the message sizes, the batch size and each party's column count"],
        "does_not_learn": ["weights, gradients, scores, residuals, labels or columns (it holds the private key: "
                           "the statements assume it colludes with no party)"],
    },
}


def statement(trainer: str, names: list[str], coordinator: str, hide_gradients: bool = False) -> dict:
    """``{"psi": {party: {"learns": [...], "does_not_learn": [...]}}, trainer: {...}, "assumes": ...}``
    for a run whose label party is ``names[0]``."""
    def by_party(roles: dict) -> dict:
        parties = {name: roles[LABEL if k == 0 else OTHER] for k, name in enumerate(names)}
        return {**parties, **({coordinator: roles[COORDINATOR]} if COORDINATOR in roles else {})}

    roles = HIDDEN if hide_gradients and trainer == "paillier_lr" else TRAINERS[trainer]
    return {"psi": by_party(PSI), trainer: by_party(roles), "assumes": f"semi-honest parties; {SEEDED}"}
