"""The messages between the suite and a worker process, and errors carried across.

Messages are pickled over a socket pair (:mod:`multiprocessing.connection`):

- a request is ``(request id, lane, operation, arguments)``; the lane says which
  of the worker's threads runs it (:data:`MAIN_LANE`: its main thread);
- a reply is ``(request id, True, result)`` or ``(request id, False, RaisedError)``;
- the worker's first message is :data:`HELLO`, once it can take requests.

An exception the plugin raised travels as a :class:`RaisedError` and is raised
again here as its own type when that type is Python's or Ketch's (so that
``except InvalidInputError`` works), else as a stand-in with the same name, the
same Ketch or Python base (a plugin's error deriving from ``InvalidInputError``
stays one), the same message, and the worker's traceback as a note. The suite
never imports the plugin's framework to rebuild an error.
"""

from __future__ import annotations

import builtins
import importlib
import pickle
import traceback
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "HELLO",
    "MAIN_LANE",
    "RaisedError",
    "RaisedInWorker",
    "Reply",
    "Request",
    "decode_error",
    "encode_error",
]

MAIN_LANE: Final = 0
HELLO: Final = "ketch-conformance-worker ready"
Request = tuple[int, int, str, tuple[Any, ...]]
Reply = tuple[int, bool, Any]
_TRUSTED_MODULES: Final = ("builtins", "ketch", "ketch_conformance")


@dataclass(frozen=True)
class RaisedError:
    """An exception raised in a worker, as data.

    :param classes: ``(module, qualified name)`` of the exception's type and its bases, in
        method resolution order.
    :param message: ``str()`` of the exception.
    :param pickled: the exception pickled, when it could be.
    :param attributes: its ``__dict__`` pickled, when it could be.
    :param traceback: the worker's traceback, as text.
    """

    classes: tuple[tuple[str, str], ...]
    message: str
    pickled: bytes | None
    attributes: bytes | None
    traceback: str


class RaisedInWorker(Exception):
    """The base of stand-ins for exception types that the suite does not import."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _pickled(value: object) -> bytes | None:
    try:
        return pickle.dumps(value)
    except Exception:
        return None


def encode_error(error: BaseException) -> RaisedError:
    """``error`` as data that any process can read."""
    try:
        message = str(error)
    except Exception:
        message = f"<{type(error).__name__} whose message cannot be shown>"
    return RaisedError(
        classes=tuple((kind.__module__, kind.__qualname__) for kind in type(error).__mro__),
        message=message,
        pickled=_pickled(error),
        attributes=_pickled(getattr(error, "__dict__", {})),
        traceback="".join(traceback.format_exception(error)),
    )


def _trusted(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in _TRUSTED_MODULES)


def _class(module: str, name: str) -> type[Exception] | None:
    """The exception class, when it lives in a module the suite may import; else None.

    Only subclasses of Exception: a plugin's SystemExit or KeyboardInterrupt comes back
    as a stand-in, so that it fails a check instead of ending the run.
    """
    if not _trusted(module) or "." in name:
        return None
    try:
        found = getattr(builtins if module == "builtins" else importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    return found if isinstance(found, type) and issubclass(found, Exception) else None


def _rebuilt(kind: type[BaseException], raised: RaisedError) -> BaseException | None:
    """The exception as its own type, or None when it cannot be made faithfully."""
    if raised.pickled is not None:
        try:
            error = pickle.loads(raised.pickled)
        except Exception:
            error = None
        if type(error) is kind and str(error) == raised.message:
            assert isinstance(error, BaseException)
            return error
    try:
        error = kind.__new__(kind)
        BaseException.__init__(error, raised.message)
        if raised.attributes is not None:
            error.__dict__.update(pickle.loads(raised.attributes))
    except Exception:
        return None
    return error if str(error) == raised.message else None


_STAND_INS: dict[tuple[tuple[str, str], ...], type[BaseException]] = {}


def _stand_in(raised: RaisedError) -> type[BaseException]:
    """A class named as the original, deriving from its first base the suite can import."""
    if raised.classes in _STAND_INS:
        return _STAND_INS[raised.classes]
    module, name = raised.classes[0]
    base = next(
        (found for found in (_class(*pair) for pair in raised.classes[1:]) if found is not None),
        Exception,
    )
    namespace = {"__module__": module, "__qualname__": name}
    try:
        kind = type(name.rpartition(".")[2], (RaisedInWorker, base), namespace)
    except TypeError:
        kind = type(name.rpartition(".")[2], (RaisedInWorker,), namespace)
    _STAND_INS[raised.classes] = kind
    return kind


def decode_error(raised: RaisedError) -> BaseException:
    """The exception to raise here for one raised in the worker, with its traceback as a note."""
    kind = _class(*raised.classes[0])
    error = _rebuilt(kind, raised) if kind is not None else None
    if error is None:
        stand_in = _stand_in(raised)
        error = stand_in.__new__(stand_in)
        BaseException.__init__(error, raised.message)
    error.add_note("raised in the worker process that runs the hooks:\n" + raised.traceback)
    return error
