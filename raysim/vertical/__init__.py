"""Vertical federated learning, the math: parties hold different columns of the same people.

Pure functions and party-side state, no Ray: ECDH private set intersection (``psi.py``), the
vertical data sets and their column splits (``data.py``), logistic regression with the Taylor
loss in plaintext and under Paillier (``lr.py``, Hardy et al. 2017, arXiv:1711.10677), SplitNN
(``splitnn.py``, Vepakomma et al. 2018, arXiv:1812.00564), the party that holds one share of
the data and runs its half of each protocol (``party.py``) and what each party learns from
each protocol's messages (``disclosure.py``). The simulated clock and the order of
messages are in ``raysim/sim/bridges/vertical.py``; the parties as Ray actors in
``raysim/runtime/vertical_parties.py``.
"""
