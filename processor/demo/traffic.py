"""The demo's traffic generator: an instrumented "support bot" driving the real openai and anthropic SDKs.

Set up exactly as a user's app would be: an SDK TracerProvider with a BatchSpanProcessor and the official OTLP/HTTP
exporter pointed at the processor, and PromptPulse's OpenAIInstrumentor / AnthropicInstrumentor; calls tagged with
``promptpulse.prompt(...)`` and followed, now and then, by ``promptpulse.score(...)``.

A dispatcher thread plans the calls (open-loop Poisson arrivals at ``rate``, one seeded RNG) and hands them to a
thread pool, so slow calls never slow the arrival rate — as with real users.
"""

from __future__ import annotations

import contextvars
import logging
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import promptpulse
from promptpulse.testing import FAULT_HEADER

from . import story
from .story import CallSpec, PromptSpec

log = logging.getLogger("promptpulse.demo")


def expected_errors() -> tuple[type[BaseException], ...]:
    """What the planted faults raise in the app: the SDKs' API errors, and the HTTP client's transport error for a
    stream that breaks off (anthropic before 2.17 passes httpx2.RemoteProtocolError through; openai and later
    anthropic versions wrap it in their connection errors)."""
    import anthropic
    import httpx2
    import openai

    return (openai.OpenAIError, anthropic.AnthropicError, httpx2.TransportError)


@dataclass
class Tally:
    """What the generator saw, client side (the store's numbers are checked against these)."""

    planned: int = 0
    done: int = 0
    failed: int = 0
    scores: int = 0
    by_prompt: Counter[str] = field(default_factory=Counter)
    failed_by_kind: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class Traffic:
    def __init__(self, *, openai_base_url: str, anthropic_base_url: str, otlp_endpoint: str, rate: float,
                 duration: float, seed: int) -> None:
        self.rate = rate
        self.duration = duration
        self.seed = seed
        self.tally = Tally()
        self.burst = story.burst_window(duration)
        self.started_at = 0.0
        self.stopped_at = 0.0
        self._stop = threading.Event()
        self._setup_otel(otlp_endpoint)
        self._setup_clients(openai_base_url, anthropic_base_url)
        self._setup_evaluation(openai_base_url)
        rng = random.Random(seed)
        self._systems = {(p.name, v.version): f"You are the {p.name.replace('_', ' ')} assistant, v{v.version}. "
                         + story.words(rng, v.system_tokens)
                         for p in story.PROMPTS for v in p.versions}
        self._pool = ThreadPoolExecutor(max_workers=int(min(256, max(32, rate * 6))), thread_name_prefix="demo-call")

    # --- the app's OpenTelemetry setup ----------------------------------------------------------------------------
    def _setup_otel(self, endpoint: str) -> None:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from promptpulse.instrumentation.anthropic import AnthropicInstrumentor
        from promptpulse.instrumentation.openai import OpenAIInstrumentor

        resource = Resource.create({"service.name": story.SERVICE, "service.version": "1.8.2",
                                    "deployment.environment.name": story.ENVIRONMENT})
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=500, max_export_batch_size=512,
            max_queue_size=100_000))
        trace.set_tracer_provider(self.tracer_provider)  # promptpulse.score() uses the global provider
        self._instrumentors = [OpenAIInstrumentor(), AnthropicInstrumentor()]
        for inst in self._instrumentors:
            inst.instrument(tracer_provider=self.tracer_provider)

    def _setup_clients(self, openai_base_url: str, anthropic_base_url: str) -> None:
        import anthropic
        import openai

        self._openai = openai.OpenAI(base_url=openai_base_url, api_key="sk-demo-not-a-real-key", max_retries=2,
                                     timeout=30.0)
        self._anthropic = anthropic.Anthropic(base_url=anthropic_base_url, api_key="sk-ant-demo-not-a-real-key",
                                              max_retries=2, timeout=30.0)
        self._errors = expected_errors()

    def _setup_evaluation(self, openai_base_url: str) -> None:
        """Two online-evaluation rules in the app: a PII guardrail and an LLM judge (answered by the fake)."""
        import os

        from promptpulse.evaluation import inapp

        os.environ.setdefault(story.JUDGE_KEY_ENV, "sk-demo-judge-not-a-real-key")
        self.evaluator = inapp.enable(rules=story.evaluation_rules(openai_base_url),
                                      tracer_provider=self.tracer_provider, queue_size=10_000)

    # --- lifecycle ------------------------------------------------------------------------------------------------
    def run(self) -> None:
        """Plan and send calls for `duration` seconds (blocking), then wait for the calls in flight."""
        rng = random.Random(self.seed)
        users = story.Users(random.Random(self.seed + 1))
        sessions: dict[str, str] = {}
        self.started_at = time.time()
        t0 = time.monotonic()
        at = 0.0
        burst_k = 0
        seq = 0
        while not self._stop.is_set():
            at += rng.expovariate(self.rate)
            if at >= self.duration:
                break
            delay = t0 + at - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            seq += 1
            prompt = story.pick_prompt(rng)
            version = story.pick_version(rng, prompt)
            uid, new = users.pick()
            if new or uid not in sessions or rng.random() < 0.1:
                sessions[uid] = f"sess-{seq:06d}"
            stream = rng.random() < prompt.stream
            fault = story.pick_fault(rng, prompt, stream)
            elapsed = time.monotonic() - t0  # the burst is a window of wall time, as outages are
            in_burst = prompt.model == story.BURST_MODEL and self.burst[0] <= elapsed < self.burst[1]
            if in_burst:
                if burst_k % 10 < round(story.BURST_ERROR_SHARE * 10):
                    fault = str(story.BURST_STATUS) + ":0.05"  # fails every attempt: the SDK's retries don't help
                burst_k += 1
            spec = CallSpec(seq=seq, at=at, prompt=prompt, version=version, user_id=uid, new_user=new,
                            session_id=sessions[uid], stream=stream,
                            content_tokens=rng.randint(*prompt.input_tokens), fault=fault, in_burst=in_burst,
                            score=story.score_value(rng, prompt, version), text_seed=rng.getrandbits(32))
            with self.tally.lock:
                self.tally.planned += 1
                self.tally.in_flight += 1
            # A fresh context per call, as a web framework gives each request.
            self._pool.submit(contextvars.Context().run, self._call_safely, spec)
        self._pool.shutdown(wait=True)
        self.stopped_at = time.time()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """Flush the exporter (everything the app produced reaches the processor) and undo the instrumentation."""
        from promptpulse.evaluation import inapp

        inapp.disable()  # evaluates what is queued first: its score spans go out with the rest
        self.tracer_provider.force_flush(timeout_millis=30_000)
        self.tracer_provider.shutdown()
        for inst in self._instrumentors:
            inst.uninstrument()
        for client in (self._openai, self._anthropic):
            try:
                client.close()
            except Exception:
                pass

    # --- one call -------------------------------------------------------------------------------------------------
    def _call_safely(self, spec: CallSpec) -> None:
        ok, kind = True, ""
        try:
            self._call(spec)
        except self._errors as e:
            ok, kind = False, type(e).__name__
        except Exception as e:  # not an API error: a bug in the demo or an SDK change; say so once per kind
            ok, kind = False, type(e).__name__
            with self.tally.lock:
                first = kind not in self.tally.failed_by_kind
            if first:
                log.warning("demo call failed unexpectedly: %r", e)
        with self.tally.lock:
            self.tally.in_flight -= 1
            self.tally.done += 1
            self.tally.by_prompt[spec.prompt.name] += 1
            if not ok:
                self.tally.failed += 1
                self.tally.failed_by_kind[kind] += 1

    def _call(self, spec: CallSpec) -> None:
        p, v = spec.prompt, spec.version
        rng = random.Random(spec.text_seed)
        headers = {FAULT_HEADER: spec.fault} if spec.fault else {}
        tags = [*p.tags, f"plan:{rng.choice(story.PLANS)}", "new_user" if spec.new_user else "returning_user"]
        with promptpulse.prompt(p.name, version=v.version, user_id=spec.user_id, session_id=spec.session_id,
                                feature=p.feature, tags=tags):
            content = story.words(rng, spec.content_tokens)
            system = self._systems[(p.name, v.version)]
            model = story.MODELS[p.model]
            if model.embedding:
                self._openai.embeddings.create(model=p.model, input=content, extra_headers=headers)
            elif model.provider == "anthropic":
                self._anthropic_call(p, v.max_tokens, system, content, spec.stream, headers)
            else:
                self._openai_call(p, v.max_tokens, system, content, spec.stream, headers)
            if spec.score is not None:
                name = p.scores[0] if p.scores else "score"
                label = None
                if name == "user_feedback":
                    label = "thumbs_up" if spec.score >= 1 else "thumbs_down"
                if promptpulse.score(name, spec.score, label=label):
                    with self.tally.lock:
                        self.tally.scores += 1

    def _openai_call(self, p: PromptSpec, max_tokens: int, system: str, content: str, stream: bool,
                     headers: dict[str, str]) -> None:
        client = self._openai
        if p.timeout_s < 30 or p.max_retries != 2:
            client = client.with_options(timeout=p.timeout_s, max_retries=p.max_retries)
        messages: Any = [{"role": "system", "content": system}, {"role": "user", "content": content}]
        if stream:
            s = client.chat.completions.create(model=p.model, messages=messages, max_tokens=max_tokens,
                                               temperature=0.3, stream=True, stream_options={"include_usage": True},
                                               extra_headers=headers)
            for _ in s:
                pass
        else:
            client.chat.completions.create(model=p.model, messages=messages, max_tokens=max_tokens, temperature=0.2,
                                           extra_headers=headers)

    def _anthropic_call(self, p: PromptSpec, max_tokens: int, system: str, content: str, stream: bool,
                        headers: dict[str, str]) -> None:
        client = self._anthropic
        if p.timeout_s < 30 or p.max_retries != 2:
            client = client.with_options(timeout=p.timeout_s, max_retries=p.max_retries)
        messages: Any = [{"role": "user", "content": content}]
        if stream:
            with client.messages.stream(model=p.model, system=system, messages=messages, max_tokens=max_tokens,
                                        extra_headers=headers) as s:
                for _ in s.text_stream:
                    pass
        else:
            client.messages.create(model=p.model, system=system, messages=messages, max_tokens=max_tokens,
                                   extra_headers=headers)
