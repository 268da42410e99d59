"""The one worker pool (edgeport.pool): jobs in order in one worker; a crash, a hang or an exception costs one job."""

from __future__ import annotations

import textwrap
import time

import pytest

from edgeport.errors import InputError
from edgeport.pool import Pool

HANDLER = textwrap.dedent('''
    import ctypes, os, time

    from edgeport.errors import InputError

    def handler(payload, note):
        if payload.get("fail_setup"):
            raise InputError("the model would not load; pass --weights")
        pid = os.getpid()

        def run_one(job):
            note(f"doing {job}")
            if job == "crash":
                ctypes.string_at(0)  # SIGSEGV, as a broken converter or runtime would
            if job == "hang":
                time.sleep(3600)
            if job == "raise":
                raise InputError("bad job; fix it")
            if job == "bug":
                raise KeyError("boom")
            return {"job": job, "pid": pid, "scale": payload["scale"]}

        return run_one
''')


@pytest.fixture
def handler_dir(tmp_path):
    (tmp_path / "pool_handler_mod.py").write_text(HANDLER)
    return tmp_path


def _pool(handler_dir, **payload):
    return Pool("pool_handler_mod:handler", {"sys_path": [str(handler_dir)], "scale": 2, **payload}, timeout_s=5)


def test_jobs_run_in_order_in_one_worker(handler_dir):
    notes = []
    with _pool(handler_dir) as pool:
        pool.on_note = notes.append
        res = pool.run(["a", "b", "c"])
    assert [r.ok for r in res] == [True, True, True]
    assert [r.value["job"] for r in res] == ["a", "b", "c"] and {r.value["scale"] for r in res} == {2}
    assert len({r.value["pid"] for r in res}) == 1  # the setup (an import, a model load) is paid once
    assert notes == ["doing a", "doing b", "doing c"]


def test_a_crash_a_hang_and_an_exception_cost_one_job_each(handler_dir):
    t0 = time.monotonic()
    with _pool(handler_dir) as pool:
        res = pool.run(["a", "crash", "b", "hang", "raise", "bug", "c"])
    assert time.monotonic() - t0 < 30
    ok = {i: r.value for i, r in enumerate(res) if r.ok}
    assert sorted(ok) == [0, 2, 6]
    assert res[1].error == "the worker crashed (SIGSEGV) on this job; the other jobs went on"
    assert res[3].error.startswith("timed out after 5s")
    assert res[4].error == "bad job; fix it" and isinstance(res[4].exception(), InputError)
    assert res[5].error == "KeyError: 'boom'" and res[5].kind is None
    # a fresh worker took the jobs after each crash and hang: three workers in all
    assert len({ok[0]["pid"], ok[2]["pid"], ok[6]["pid"]}) == 3


def test_a_setup_failure_fails_every_job_with_its_own_error(handler_dir):
    with _pool(handler_dir, fail_setup=True) as pool:
        res = pool.run(["a", "b"])
    assert [r.error for r in res] == ["the model would not load; pass --weights"] * 2
    assert all(isinstance(r.exception(), InputError) for r in res)


def test_a_worker_started_ahead_is_used_and_ready_before_jobs(handler_dir):
    with _pool(handler_dir) as pool:
        pool.start().wait_ready(30)
        assert pool._ready
        res = pool.run(["a"])
    assert res[0].ok
