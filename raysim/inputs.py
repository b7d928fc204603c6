"""Checks on what a user hands any floor: finite numbers, paths, and code named as
``package.module:Name`` (models, weightings), each refused with a :class:`ConfigError` that names
the scenario key.

It sits at the bottom, beside ``seeding``, because the floors that validate their own settings
(device profiles, models by name) must not reach up to the scenario loader for it.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import re
import sys
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Mapping

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


# Where a scenario may not name code: Python's own library (``os:system``, ``shutil:rmtree``,
# ``subprocess:Popen``, ``runpy:run_path``; ``this`` prints on import) holds nothing written for
# raysim's protocols, and ``__main__`` is whatever script is running, not the one that wrote the file.
_REFUSED_MODULES = frozenset(sys.stdlib_module_names) | {"__main__"}
_SPEC = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")

# Set while a scenario is read as data (a received folder resumed without --trust-code): then no
# name it holds is imported, whatever key it sits under.
_IMPORTS_REFUSED: ContextVar[str | None] = ContextVar("raysim_imports_refused", default=None)


@contextlib.contextmanager
def importing_nothing(reason: str) -> Iterator[None]:
    """Within the block every :func:`import_object` refuses (ConfigError ending with ``reason``),
    so a scenario can be parsed and checked as data without running any module it names."""
    token = _IMPORTS_REFUSED.set(reason)
    try:
        yield
    finally:
        _IMPORTS_REFUSED.reset(token)


def import_object(spec: str, *, what: str, choices: list[str]) -> Any:
    """The one gate every ``package.module:Name`` a scenario names passes (models, data functions,
    tasks, client algorithms, strategies, policies, weightings, Flower apps); errors (ConfigError)
    name the scenario field and the fix.

    Refused before anything is imported: a malformed name, a module of Python's standard library
    or ``__main__``, and any name at all inside :func:`importing_nothing`. Refused after the import
    and before anything is called: an object defined in the standard library (re-exported by the
    user's module) and a callable that is not Python code (a builtin, a ufunc, a ``partial``).
    Importing runs the module's top-level code (unavoidable, and why a scenario naming user code
    is trusted code); nothing imported is called here (see :func:`check_call` for the call).
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError(f"{what} '{spec}' is unknown: use one of {choices} or 'package.module:Name'")
    refused = _IMPORTS_REFUSED.get()
    if refused is not None:
        raise ConfigError(f"{what} = {spec!r} names code to import, and {refused}")
    if not _SPEC.fullmatch(spec):
        raise ConfigError(f"{what} = {spec[:120]!r} is not of the form 'package.module:Name' (Python names "
                          "separated by dots, one colon)")
    module_name, _, attr = spec.partition(":")
    _refuse_module(module_name, spec, what=what, imported=False)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module's own code raised on import
        raise ConfigError(f"{what} '{spec}': cannot import module '{module_name}' ({type(exc).__name__}: {exc})") from exc
    try:
        obj = getattr(module, attr)
    except AttributeError as exc:
        raise ConfigError(f"{what} '{spec}': module '{module_name}' has no attribute '{attr}'") from exc
    _refuse_foreign(obj, spec, what=what)
    return obj


def parameter_names(function: Any) -> tuple[str, ...]:
    """A Python function's named parameters (positional, then keyword-only), read from its code
    object, which a decorator's ``__wrapped__`` or a ``__signature__`` cannot disguise; () for
    anything that is not a Python function."""
    code = getattr(function, "__code__", None) if inspect.isfunction(function) else None
    return code.co_varnames[:code.co_argcount + code.co_kwonlyargcount] if code is not None else ()


def _refuse_module(module_name: str, spec: str, *, what: str, imported: bool) -> None:
    top = module_name.partition(".")[0]
    if top not in _REFUSED_MODULES:
        return
    where = "defined in" if imported else "in"
    if top == "__main__":
        place, fix = "__main__", "a script or notebook cannot be imported by name: move it to a module on the path"
    else:
        place, fix = "Python's standard library", "name code written for this key, in your own package"
    raise ConfigError(f"{what} = {spec!r} is {where} {place} ({module_name}): {fix}; "
                      f"nothing was {'called' if imported else 'imported'}")


def _refuse_foreign(obj: Any, spec: str, *, what: str) -> None:
    """Refuses what a user's module merely re-exports from the standard library, and callables
    that are not Python code, whose parameters cannot be read before the call."""
    if not callable(obj):
        return  # data (a number, a table): its key refuses it for what it is, and nothing calls it
    own_code = inspect.isfunction(obj) or isinstance(obj, type)
    defined_in = getattr(obj, "__module__", None) if own_code else type(obj).__module__
    _refuse_module(defined_in or "builtins", spec, what=what, imported=True)
    if not (own_code or inspect.isfunction(getattr(type(obj), "__call__", None))):
        raise ConfigError(f"{what} = {spec!r} is {_kind(obj)}, a callable that is not Python code: name a function or "
                          "class written for this key; nothing was called")


def named_code(table: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Every value of a scenario's raw TOML table that names code (``package.module:Name``), by its
    dotted key, found without importing or building anything: what the trust decision on a
    received scenario is taken on. It looks at every key, so no new key can slip past it."""
    found: dict[str, str] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            found.update(named_code(value, f"{dotted}."))
        elif isinstance(value, list):
            found.update(named_code({f"{key}[{i}]": v for i, v in enumerate(value)}, prefix))
        elif isinstance(value, str) and _SPEC.fullmatch(value):
            found[dotted] = value
    return found


# A class's name as ``raysim.api.run`` records an object handed to it: module, then qualified name,
# which is ``Outer.<locals>.Name`` for a class written inside a function
_RECORDED = re.compile(r"[A-Za-z_][\w.]*:[\w.<>]+")


def script_code(table: Mapping[str, Any], handed: Collection[str] = ()) -> dict[str, str]:
    """The code names of a scenario's table (keys but those in ``handed``) that no later run can
    import: classes a script or notebook defined (``__main__:Name``, as the run folder of an
    object handed to ``raysim.api.run`` from one names it) or a function body (``<locals>``)."""
    found: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            found.update({f"{key}.{k}": v for k, v in script_code(value).items()})
        elif (isinstance(value, str) and _RECORDED.fullmatch(value)
              and (value.partition(".")[0].partition(":")[0] == "__main__" or "<locals>" in value)):
            found[key] = value
    return {key: spec for key, spec in found.items() if key not in handed}


def refuse_script_code(table: Mapping[str, Any], *, handed: Collection[str] = (), where: str) -> None:
    """ConfigError, before anything is imported or started, when ``table`` names a class that no
    later run can import (:func:`script_code`); the message says how to make it importable."""
    found = script_code(table, handed)
    if found:
        key, spec = next(iter(found.items()))
        name = spec.rpartition(".")[2].rpartition(":")[2]
        raise ConfigError(f"{where}: {key} = {spec!r} is a class defined in a script, a notebook or a function "
                          "body, which cannot be imported by name; to make the run resumable, put the class in a "
                          f"module on the path (e.g. mypackage/mine.py) and hand it in from there, or name it "
                          f"'mypackage.mine:{name}' in the scenario; nothing was started")


def check_call(target: Any, given: Collection[str], *, what: str) -> None:
    """Checks, before ``target`` is called with keyword arguments named ``given``, that it is
    Python code taking each of them and needing no other: a function's parameters, or a class's
    ``__init__`` (read from the code objects, which decorators cannot disguise). ConfigError
    naming ``what`` otherwise; nothing is called."""
    function = target.__init__ if isinstance(target, type) else target
    if isinstance(target, type) and function is object.__init__:
        takes, required, any_keyword = (), (), False
    elif inspect.isfunction(function):
        code = function.__code__
        if code.co_posonlyargcount:
            raise ConfigError(f"{what} takes positional-only parameters: it is not written to be called with "
                              "named options; nothing was called")
        positional = code.co_varnames[:code.co_argcount]
        keyword_only = code.co_varnames[code.co_argcount:code.co_argcount + code.co_kwonlyargcount]
        required = (*positional[:len(positional) - len(function.__defaults__ or ())],
                    *(name for name in keyword_only if name not in (function.__kwdefaults__ or {})))
        if isinstance(target, type):  # the constructor's self is not an option
            positional, required = positional[1:], required[1:]
        takes, any_keyword = (*positional, *keyword_only), bool(code.co_flags & inspect.CO_VARKEYWORDS)
        _refuse_module(function.__module__ or "builtins", getattr(function, "__qualname__", "?"),
                       what=f"{what}: its constructor", imported=True)
    else:
        raise ConfigError(f"{what} is {_kind(target)}, whose parameters cannot be read before the call: name a "
                          "Python function or class; nothing was called")
    unknown = sorted(set(given) - set(takes)) if not any_keyword else []
    missing = [name for name in required if name not in given]
    if unknown or missing:
        raise ConfigError(f"{what} takes ({', '.join(takes)}{', **' if any_keyword else ''}): "
                          + (f"it has no parameter {unknown}" if unknown else f"{missing} would be missing")
                          + "; the options must name its parameters; nothing was called")


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
    takes = parameter_names(obj)
    variadic = code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS)
    if variadic or code.co_kwonlyargcount or takes != parameters:
        shown = f"({', '.join(takes)}{', ...' if variadic else ''})"
        raise ConfigError(f"{what} '{spec}' takes {shown}, not exactly ({', '.join(parameters)}): it is not "
                          f"written for {what}; nothing was called")
    return obj


Signature = tuple[str, ...]  # a method's parameter names, ``self`` first


def check_method(cls: type, name: str, parameters: Signature | list[Signature], *, what: str) -> None:
    """Checks that class ``cls`` defines ``name`` as a Python function taking exactly
    ``parameters`` (``self`` first), or one of a list of them (a strategy's ``init`` may take the
    run's facts), read from its code object; UserCodeError naming ``what``."""
    accepted = parameters if isinstance(parameters, list) else [parameters]
    method = getattr(cls, name, None)
    if not inspect.isfunction(method):
        wanted = " or ".join(f"{name}{_shown(p)}" for p in accepted)
        raise UserCodeError(f"{what} has no method {wanted}: it is not written for this key "
                            "(see docs/architecture.md, 'Write your own')")
    code = method.__code__
    takes = parameter_names(method)
    variadic = code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS)
    if variadic or code.co_kwonlyargcount or takes not in accepted:
        raise UserCodeError(f"{what}: its {name} takes {_shown(takes)}, not {' or '.join(map(_shown, accepted))}")


def build_user_object(spec: Any, options: Mapping[str, Any], *, what: str, choices: list[str],
                      methods: Mapping[str, Signature | list[Signature]],
                      optional: Mapping[str, Signature] | None = None, options_key: str = "") -> Any:
    """The user object key ``what`` (``client.algorithm``, ``server.strategy``) stands for:
    ``spec`` names its class as ``package.module:Name``, or is the class or the object itself
    (handed to ``raysim.api.run``). The class must define each of ``methods`` taking exactly the
    parameters given, or one of a list of them (and each of ``optional`` it has); then a class is called with ``options``
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
        check_call(obj, options, what=f"{label} (built with {options_key})")
    except ConfigError as exc:
        raise UserCodeError(str(exc)) from exc
    try:
        return obj(**options)
    except Exception as exc:  # user code: any failure is the scenario's, in one line
        raise UserCodeError(f"{label} could not be built with {options_key} = {dict(options)} "
                            f"({type(exc).__name__}: {exc})") from exc


def _shown(names: tuple[str, ...]) -> str:
    return f"({', '.join(names)})"


def _kind(obj: Any) -> str:
    return f"the class {obj.__name__}" if isinstance(obj, type) else f"a {type(obj).__name__}"
