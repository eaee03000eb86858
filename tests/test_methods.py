"""@resumable on methods: `obj.run(...)` binds `obj`, which is stored with the
arguments, so a fresh process rebuilds it and resumes the method.

Real stores (memory, SQLite, Redis) in process; the crash tests kill a real
subprocess with SIGKILL and resume in a fresh interpreter that never
imported the job's module.
"""

from __future__ import annotations

import pickle
import threading
import uuid
from pathlib import Path

import pytest
from jobs import methods
from jobs.methods import Base, Counter, Crawler, Rebuilt, Sub, WithClient, WithSocket
from support.crashing import count, kill_after_lines, loop_done, read_store, resume_fresh, start

from resumable import (
    BoundResumable,
    CheckpointError,
    Execution,
    ResumableFunction,
    _config,
    resumable,
    resume,
    status,
)
from resumable.runtime import references
from resumable.testing import SimulatedCrash, crash_after

DELAY = 0.004


@pytest.fixture(autouse=True)
def _fresh_runs() -> None:
    methods.RUNS.clear()


class TestBound:
    """`obj.method` has the function's interface, with `obj` bound."""

    async def test_call(self, store):
        crawler = Crawler("https://a.test/", step=2)
        result = await crawler.crawl.options(store=store)(3, "/dev/null", 0.0)
        pages = [f"https://a.test/{i}" for i in (0, 2, 4)]
        assert result == {"pages": pages, "base": "https://a.test/"}

    async def test_call_with_the_default_store(self, resumable_store):
        assert await Crawler("b/").fetch(7) == "b/7"
        [listed] = await resumable_store.list()
        assert (listed.function, listed.name) == ("jobs.methods:Crawler.fetch", "Crawler.fetch")

    async def test_start_returns_an_execution(self, store):
        run = await Crawler("c/").fetch.options(store=store).start(4)
        assert isinstance(run, Execution)
        assert await run.result() == "c/4"
        found = await status(run.id, store=store)
        assert found.status == "completed"
        assert found.function == "jobs.methods:Crawler.fetch"

    async def test_options_with_an_execution_id(self, store):
        crawler = Crawler("d/")
        fetch = crawler.fetch.options(execution_id="fetch-9", store=store)
        assert await fetch(9) == "d/9"
        assert await fetch(9) == "d/9"  # an idempotency key: stored result, nothing runs
        assert methods.RUNS == ["fetch:9"]
        assert await resume("fetch-9", store=store) == "d/9"

    async def test_bound_object_and_repr(self):
        crawler = Crawler("e/")
        bound = crawler.fetch
        assert isinstance(bound, BoundResumable)
        assert bound.__self__ is crawler
        assert bound.__func__ is vars(Crawler)["fetch"]
        assert "jobs.methods:Crawler.fetch" in repr(bound)

    async def test_through_the_class_it_is_the_function(self, store):
        assert isinstance(Crawler.fetch, ResumableFunction)
        assert await Crawler.fetch.options(store=store)(Crawler("f/"), 1) == "f/1"

    async def test_self_is_the_first_stored_argument(self, store):
        run = await Crawler("g/", step=3).fetch.options(store=store).start(2)
        await run.result()
        record = await store.get(run.id)
        stored_self = _arguments(store, record)[0][0]
        assert isinstance(stored_self, Crawler)
        assert (stored_self.base, stored_self.step) == ("g/", 3)

    async def test_inherited_method_keeps_the_subclass(self, store):
        run = await Sub("s").greet.options(store=store).start("!")
        assert await run.result() == "sub s!"
        assert (await status(run.id, store=store)).function == "jobs.methods:Base.greet"
        assert await Base("b").greet.options(store=store)("?") == "base b?"

    async def test_a_method_awaited_inside_an_execution_is_a_child(self, store):
        crawler = Crawler("j/", step=5)
        execution_id = uuid.uuid4().hex
        with crash_after(4), pytest.raises(SimulatedCrash):
            await crawler.fetch_all.options(execution_id=execution_id, store=store)(4)
        assert 0 < len(methods.RUNS) < 4  # died part-way
        assert await resume(execution_id, store=store) == ["j/0", "j/5", "j/10", "j/15"]
        # A completed child returns its stored result on replay: none ran twice.
        assert sorted(methods.RUNS) == ["fetch:0", "fetch:1", "fetch:2", "fetch:3"]
        kids = await store.list(parent_id=execution_id)
        assert {kid.function for kid in kids} == {"jobs.methods:Crawler.fetch"}
        assert sorted(kid.id for kid in kids) == [f"{execution_id}/0.{i}.0" for i in range(4)]

    async def test_nested_class(self, store):
        inner = Crawler.Inner()
        run = await inner.deep.options(store=store).start(21)
        assert await run.result() == 42
        assert (await status(run.id, store=store)).function == "jobs.methods:Crawler.Inner.deep"


def _arguments(store, record) -> tuple[tuple[object, ...], dict[str, object]]:
    codec = _config.codec_for(store)  # the store's key: signed by default on SQLite and Redis
    args, kwargs = codec.loads(record.args, execution_id=record.id, key="arguments")
    return tuple(args), dict(kwargs)


class TestResolve:
    """`resume` finds the method through the class's __dict__."""

    def test_reference_resolves_to_the_function_not_a_bound_object(self):
        found = references.resolve("jobs.methods:Crawler.fetch", "")
        assert found is vars(Crawler)["fetch"]
        assert (
            references.resolve("jobs.methods:Crawler.Inner.deep", "") is vars(Crawler.Inner)["deep"]
        )

    def test_a_staticmethod_is_unwrapped(self):
        found = references.resolve("jobs.methods:Crawler.normalize", "")
        assert isinstance(found, ResumableFunction)

    def test_an_inherited_name_is_found_on_the_base(self):
        assert references.resolve("jobs.methods:Sub.greet", "") is vars(Base)["greet"]

    async def test_resume_after_a_crash_rebuilds_self(self, store):
        counter = Counter()
        execution_id = uuid.uuid4().hex
        with crash_after(3), pytest.raises(SimulatedCrash):
            await counter.count.options(execution_id=execution_id, store=store)(6)
        assert methods.RUNS == ["count:0", "count:1", "count:2", "count:3"]
        methods.RUNS.clear()
        # The object changed in the loop is carried: it comes back as it was
        # at the last checkpoint, not as the caller's instance is now.
        assert await resume(execution_id, store=store) == (15, [0, 1, 2, 3, 4, 5])
        assert methods.RUNS == ["count:3", "count:4", "count:5"]


class TestUnpicklableSelf:
    """An object that cannot be stored is refused at start, before anything runs."""

    @pytest.mark.parametrize(
        ("make", "type_name"),
        [(WithSocket, "jobs.methods.WithSocket"), (WithClient, "jobs.methods.WithClient")],
        ids=["socket", "httpx-client"],
    )
    async def test_checkpoint_error_names_class_reason_and_fix(self, store, make, type_name):
        obj = make()
        try:
            with pytest.raises(CheckpointError) as caught:
                await obj.run.options(store=store)(1)
        finally:
            closer = getattr(getattr(obj, "client", None), "aclose", None)
            if closer is not None:
                await closer()
            if hasattr(obj, "conn"):
                obj.conn.close()
        error = caught.value
        assert (error.variable, error.type_name) == ("self", type_name)
        assert "pickle" in error.reason
        message = str(error)
        assert f"(type {type_name}) at the start of {make.__name__}.run" in message
        assert "Nothing was started" in message
        assert "module-level @resumable function" in message
        assert "__getstate__" in message
        assert await store.list() == []  # nothing was created

    async def test_other_arguments_are_named(self, store):
        with pytest.raises(CheckpointError) as caught:
            await Crawler("h/").fetch.options(store=store)(lambda_lock())
        assert caught.value.variable == "page"
        assert caught.value.type_name == "_thread.lock"
        assert "create clients, connections and files inside" in str(caught.value)

    async def test_getstate_makes_it_storable(self, store):
        obj = Rebuilt("db.internal")
        try:
            run = await obj.run.options(store=store).start(2)
            assert await run.result() == "db.internal:2:socket"
        finally:
            obj.close()

    def test_pickles_with_its_hint(self):
        error = CheckpointError("the start of X.run", "self", "m.X", "no", "do this")
        again = pickle.loads(pickle.dumps(error))
        assert (again.variable, again.hint, str(again)) == ("self", "do this", str(error))


def lambda_lock() -> object:
    return threading.Lock()


class TestStaticAndClassMethods:
    """@staticmethod above @resumable works like a function; class methods
    are refused with a message that says what to write instead."""

    async def test_staticmethod_above_works_like_a_function(self, store):
        assert await Crawler.normalize.options(store=store)("x.test") == "x.test/"
        assert await Crawler("i/").normalize.options(store=store)("y.test//") == "y.test/"
        run = await Crawler.normalize.options(store=store).start("z.test")
        await run.result()
        assert (await status(run.id, store=store)).function == "jobs.methods:Crawler.normalize"
        assert await resume(run.id, store=store) == "z.test/"

    def test_resumable_above_staticmethod_is_refused(self):
        with pytest.raises(TypeError, match="write @staticmethod above @resumable"):

            class Bad:
                @resumable
                @staticmethod
                async def run(x: int) -> int:
                    return x

    def test_resumable_above_classmethod_is_refused(self):
        with pytest.raises(TypeError, match="does not support class methods"):

            class Bad:
                @resumable
                @classmethod
                async def run(cls, x: int) -> int:
                    return x

    async def test_classmethod_above_is_refused_on_every_use(self, store):
        bad = methods.ClassMethodAbove
        for use in (
            lambda: bad.run(1),
            lambda: bad.run.start(1),
            lambda: bad.run.options(store=store)(1),
            lambda: bad().run(1),
        ):
            with pytest.raises(TypeError, match="does not support class methods"):
                await use()
        assert await store.list() == []


class TestKillAndResume:
    """SIGKILL during a method's loop; a fresh process rebuilds `self` and resumes."""

    @pytest.mark.parametrize(("lines", "extra"), [(2, 0.001), (7, 0.0025), (15, 0)])
    def test_method_resumes_in_a_fresh_process(
        self, tmp_path: Path, store_url: str, lines: int, extra: float
    ):
        n = 20
        log = tmp_path / "effects.log"
        execution_id = uuid.uuid4().hex
        child = start(store_url, execution_id, "methods.crawl", n, log, DELAY)
        killed = kill_after_lines(child, log, lines, extra)
        done = loop_done(store_url, execution_id) if killed else 0
        assert resume_fresh(store_url, execution_id) == methods.expected_crawl(n)
        effects = count(log)
        assert set(effects) == {f"crawl:{i}" for i in range(n)}
        for i in range(done):
            assert effects[f"crawl:{i}"] == 1, f"crawl:{i} was checkpointed but ran again"
        assert sum(effects.values()) - n <= 1  # only the in-flight iteration again

        async def stored(store):
            return await store.get(execution_id)

        record = read_store(store_url, stored)
        assert record.function == "jobs.methods:Crawler.crawl"
        assert record.status == "completed"
