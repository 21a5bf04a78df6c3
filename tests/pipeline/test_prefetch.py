"""read_ahead: a background thread produces an iterator's items ahead of the caller, in order; errors come
to the caller in the item's place; stopping early stops the thread."""

import threading
import time

import pytest

from mdn_snntorch.pipeline.prefetch import read_ahead


def read_ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "mdn-read-ahead"]


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_items_in_order_and_the_same_objects(depth):
    items = [object() for _ in range(20)]
    assert [id(x) for x in read_ahead(iter(items), depth)] == [id(x) for x in items]
    assert not read_ahead_threads()


def test_items_are_made_in_another_thread_up_to_depth_ahead():
    made: list[tuple[int, str]] = []

    def source():
        for i in range(10):
            made.append((i, threading.current_thread().name))
            yield i

    it = read_ahead(source(), 2)
    assert next(it) == 0
    time.sleep(0.3)  # the thread runs ahead while the caller holds item 0
    # item 0 taken, items 1 and 2 waiting in the hand-over, item 3 made and blocked on the full hand-over
    assert [i for i, _ in made] == [0, 1, 2, 3]
    assert {name for _, name in made} == {"mdn-read-ahead"}
    assert list(it) == list(range(1, 10))


def test_an_error_comes_after_the_items_before_it():
    def source():
        yield 1
        yield 2
        raise OSError("disk gone at item 3")

    it = read_ahead(source(), 4)
    assert next(it) == 1 and next(it) == 2
    with pytest.raises(OSError, match="disk gone at item 3"):
        next(it)
    assert not read_ahead_threads()


def test_stopping_early_stops_the_thread():
    def endless():
        i = 0
        while True:
            yield i
            i += 1

    it = read_ahead(endless(), 2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    assert len(read_ahead_threads()) == 1
    it.close()  # what a `break` out of a for loop does to the generator
    assert not read_ahead_threads()


@pytest.mark.parametrize("depth", [-1, 1.5, True, "2"])
def test_bad_depth(depth):
    with pytest.raises(ValueError, match="depth must be an int >= 0"):
        read_ahead(iter([1]), depth)
