"""promptpulse.prompt(...) shared by concurrent tasks and threads, with the real openai SDK over the fake provider."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest

import promptpulse
from promptpulse.instrumentation import semconv as sc
from promptpulse.instrumentation.openai import OpenAIInstrumentor
from promptpulse.testing import FakeProvider

MSGS = [{"role": "user", "content": "hi"}]


@pytest.fixture
def instrumented(otel: Any) -> Iterator[OpenAIInstrumentor]:
    yield from otel.instrument(OpenAIInstrumentor())


def _versions(otel: Any) -> list[Any]:
    return sorted(str(s.attributes.get(sc.GEN_AI_PROMPT_VERSION)) for s in otel.spans("chat"))


async def test_one_prompt_object_shared_by_overlapping_tasks(
    otel: Any, instrumented: Any, fake_provider: FakeProvider
) -> None:
    """Task A enters, task B enters, A leaves first: each task leaves its own block (it raised ValueError)."""
    shared = promptpulse.prompt("shared", "1", user_id="u-1")
    a_in, b_in, a_out = asyncio.Event(), asyncio.Event(), asyncio.Event()
    client = openai.AsyncOpenAI(base_url=fake_provider.openai_base_url, api_key="k", max_retries=0)

    async def a() -> None:
        with shared:
            a_in.set()
            await b_in.wait()
            await client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        a_out.set()
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)  # after the block: untagged

    async def b() -> None:
        await a_in.wait()
        with shared:
            b_in.set()
            await a_out.wait()
            await client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)

    try:
        await asyncio.gather(a(), b())
    finally:
        await client.close()
    assert _versions(otel) == ["1", "1", "None"]
    assert _current_tags() is None


def test_one_prompt_object_shared_by_overlapping_threads(
    otel: Any, instrumented: Any, fake_provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """Threads interleave enter/enter/exit/exit on one object, with and without propagate (baggage)."""
    client = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key="k", max_retries=0)
    errors: list[BaseException] = []
    for propagate in (False, True):
        shared = promptpulse.prompt("shared", "2", propagate=propagate)
        a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

        def a(shared: promptpulse.prompt = shared, a_in: Any = a_in, b_in: Any = b_in, a_out: Any = a_out) -> None:
            try:
                with shared:
                    a_in.set()
                    b_in.wait(5)
                    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
                a_out.set()
                assert _current_tags() is None
            except BaseException as e:
                errors.append(e)
                a_out.set()

        def b(shared: promptpulse.prompt = shared, a_in: Any = a_in, b_in: Any = b_in, a_out: Any = a_out) -> None:
            try:
                a_in.wait(5)
                # copy_context(): the way an app hands its context to a worker thread
                with shared:
                    b_in.set()
                    a_out.wait(5)
                    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
                assert _current_tags() is None
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=a), threading.Thread(target=contextvars.copy_context().run, args=(b,))]
        with caplog.at_level(logging.ERROR, logger="opentelemetry.context"):
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
    client.close()
    assert errors == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []  # no failed detach either
    assert _versions(otel) == ["2"] * 4


async def test_one_prompt_object_as_decorator_and_context_manager_at_once(
    otel: Any, instrumented: Any, fake_provider: FakeProvider
) -> None:
    shared = promptpulse.prompt("shared", "3")
    client = openai.AsyncOpenAI(base_url=fake_provider.openai_base_url, api_key="k", max_retries=0)
    sync_client = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key="k", max_retries=0)
    go = asyncio.Event()

    @shared
    async def decorated() -> None:
        await go.wait()
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)

    @shared
    def decorated_sync() -> None:
        sync_client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)

    async def managed() -> None:
        with shared:
            await asyncio.sleep(0)
            go.set()
            await asyncio.to_thread(decorated_sync)  # to_thread copies the context: nested in this block
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)

    try:
        await asyncio.gather(decorated(), managed(), decorated())
    finally:
        await client.close()
        sync_client.close()
    assert _versions(otel) == ["3", "3", "3", "None"]


def _current_tags() -> Any:
    from promptpulse.instrumentation import tagging

    return tagging.current_attributes()
