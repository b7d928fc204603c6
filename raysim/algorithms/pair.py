"""One user object for both halves of an algorithm (``[algorithm] kind = "package.module:Name"``
with ``options``): its class defines ``client(self)``, returning the client algorithm (the
``models/algorithm.py`` protocol), and ``server(self)``, returning the server strategy (the
``algorithms/strategy.py`` protocol), so that an option both halves need (FedDyn's ``alpha``)
is written once.

The halves are built apart, each where it runs: the driver builds the object and asks it for
``server()``; every client worker builds it again from the name and options that
:class:`ClientHalf` carries (data, never the object: a worker process imports the user's module
itself, as it does for ``client.algorithm``) and asks it for ``client()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from raysim.inputs import UserCodeError, build_user_object

PAIR_METHODS = {"client": ("self",), "server": ("self",)}


@dataclass(frozen=True)
class ClientHalf:
    """What a worker builds its client algorithm from when ``[algorithm]`` names the pair: the
    pair's ``package.module:Name`` and options (``models/algorithm.py:build_algorithm``)."""

    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)


def build_pair(spec: Any, options: Mapping[str, Any]) -> Any:
    """The object ``algorithm.kind`` names (or the class or object handed to ``raysim.api.run``),
    checked to define ``client(self)`` and ``server(self)`` before its class is called with
    ``algorithm.options`` (``inputs.build_user_object``); UserCodeError names the key and the fix."""
    return build_user_object(spec, options, what="algorithm.kind", choices=[], methods=PAIR_METHODS,
                             options_key="algorithm.options")


def half_of(pair: Any, name: Literal["client", "server"]) -> Any:
    """What the pair's ``client()`` or ``server()`` returns; a failure in it is the scenario's,
    named in one line (UserCodeError). The caller checks the half against its own protocol."""
    try:
        half = getattr(pair, name)()
    except Exception as exc:  # user code: any failure is the scenario's, in one line
        raise UserCodeError(f"algorithm.kind {pair_name(pair)}: its {name}() failed "
                            f"({type(exc).__name__}: {exc})") from exc
    if half is None:
        raise UserCodeError(f"algorithm.kind {pair_name(pair)}: its {name}() returned None, not the {name} half")
    return half


def pair_name(pair: Any) -> str:
    cls = pair if isinstance(pair, type) else type(pair)
    return f"'{cls.__module__}:{cls.__qualname__}'"
