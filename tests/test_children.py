"""Child executions: a @resumable function awaited inside an execution.

Its id derives from the parent's id and the call's position; a replay of the
parent that reaches the call returns the child's stored result (nothing
runs) or resumes it, and side effects are counted: a child's finished
iterations never run again. Real stores in process; SIGKILL of a real
subprocess for the crash tests, resumed (or recovered) in a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from jobs import children
from jobs.children import (
    backfill,
    calls_elsewhere,
    catches,
    detached,
    explicit,
    fan_out,
    named,
    straight,
    switching,
    three_levels,
    waits_on_child,
)
from support.clirun import cli
from support.crashing import count, environment, kill_after_lines, read_store, resume_fresh, start

from resumable import (
    ExecutionCancelled,
    NonDeterminismError,
    _config,
    cancel,
    list_executions,
    recover,
    resume,
    status,
)
from resumable.runtime import engine, records
from resumable.runtime.registry import REGISTRY
from resumable.stores import ExecutionUpdate, Store
from resumable.testing import SimulatedCrash, crash_after

DELAY = 0.004


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    children.RUNS.clear()
    children.FAIL.clear()
    children.GATES.clear()
    children.DIE.clear()
    children.SWITCH.update(step_first=False, explicit_id="first-id")
    yield
    children.FAIL.clear()


def new_id() -> str:
    return uuid.uuid4().hex


async def die_in_region_1(execution_id: str, store: Store, delay: float = 0) -> None:
    """Run `backfill` over 3 regions and die like SIGKILL at item 2 of region
    1: region 0 completed, region 1 has checkpointed items 0 and 1."""
    children.DIE["at"] = (1, 2)
    with pytest.raises(SimulatedCrash):
        await backfill.options(execution_id=execution_id, store=store)(3, "", delay)


def region_runs() -> list[str]:
    return [run for run in children.RUNS if run.startswith("region:")]


class TestChildIds:
    """A child's id is its parent's id, a slash, and its position."""

    def test_position_numbers_dot_separated(self):
        assert records.child_id("nightly", "#3") == "nightly/3"
        assert records.child_id("nightly", "#0[5]/#1") == "nightly/0.5.1"
        assert records.child_id("nightly/0.5.1", "#1[2]/#0[7]/#4") == "nightly/0.5.1/1.2.0.7.4"

    def test_an_unknown_position_shape_gets_a_digest(self):
        derived = records.child_id("p", "loop:x")
        assert derived.startswith("p/~") and len(derived) == len("p/~") + 20
        assert derived == records.child_id("p", "loop:x")

    def test_long_ids_end_in_a_digest(self):
        parent = "é" * 199
        first = records.child_id(parent, "#1")
        second = records.child_id(parent, "#2")
        assert len(first) <= records.CHILD_ID_MAX and first != second
        assert first.startswith("é" * 150 + "~")
        assert first.encode("utf-8").decode("utf-8") == first

    async def test_children_are_linked_to_their_parent(self, store):
        execution_id = new_id()
        assert await straight.options(execution_id=execution_id, store=store)(3) == [0, 1, 4]
        kids = await list_executions(store=store, parent_id=execution_id)
        assert sorted(kid.id for kid in kids) == [f"{execution_id}/{i}" for i in range(3)]
        assert {kid.parent_id for kid in kids} == {execution_id}
        assert {kid.function for kid in kids} == {"jobs.children:leaf"}
        assert (await status(execution_id, store=store)).parent_id is None

    async def test_ids_inside_loops_and_amap_items(self, store):
        execution_id = new_id()
        assert await backfill.options(execution_id=execution_id, store=store)(2, "", 0) == (
            children.expected(2)
        )
        kids = await list_executions(store=store, parent_id=execution_id)
        assert sorted(kid.id for kid in kids) == [f"{execution_id}/0.{r}.0" for r in range(2)]
        fanned = new_id()
        assert await fan_out.options(execution_id=fanned, store=store)(3) == [0, 1, 4]
        kids = await list_executions(store=store, parent_id=fanned)
        assert sorted(kid.id for kid in kids) == [f"{fanned}/0.{i}.0" for i in range(3)]

    async def test_grandchildren(self, store):
        execution_id = new_id()
        assert await three_levels.options(execution_id=execution_id, store=store)(2) == [1, 5]
        middle = f"{execution_id}/0.1.0"
        grand = await list_executions(store=store, parent_id=middle)
        assert sorted(kid.id for kid in grand) == [f"{middle}/0", f"{middle}/1"]

    async def test_an_explicit_id_is_still_a_child(self, store):
        execution_id = new_id()
        assert await named.options(execution_id=execution_id, store=store)(4) == 16
        found = await status("leaf-for-4", store=store)
        assert (found.parent_id, found.status) == (execution_id, "completed")
        assert children.RUNS == ["leaf:4"]
        await _mark(store, execution_id, status="failed")
        assert await resume(execution_id, store=store) == 16  # replayed: the child is not re-run
        assert children.RUNS == ["leaf:4"]


async def _mark(store: Store, execution_id: str, **changes) -> None:
    """Change an execution's record as its owner would (a test's shortcut)."""
    record = await store.get(execution_id)
    lease = await engine.acquire(store, record, 30.0)  # steals from a dead run of ours
    await store.update(lease, ExecutionUpdate(**changes))
    await store.release(lease)
    REGISTRY.held.discard(execution_id)


class TestReplay:
    """A replay of the parent never re-runs a child's finished work."""

    async def test_completed_children_return_their_stored_result(self, store):
        execution_id = new_id()
        # Dies after region 0 completed and region 1 checkpointed 2 items.
        await die_in_region_1(execution_id, store)
        assert region_runs()[:6] == [f"region:0:{j}" for j in range(6)]
        children.RUNS.clear()
        assert await resume(execution_id, store=store) == children.expected(3)
        ran = region_runs()
        assert not [run for run in ran if run.startswith("region:0:")]  # completed: not re-run
        first = await status(f"{execution_id}/0.0.0", store=store)
        assert (first.status, first.attempts) == ("completed", 1)

    async def test_an_unfinished_child_is_resumed_as_part_of_the_parent(self, store):
        execution_id = new_id()
        await die_in_region_1(execution_id, store)
        child = f"{execution_id}/0.1.0"
        assert (await status(child, store=store)).progress[0].done == 2
        children.RUNS.clear()
        assert await resume(execution_id, store=store) == children.expected(3)
        assert region_runs()[:4] == ["region:1:2", "region:1:3", "region:1:4", "region:1:5"]
        assert not {"region:1:0", "region:1:1"} & set(children.RUNS), "checkpointed items ran again"
        resumed = await status(child, store=store)
        assert (resumed.status, resumed.attempts) == ("completed", 2)
        assert resumed.owner is None

    @pytest.mark.parametrize("writes", [1, 2, 5, 8, 14, 20, 27])
    async def test_any_crash_point(self, store, writes):
        execution_id = new_id()
        with crash_after(writes), contextlib.suppress(SimulatedCrash):
            await backfill.options(execution_id=execution_id, store=store)(3, "", 0)
        assert await resume(execution_id, store=store) == children.expected(3)
        runs = region_runs()
        assert set(runs) == {f"region:{r}:{j}" for r in range(3) for j in range(6)}
        assert len(runs) - len(set(runs)) <= 1  # only the item in flight ran twice

    async def test_a_failed_child_is_resumed_when_the_parent_is(self, store):
        execution_id = new_id()
        children.FAIL["region:1"] = 4
        with pytest.raises(RuntimeError, match="region 1 failed at item 4"):
            await backfill.options(execution_id=execution_id, store=store)(3, "", 0)
        child = await status(f"{execution_id}/0.1.0", store=store)
        assert child.status == "failed" and "RuntimeError" in (child.error or "")
        assert (await status(execution_id, store=store)).status == "failed"
        children.FAIL.clear()  # the cause is fixed
        children.RUNS.clear()
        assert await resume(execution_id, store=store) == children.expected(3)
        assert region_runs()[:2] == ["region:1:4", "region:1:5"]  # from its checkpoint
        assert not [run for run in children.RUNS if run.startswith("region:0")]

    async def test_a_caught_failure(self, store):
        children.FAIL["region:7"] = 1
        result = await catches.options(store=store)(7)
        assert result == "fallback after region 7 failed at item 1"

    async def test_code_that_reaches_something_else_is_refused(self, store):
        execution_id = new_id()
        await switching.options(execution_id=execution_id, store=store)(3)
        await _mark(store, execution_id, status="failed")
        children.SWITCH["step_first"] = True
        with pytest.raises(NonDeterminismError) as caught:
            await resume(execution_id, store=store)
        message = str(caught.value)
        assert "position #0" in message
        assert "child jobs.children:leaf" in message and "step noted" in message
        assert "noted:3" not in children.RUNS

    async def test_an_explicit_id_that_changed_is_refused(self, store):
        execution_id = new_id()
        children.SWITCH["explicit_id"] = f"first-{execution_id}"
        assert await explicit.options(execution_id=execution_id, store=store)(2) == 4
        await _mark(store, execution_id, status="failed")
        children.SWITCH["explicit_id"] = f"second-{execution_id}"
        with pytest.raises(NonDeterminismError) as caught:
            await resume(execution_id, store=store)
        assert f"with id 'first-{execution_id}'" in str(caught.value)
        assert f"with id 'second-{execution_id}'" in str(caught.value)

    async def test_a_restarted_parent_restarts_its_children(self, store):
        execution_id = new_id()
        assert await three_levels.options(execution_id=execution_id, store=store)(2) == [1, 5]
        await _mark(store, execution_id, status="failed", fingerprint='{"sha":"old"}')
        children.RUNS.clear()
        result = await resume(execution_id, store=store, on_code_change="restart")
        assert result == [1, 5]
        assert sorted(children.RUNS) == ["leaf:0", "leaf:1", "leaf:1", "leaf:2"]  # ran anew
        grand = await status(f"{execution_id}/0.1.0/0", store=store)
        assert grand.attempts == 1  # created anew, not resumed


class TestCancel:
    """Cancelling a parent cancels its running children; resume continues both."""

    async def test_cancel_the_parent(self, store):
        execution_id = new_id()
        children.GATES["g"] = asyncio.Event()
        run = await waits_on_child.options(execution_id=execution_id, store=store).start("g")
        await _until(lambda: children.RUNS == ["gated:g"])
        await cancel(execution_id, store=store)
        with pytest.raises(ExecutionCancelled):
            await run.result()
        assert (await status(execution_id, store=store)).status == "cancelled"
        assert (await status(f"{execution_id}/0", store=store)).status == "cancelled"
        assert await recover(store=store) == {}  # cancelled: left alone
        children.GATES["g"].set()
        assert await resume(execution_id, store=store) == "parent got opened g"
        assert (await status(f"{execution_id}/0", store=store)).status == "completed"

    async def test_cancel_the_child_cancels_the_parent(self, store):
        execution_id = new_id()
        children.GATES["c"] = asyncio.Event()
        run = await waits_on_child.options(execution_id=execution_id, store=store).start("c")
        await _until(lambda: children.RUNS == ["gated:c"])
        await cancel(f"{execution_id}/0", store=store)
        with pytest.raises(ExecutionCancelled) as caught:
            await run.result()
        assert caught.value.execution_id == execution_id
        parent = await status(execution_id, store=store)
        assert parent.status == "cancelled"
        assert f"execution '{execution_id}/0' was cancelled" in (parent.error or "")
        children.GATES["c"].set()
        assert await resume(execution_id, store=store) == "parent got opened c"

    async def test_a_started_child_is_cancelled_with_its_parent(self, store):
        execution_id = new_id()
        children.GATES["d"] = asyncio.Event()
        run = await detached.options(execution_id=execution_id, store=store).start("d")
        await _until(lambda: f"started {execution_id}/0" in children.RUNS)
        await cancel(execution_id, store=store)
        with pytest.raises(ExecutionCancelled):
            await run.result()
        await _until_status(store, f"{execution_id}/0", "cancelled")
        children.GATES["d"].set()
        assert await resume(execution_id, store=store) == "opened d"

    async def test_cancel_an_orphaned_parent_cancels_its_orphaned_children(self, store):
        execution_id = new_id()
        await die_in_region_1(execution_id, store)  # dies inside region 1
        child = f"{execution_id}/0.1.0"
        assert (await status(child, store=store)).status == "running"
        await cancel(execution_id, store=store)
        assert (await status(execution_id, store=store)).status == "cancelled"
        assert (await status(child, store=store)).status == "cancelled"
        assert (await status(f"{execution_id}/0.0.0", store=store)).status == "completed"
        assert await resume(execution_id, store=store) == children.expected(3)
        assert (await status(child, store=store)).status == "completed"

    async def test_the_store_of_another_child_is_refused(self, store):
        with pytest.raises(ValueError, match="a child execution lives in its parent's store"):
            await calls_elsewhere.options(store=store)(1)


class TestElsewhere:
    """A child owned by another live run: the parent waits for it, then
    takes its result, rather than fail or run it a second time."""

    async def test_a_parent_waits_for_its_child_running_elsewhere(self, store):
        execution_id = new_id()
        await die_in_region_1(execution_id, store, DELAY)
        child = f"{execution_id}/0.1.0"
        children.RUNS.clear()
        alone = asyncio.get_running_loop().create_task(resume(child, store=store))
        await _until(lambda: bool(children.RUNS))  # the child runs, on its own
        assert await resume(execution_id, store=store) == children.expected(3)
        assert await alone == sum(100 + j for j in range(6))
        runs = region_runs()
        assert len(runs) == len(set(runs)), runs  # never both at once
        assert (await status(child, store=store)).attempts == 2


async def _until(condition, timeout: float = 10) -> None:
    for _ in range(int(timeout / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


async def _until_status(store: Store, execution_id: str, wanted: str) -> None:
    for _ in range(2000):
        if (await status(execution_id, store=store)).status == wanted:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{execution_id} never became {wanted}")


class TestRecover:
    """recover() resumes an orphaned parent, which resumes its child: the
    child is never run on its own while its parent runs."""

    @pytest.fixture(autouse=True)
    def _short_leases(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(_config._config, "lease_ttl", 0.3)

    async def test_the_child_is_resumed_by_its_parent_only(self, store):
        execution_id = new_id()
        await die_in_region_1(execution_id, store)
        await asyncio.sleep(0.4)  # the dead run's leases expire
        orphans = {r.id for r in await store.list(status="running")}
        assert orphans == {execution_id, f"{execution_id}/0.1.0"}
        children.RUNS.clear()
        outcomes = await recover(store=store)
        assert outcomes == {execution_id: children.expected(3)}
        child = await status(f"{execution_id}/0.1.0", store=store)
        assert (child.status, child.attempts) == ("completed", 2)
        runs = region_runs()
        assert len(runs) == len(set(runs)), runs

    async def test_a_child_whose_parent_ended_is_recovered_on_its_own(self, store):
        execution_id = new_id()
        await die_in_region_1(execution_id, store)
        await _mark(store, execution_id, status="failed")
        await asyncio.sleep(0.4)
        outcomes = await recover(store=store)
        child = f"{execution_id}/0.1.0"
        assert outcomes == {child: sum(100 + j for j in range(6))}
        assert (await status(execution_id, store=store)).status == "failed"


RECOVER_SNIPPET = (
    "import asyncio, json, sys, resumable\n"
    "outcomes = asyncio.run(resumable.recover(store=sys.argv[1]))\n"
    "print(json.dumps({k: v if not isinstance(v, BaseException) else repr(v)"
    " for k, v in outcomes.items()}))\n"
)


def recover_fresh(store_url: str) -> dict[str, object]:
    """`recover()` in a new interpreter that has not imported the jobs."""
    done = subprocess.run(
        [sys.executable, "-c", RECOVER_SNIPPET, store_url],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def checkpointed(store_url: str, execution_id: str, n: int) -> set[str]:
    """Side effects whose checkpoint is in the store after the kill: every
    iteration of a completed region, the finished ones of a running one, and
    the parent's own finished iterations."""

    async def read(store: Store) -> set[str]:
        done: set[str] = set()
        parent = await status(execution_id, store=store)
        finished = parent.progress[0].done if parent.progress else 0
        done |= {f"backfill:{r}" for r in range(finished)}
        for r in range(n):
            try:
                child = await status(f"{execution_id}/0.{r}.0", store=store)
            except Exception:  # not created yet
                continue
            items = children.ITEMS if child.status == "completed" else (
                child.progress[0].done if child.progress else 0
            )  # fmt: skip
            done |= {f"region:{r}:{j}" for j in range(items)}
        return done

    return read_store(store_url, read)


class TestKillAndResume:
    """SIGKILL of the process running a parent and its child; a fresh process
    resumes (or recovers) the parent, which resumes the child as its own part."""

    N = 4  # regions, each a child execution of 6 checkpointed items

    # Lines logged before the kill: inside the first child, between children
    # (a child just completed), deep in a later one.
    @pytest.mark.parametrize(("lines", "extra"), [(2, 0.001), (7, 0.0), (11, 0.002), (20, 0)])
    def test_resume_the_parent(self, tmp_path: Path, store_url: str, lines: int, extra: float):
        log = tmp_path / "effects.log"
        execution_id = new_id()
        process = start(store_url, execution_id, "children.backfill", self.N, log, DELAY)
        killed = kill_after_lines(process, log, lines, extra)
        assert killed, "the job ended before the kill"
        done_before = checkpointed(store_url, execution_id, self.N)
        assert done_before
        assert resume_fresh(store_url, execution_id) == children.expected(self.N)
        effects = count(log)
        assert set(effects) == set(children.tags(self.N))
        for tag in done_before:
            assert effects[tag] == 1, f"{tag} was checkpointed before the kill but ran again"
        rerun = [tag for tag, times in effects.items() if times > 1]
        assert len(rerun) <= 1, f"more than the in-flight iteration ran twice: {rerun}"

        async def read(store: Store):
            return [await status(f"{execution_id}/0.{r}.0", store=store) for r in range(self.N)]

        kids = read_store(store_url, read)
        assert {kid.status for kid in kids} == {"completed"}
        assert {kid.parent_id for kid in kids} == {execution_id}
        assert all(kid.attempts <= 2 for kid in kids)

    def test_recover_runs_the_child_only_inside_its_parent(self, tmp_path: Path, store_url: str):
        log = tmp_path / "effects.log"
        execution_id = new_id()
        process = start(store_url, execution_id, "children.backfill", self.N, log, DELAY)
        assert kill_after_lines(process, log, 9, 0.001)
        done_before = checkpointed(store_url, execution_id, self.N)

        async def orphans(store: Store) -> set[str]:
            return {record.id for record in await store.list(status="running")}

        assert read_store(store_url, orphans) == {execution_id, f"{execution_id}/0.1.0"}
        outcomes = recover_fresh(store_url)
        assert outcomes == {execution_id: children.expected(self.N)}  # not the child on its own
        effects = count(log)
        assert set(effects) == set(children.tags(self.N))
        assert all(effects[tag] == 1 for tag in done_before)
        assert sum(effects.values()) - len(effects) <= 1

    def test_killed_again_while_resuming(self, tmp_path: Path, store_url: str):
        log = tmp_path / "effects.log"
        execution_id = new_id()
        process = start(store_url, execution_id, "children.backfill", self.N, log, DELAY)
        assert kill_after_lines(process, log, 4, 0.001)
        for _ in range(2):  # each resume is killed in its turn, inside some child
            resume_fresh(store_url, execution_id, kill_after=0.7)
        assert resume_fresh(store_url, execution_id) == children.expected(self.N)
        effects = count(log)
        assert set(effects) == set(children.tags(self.N))
        assert sum(effects.values()) - len(effects) <= 3  # at most one in-flight rerun per kill


class TestCommandLine:
    """`show` names the parent and lists the children; `list` nests them."""

    @pytest.fixture(name="family")
    async def _family(self, sqlite) -> str:
        """A completed parent with 2 completed children."""
        await backfill.options(execution_id="fam", store=sqlite)(2, "", 0)
        await straight.options(execution_id="other", store=sqlite)(0)
        return "fam"

    def test_show_lists_the_children(self, url, family):
        result = cli("show", "fam", store=url)
        assert result.returncode == 0, result.stderr
        assert re.search(r"^children\s+2 \(2 completed\)$", result.stdout, re.M)
        assert re.search(r"^\s+fam/0\.0\.0\s+region\s+completed$", result.stdout, re.M)
        assert re.search(r"^\s+fam/0\.1\.0\s+region\s+completed$", result.stdout, re.M)
        assert not re.search(r"^parent", result.stdout, re.M)

    def test_show_names_the_parent(self, url, family):
        result = cli("show", "fam/0.1.0", store=url)
        assert result.returncode == 0, result.stderr
        assert re.search(r"^parent\s+fam\s+backfill\s+completed$", result.stdout, re.M)
        assert not re.search(r"^children", result.stdout, re.M)

    def test_show_json(self, url, family):
        parent = json.loads(cli("show", "fam", "--json", store=url).stdout)
        assert parent["parent_id"] is None
        assert [kid["id"] for kid in parent["children"]] == ["fam/0.0.0", "fam/0.1.0"]
        assert {kid["parent_id"] for kid in parent["children"]} == {"fam"}
        assert {kid["status"] for kid in parent["children"]} == {"completed"}
        kid = json.loads(cli("show", "fam/0.0.0", "--json", store=url).stdout)
        assert (kid["parent_id"], kid["children"]) == ("fam", [])

    def test_list_puts_children_under_their_parent(self, url, family):
        result = cli("list", store=url)
        assert result.returncode == 0, result.stderr
        ids = [line.split()[0] for line in result.stdout.splitlines()[1:]]
        rows = result.stdout.splitlines()[1:]
        assert ids[ids.index("fam") + 1 : ids.index("fam") + 3] == ["fam/0.0.0", "fam/0.1.0"]
        assert rows[ids.index("fam/0.0.0")].startswith("  fam/0.0.0 ")
        assert rows[ids.index("fam")].startswith("fam ")
        listed = json.loads(cli("list", "--json", store=url).stdout)["executions"]
        by_id = {e["id"]: e["parent_id"] for e in listed}
        assert by_id["fam/0.0.0"] == "fam" and by_id["fam"] is None

    async def test_gc_keeps_the_children_of_a_parent_it_keeps(self, url, sqlite, family):
        await die_in_region_1("crashed", sqlite)  # still running
        result = cli("gc", "--older-than", "0s", "--json", store=url)
        assert result.returncode == 0, result.stderr
        deleted = {e["id"] for e in json.loads(result.stdout)["executions"]}
        assert deleted == {"fam", "fam/0.0.0", "fam/0.1.0", "other"}
        left = {e["id"] for e in json.loads(cli("list", "--json", store=url).stdout)["executions"]}
        assert left == {"crashed", "crashed/0.0.0", "crashed/0.1.0"}
        children.RUNS.clear()
        assert await resume("crashed", store=sqlite) == children.expected(3)
        assert not [run for run in children.RUNS if run.startswith("region:0:")]

    def test_cancel_a_parent_from_the_command_line(self, url, sqlite):
        execution_id = new_id()
        # Items slow enough that the child cannot finish before the cancel
        # reaches it, however loaded the machine.
        process = start(url, execution_id, "children.backfill", 3, Path(os.devnull), 2.0)
        try:
            _wait_for(url, f"{execution_id}/0.0.0")
            result = cli("cancel", execution_id, store=url)
            assert result.returncode == 0, result.stderr
            process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()

        async def statuses(store: Store) -> tuple[str, str]:
            parent = await status(execution_id, store=store)
            kid = await status(f"{execution_id}/0.0.0", store=store)
            return parent.status, kid.status

        assert read_store(url, statuses) == ("cancelled", "cancelled")


def _wait_for(store_url: str, execution_id: str, timeout: float = 30) -> None:
    async def exists(store: Store) -> bool:
        return await store.get(execution_id) is not None

    deadline = time.monotonic() + timeout
    while not read_store(store_url, exists):
        assert time.monotonic() < deadline, f"{execution_id} was never created"
        time.sleep(0.02)
