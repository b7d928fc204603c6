"""The cost model: what simulated time a task or a message costs. Device profiles and task timing
(``devices.py``), the links transfers are timed on (``links.py``); every transfer is charged by
``network/transport.py``'s ``transfer_s``, the one transfer-time formula, which sits on the floor
below so that the transport and the privacy protocols use it too."""
