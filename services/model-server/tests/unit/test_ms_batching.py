"""The micro-batcher: concurrent requests share one call, each gets its own results back, an
error stays with the request that caused it, and a cancelled request breaks nothing."""

import asyncio
import threading

import pytest

from model_server.service_layer.batching import MicroBatcher


class Model:
    """A blocking 'model': one result per text (the text shouted), every call recorded; a text
    holding "bad" makes the whole call fail, as a forward pass fails for the whole batch."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, texts: list[str]) -> list[str]:
        self.calls.append(list(texts))
        self.entered.set()
        if not self.release.wait(10):
            raise TimeoutError("never released")
        if any("bad" in t for t in texts):
            raise ValueError("bad input")
        return [t.upper() for t in texts]


async def test_concurrent_requests_share_one_call_and_get_their_own_results() -> None:
    model = Model()
    batcher = MicroBatcher(model, max_texts=64)
    requests = [[f"r{i}-a", f"r{i}-b"] if i % 2 else [f"r{i}"] for i in range(10)]
    answers = await asyncio.gather(*(batcher.submit(texts) for texts in requests))
    assert answers == [[t.upper() for t in texts] for texts in requests]
    assert model.calls == [[t for texts in requests for t in texts]]
    assert batcher.calls == 1


async def test_a_call_holds_at_most_max_texts_unless_one_request_is_larger() -> None:
    model = Model()
    batcher = MicroBatcher(model, max_texts=5)
    requests = [["a", "b", "c"], ["d", "e"], ["f"], ["g", "h", "i", "j", "k", "l", "m"], ["n"]]
    answers = await asyncio.gather(*(batcher.submit(texts) for texts in requests))
    assert answers == [[t.upper() for t in texts] for texts in requests]
    assert model.calls == [
        ["a", "b", "c", "d", "e"],
        ["f"],
        ["g", "h", "i", "j", "k", "l", "m"],
        ["n"],
    ]


async def test_requests_arriving_during_a_call_are_coalesced_into_the_next() -> None:
    model = Model()
    model.release.clear()
    batcher = MicroBatcher(model, max_texts=64)
    first = asyncio.create_task(batcher.submit(["first"]))
    assert await asyncio.to_thread(model.entered.wait, 10)
    later = [asyncio.create_task(batcher.submit([f"later{i}"])) for i in range(4)]
    await asyncio.sleep(0)
    model.release.set()
    assert await first == ["FIRST"]
    assert [await t for t in later] == [[f"LATER{i}"] for i in range(4)]
    assert model.calls == [["first"], [f"later{i}" for i in range(4)]]


async def test_an_error_stays_with_the_request_that_caused_it() -> None:
    model = Model()
    batcher = MicroBatcher(model, max_texts=64)
    results = await asyncio.gather(
        batcher.submit(["one"]),
        batcher.submit(["a bad one", "fine"]),
        batcher.submit(["two", "three"]),
        return_exceptions=True,
    )
    assert results[0] == ["ONE"]
    assert isinstance(results[1], ValueError)
    assert results[2] == ["TWO", "THREE"]
    # The shared call failed; each request was then run on its own.
    assert model.calls[0] == ["one", "a bad one", "fine", "two", "three"]
    assert sorted(map(tuple, model.calls[1:])) == [
        ("a bad one", "fine"),
        ("one",),
        ("two", "three"),
    ]
    assert await batcher.submit(["after"]) == ["AFTER"]


async def test_a_wrong_number_of_results_is_an_error_not_a_shifted_answer() -> None:
    batcher = MicroBatcher(lambda texts: texts[:-1], max_texts=64)
    with pytest.raises(RuntimeError, match="results for"):
        await batcher.submit(["x", "y"])


async def test_a_request_cancelled_while_waiting_is_left_out_of_the_call() -> None:
    model = Model()
    model.release.clear()
    batcher = MicroBatcher(model, max_texts=64)
    first = asyncio.create_task(batcher.submit(["first"]))
    assert await asyncio.to_thread(model.entered.wait, 10)
    gone = asyncio.create_task(batcher.submit(["gone"]))
    kept = asyncio.create_task(batcher.submit(["kept"]))
    await asyncio.sleep(0)
    gone.cancel()
    model.release.set()
    assert await first == ["FIRST"]
    assert await kept == ["KEPT"]
    assert gone.cancelled()
    assert model.calls == [["first"], ["kept"]]


async def test_a_request_cancelled_during_the_call_leaves_the_others_intact() -> None:
    model = Model()
    model.release.clear()
    batcher = MicroBatcher(model, max_texts=64)
    tasks = [asyncio.create_task(batcher.submit([f"t{i}"])) for i in range(3)]
    assert await asyncio.to_thread(model.entered.wait, 10)
    tasks[1].cancel()
    model.release.set()
    assert await tasks[0] == ["T0"]
    assert await tasks[2] == ["T2"]
    assert tasks[1].cancelled()
    assert model.calls == [["t0", "t1", "t2"]]
    assert await batcher.submit(["next"]) == ["NEXT"]


async def test_close_fails_the_waiting_requests_instead_of_leaving_them_hanging() -> None:
    model = Model()
    model.release.clear()
    batcher = MicroBatcher(model, max_texts=1)
    running = asyncio.create_task(batcher.submit(["running"]))
    assert await asyncio.to_thread(model.entered.wait, 10)
    waiting = asyncio.create_task(batcher.submit(["waiting"]))
    await asyncio.sleep(0)
    await batcher.close()
    model.release.set()
    for task in (running, waiting):
        with pytest.raises(RuntimeError, match="unloaded"):
            await task
