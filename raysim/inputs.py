"""Checks on what a user hands any floor: finite numbers, paths, and code named as
``package.module:Name`` (models, weightings), each refused with a :class:`ConfigError` that names
the scenario key.

It sits at the bottom, beside ``seeding``, because the floors that validate their own settings
(device profiles, models by name) must not reach up to the scenario loader for it.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, Callable, Mapping

# No scenario quantity (seconds, megabits, rates, factors) comes near this; beyond it, sums and
# products of simulated times and sizes lose all precision or overflow to inf mid-run.
FLOAT_LIMIT = 1e12


class ConfigError(ValueError):
    """A scenario value is invalid; the message names the key and the allowed values."""


class UserCodeError(ConfigError):
    """User code a key names does not fit its protocol (a method missing or taking other
    parameters, a constructor that fails): the message names the key and the object."""


def is_file(name: str, value: str) -> bool:
    """Whether the path a scenario key gives is a regular file; ValueError naming ``name`` when the
    system refuses the text as a path (a name too long), which ``Path.is_file`` raises on."""
    try:
        return Path(value).expanduser().is_file()
    except OSError as exc:
        raise ValueError(f"{name} = {value[:80]!r} cannot be a path ({exc.strerror})") from exc


def at_least(name: str, value: float, minimum: float) -> None:
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def import_object(spec: str, *, what: str, choices: list[str]) -> Any:
    """Imports ``package.module:attr``; errors (ConfigError) name the scenario field and the fix.

    Importing runs the module's top-level code (unavoidable, and why a scenario naming user
    code is trusted code); nothing imported is called here.
    """
    if ":" not in spec:
        raise ConfigError(f"{what} '{spec}' is unknown: use one of {choices} or 'package.module:Name'")
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module's own code raised on import
        raise ConfigError(f"{what} '{spec}': cannot import module '{module_name}' ({type(exc).__name__}: {exc})") from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise ConfigError(f"{what} '{spec}': module '{module_name}' has no attribute '{attr}'") from exc


def import_class(spec: str, *, what: str, choices: list[str], base: type, base_name: str) -> type:
    """Imports a class and checks it subclasses ``base`` (named ``base_name`` in errors) before
    anything calls it.

    Without the check, ``model.name = "os:system"`` would run a shell command when the model is
    built, before its result could be refused.
    """
    obj = import_object(spec, what=what, choices=choices)
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise ConfigError(f"{what} '{spec}' is {_kind(obj)}, not a {base_name} subclass; nothing was called")
    return obj


def import_function(spec: str, *, what: str, choices: list[str], parameters: tuple[str, ...]) -> Callable:
    """Imports a function written in Python (``def``) that takes exactly ``parameters``, by those
    names, refusing anything else before it is called.

    A builtin (``os:remove``), a class (whose call runs its constructor) or a library function
    that merely accepts as many arguments (``shutil:chown(path, user)`` would change the owner
    of file descriptor 0; ``ctypes:string_at(ptr, size)`` reads raw memory) is not code written
    for this call. The parameters are read from the function's code object, which a decorator's
    ``__wrapped__`` or a ``__signature__`` attribute cannot disguise.
    """
    obj = import_object(spec, what=what, choices=choices)
    if not inspect.isfunction(obj):
        raise ConfigError(f"{what} '{spec}' is {_kind(obj)}, not a plain Python function; nothing was called")
    code = obj.__code__
    takes = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
    variadic = code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS)
    if variadic or code.co_kwonlyargcount or takes != parameters:
        shown = f"({', '.join(takes)}{', ...' if variadic else ''})"
        raise ConfigError(f"{what} '{spec}' takes {shown}, not exactly ({', '.join(parameters)}): it is not "
                          f"written for {what}; nothing was called")
    return obj


def check_method(cls: type, name: str, parameters: tuple[str, ...], *, what: str) -> None:
    """Checks that class ``cls`` defines ``name`` as a Python function taking exactly
    ``parameters`` (``self`` first), read from its code object; ConfigError naming ``what``."""
    method = getattr(cls, name, None)
    if not inspect.isfunction(method):
        raise UserCodeError(f"{what} has no method {name}{_shown(parameters)}: it is not written for this key "
                          "(see docs/architecture.md, 'Write your own')")
    code = method.__code__
    takes = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
    variadic = code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS)
    if variadic or code.co_kwonlyargcount or takes != parameters:
        raise UserCodeError(f"{what}: its {name} takes {_shown(takes)}, not {_shown(parameters)}")


def build_user_object(spec: Any, options: Mapping[str, Any], *, what: str, choices: list[str],
                      methods: Mapping[str, tuple[str, ...]],
                      optional: Mapping[str, tuple[str, ...]] | None = None, options_key: str = "") -> Any:
    """The user object key ``what`` (``client.algorithm``, ``server.strategy``) stands for:
    ``spec`` names its class as ``package.module:Name``, or is the class or the object itself
    (handed to ``raysim.api.run``). The class must define each of ``methods`` taking exactly the
    parameters given (and each of ``optional`` it has); then a class is called with ``options``
    (the key's ``_options``, or ``options_key``), an object is taken as it is. Nothing is called before the checks
    pass; UserCodeError names the key and the fix."""
    try:
        obj = import_object(spec, what=what, choices=choices) if isinstance(spec, str) else spec
    except ConfigError as exc:
        raise UserCodeError(str(exc)) from exc
    cls = obj if isinstance(obj, type) else type(obj)
    label = f"{what} '{spec if isinstance(spec, str) else cls.__qualname__}'"
    options_key = options_key or f"{what}_options"
    for name, parameters in methods.items():
        check_method(cls, name, parameters, what=label)
    for name, parameters in (optional or {}).items():
        if hasattr(cls, name):
            check_method(cls, name, parameters, what=label)
    if not isinstance(obj, type):
        if options:
            raise UserCodeError(f"{label} is an object already built: {options_key} cannot apply")
        return obj
    try:
        return obj(**options)
    except Exception as exc:  # user code: any failure is the scenario's, in one line
        raise UserCodeError(f"{label} could not be built with {options_key} = {dict(options)} "
                            f"({type(exc).__name__}: {exc})") from exc


def _shown(names: tuple[str, ...]) -> str:
    return f"({', '.join(names)})"


def _kind(obj: Any) -> str:
    return f"the class {obj.__name__}" if isinstance(obj, type) else f"a {type(obj).__name__}"
