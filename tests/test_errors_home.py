"""Every error a user can see lives in resumable.errors and is a
ResumableError; the public events are in resumable.events, and no event is
named like an error."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
from types import ModuleType

import resumable
import resumable.events
import resumable.testing
from resumable import errors
from resumable.runtime import events as runtime_events

# Exception classes that live elsewhere, each for a reason:
ELSEWHERE = {
    # A simulated SIGKILL for tests: a BaseException, so that user code's
    # `except Exception` cannot swallow it; resumable.testing's own.
    "resumable.runtime.faults.SimulatedCrash",
    # Internal: the runtime turns it into CheckpointError, naming the loop
    # and variable the codec does not know.
    "resumable.stores.codec.UnserializableValue",
    # Internal: the loop turns it into UnsupportedBytecode.
    "resumable.runtime.opcodes.Unmodelled",
    # The CLI's own: printed as one line with an exit code, never raised to code.
    "resumable._cli.exitcodes.CommandError",
}


def _modules() -> list[ModuleType]:
    names = [
        info.name
        for info in pkgutil.walk_packages(resumable.__path__, "resumable.")
        if not info.name.startswith(("resumable.runtime.", "resumable.stores."))
    ]
    names += [
        f"resumable.runtime.{m.name}" for m in pkgutil.iter_modules(resumable.runtime.__path__)
    ]
    names += [f"resumable.stores.{m.name}" for m in pkgutil.iter_modules(resumable.stores.__path__)]
    return [importlib.import_module(name) for name in sorted(set(names))]


def _exception_classes(module: ModuleType) -> list[type[BaseException]]:
    return [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == module.__name__
    ]


class TestErrorsModule:
    """resumable.errors is the one home of the errors users see."""

    def test_public_exceptions_are_resumable_errors_defined_there(self):
        for module in (resumable, resumable.testing, resumable.events):
            for name in module.__all__:
                value = getattr(module, name)
                if not (inspect.isclass(value) and issubclass(value, BaseException)):
                    continue
                where = f"{value.__module__}.{value.__qualname__}"
                if where in ELSEWHERE:
                    continue
                assert value.__module__ == "resumable.errors", f"{module.__name__}.{name}: {where}"
                assert issubclass(value, errors.ResumableError), where

    def test_no_public_exception_class_is_defined_elsewhere(self):
        """A new exception class outside errors.py is private (_Name) or listed above."""
        stray = [
            f"{cls.__module__}.{cls.__qualname__}"
            for module in _modules()
            if module is not errors
            for cls in _exception_classes(module)
            if not cls.__name__.startswith("_")
        ]
        assert sorted(stray) == sorted(ELSEWHERE)

    def test_errors_all_lists_every_error(self):
        public = [cls.__name__ for cls in _exception_classes(errors) if cls.__name__[0] != "_"]
        assert sorted(public) == errors.__all__

    def test_errors_is_a_leaf(self):
        source = inspect.getsource(errors)
        assert "from resumable" not in source and "import resumable" not in source

    def test_loop_shape_error_is_a_resumable_error(self):
        assert issubclass(resumable.LoopShapeError, resumable.ResumableError)

    def test_replayed_failure_pickles_and_still_loads_by_its_old_name(self):
        failure = resumable.ReplayedFailure("mymod.Weird", "it broke")
        copy = pickle.loads(pickle.dumps(failure))
        assert isinstance(copy, resumable.ResumableError)
        assert (copy.type_name, copy.message) == ("mymod.Weird", "it broke")
        assert str(copy) == "mymod.Weird: it broke (recorded; the original could not be pickled)"
        # Records written before the move pickled it under resumable.runtime.records.
        old = pickle.dumps(failure, protocol=0)  # protocol 0 names the class as plain text
        old = old.replace(b"resumable.errors", b"resumable.runtime.records")
        assert type(pickle.loads(old)) is resumable.ReplayedFailure


class TestEventsModule:
    """resumable.events exports every event class and subscribe."""

    def test_every_event_class_is_public(self):
        defined = {
            name
            for name, value in vars(runtime_events).items()
            if inspect.isclass(value)
            and issubclass(value, runtime_events.Event)
            and not name.startswith("_")
        }
        exported = set(resumable.events.__all__) - {"subscribe"}
        assert exported == defined
        for name in exported:
            assert getattr(resumable.events, name) is getattr(runtime_events, name)
        assert resumable.events.subscribe is resumable.subscribe

    def test_no_event_is_named_like_an_error(self):
        assert not set(resumable.events.__all__) & set(errors.__all__)

    def test_the_cancel_event_is_logged_as_before(self):
        assert resumable.events.ExecutionStopped.name == "execution cancelled"
