"""The error tree decides: every error below the root names its outcome, pickles, and is drawn.

The drawing in ``dispatcher.errors``' docstring is checked line by line against the classes, so
a class added, moved or given another outcome without its line fails here.
"""

from __future__ import annotations

import inspect
import pickle
import re

import pytest

from dispatcher import errors
from dispatcher.errors import DispatcherError, InputError, VendorError
from dispatcher.vendors.base import Outcome

#: one line of the drawing: the branch marks, the class name, then what it means
DRAWN = re.compile(r"^(?P<indent>[ │├└─]*)(?P<name>[A-Z]\w+)(?:\s+(?P<meaning>\S.*))?$")


def tree() -> list[type[DispatcherError]]:
    """Every class of the tree defined in ``dispatcher.errors``, the root first."""
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, DispatcherError) and cls.__module__ == errors.__name__
    ]


def drawing() -> list[tuple[int, str, str]]:
    """(depth, class name, meaning) for each line of the docstring's drawing."""
    lines = []
    for line in (errors.__doc__ or "").splitlines():
        if not line.startswith("    ") or not line.strip():
            continue
        match = DRAWN.match(line[4:])
        assert match, f"not a line of the drawing: {line!r}"
        lines.append((len(match["indent"]) // 4, match["name"], match["meaning"] or ""))
    return lines


def sample(cls: type[DispatcherError]) -> DispatcherError:
    if issubclass(cls, VendorError):
        return cls("the vendor said no", "E42", 7.5)
    return cls("phone '+57' is too short")


def test_the_tree_is_rooted_and_every_class_below_the_root_has_an_outcome_the_sender_knows() -> None:
    classes = tree()
    assert len(classes) > 10
    # An error never means the vendor took the message.
    vocabulary = {o.value for o in Outcome} - {Outcome.ACCEPTED.value}
    for cls in classes:
        if cls is DispatcherError:
            assert not hasattr(cls, "outcome"), "the root decides nothing"
            continue
        assert getattr(cls, "outcome", None) in vocabulary, cls.__name__


@pytest.mark.parametrize("cls", [c for c in tree() if c is not DispatcherError], ids=lambda c: c.__name__)
def test_every_error_pickles_with_its_reason_and_outcome(cls: type[DispatcherError]) -> None:
    raised = sample(cls)
    back = pickle.loads(pickle.dumps(raised))  # noqa: S301 - our own bytes, as a result backend carries them
    assert type(back) is cls
    assert (str(back), back.args, back.outcome) == (str(raised), raised.args, raised.outcome)
    if isinstance(raised, VendorError):
        assert (back.reason, back.code, back.retry_after) == ("the vendor said no", "E42", 7.5)


def test_input_errors_are_value_errors_so_every_check_that_refuses_a_bad_value_refuses_them() -> None:
    assert issubclass(InputError, ValueError)
    assert all(issubclass(cls, ValueError) for cls in tree() if issubclass(cls, InputError))


def test_the_drawing_is_the_tree() -> None:
    drawn = drawing()
    # Each class is drawn once, and only classes that exist are drawn
    assert sorted(name for _, name, _ in drawn) == sorted(cls.__name__ for cls in tree())
    parents: list[str] = []
    for depth, name, meaning in drawn:
        cls = getattr(errors, name)
        parents = parents[:depth]
        # Under the class it inherits from
        assert [c.__name__ for c in cls.__bases__ if issubclass(c, DispatcherError)] == parents[-1:], name
        # Saying the outcome it carries
        if cls is not DispatcherError:
            assert meaning.startswith(f"{cls.outcome}: "), (
                f"{name} is drawn as {meaning!r}, its outcome is {cls.outcome}"
            )
        parents.append(name)
