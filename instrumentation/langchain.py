"""LangChain instrumentation: chain/agent/tool runs as spans, and their names on the provider instrumentors' spans.

LLM calls are *not* spanned here: the provider instrumentors (openai, anthropic, groq, ollama, …) make the one span
per call, so a LangChain chat model never produces a second. What this adds:

- a span per chain, agent and tool run (kind INTERNAL, named after the run; agents carry
  ``gen_ai.operation.name = invoke_agent`` and ``gen_ai.agent.name``, which the llm_calls view does not count as
  calls; chains carry no ``gen_ai.*`` at all), parented by LangChain's own run tree;
- on every provider span made inside a run: ``promptpulse.chain.name`` (innermost run), ``promptpulse.chain.path``
  (run names, outermost first), ``gen_ai.agent.name`` (innermost agent) — and the provider span is parented under
  that run's span.

How the provider span finds its run without attaching contexts from callbacks (which LangChain calls from other
threads, tasks and copied contexts, so attach/detach could never pair up): LangChain sets the config of the
running step in a ContextVar (``var_child_runnable_config``); its callback manager names the enclosing run
(``parent_run_id``). A context source (``spans.context_sources``) reads it when a provider span starts. If the app
opened its own span inside the run, that span stays the parent (the names are still added). Tags from
``promptpulse.prompt`` are ContextVars, which LangChain copies into its steps, so they stay on the provider spans.

The handler joins every LangChain callback manager (``BaseCallbackManager.__init__`` is wrapped), so no app code
changes (the instance is ``LangChainInstrumentor().handler``).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.trace import SpanKind, Status, StatusCode

from promptpulse import __version__
from promptpulse.instrumentation import common, errors, patching, spans
from promptpulse.instrumentation import semconv as sc

_log = logging.getLogger(__name__)

_INSTRUMENTS = ("langchain-core >= 0.3",)
_AGENT_CLASS_NAMES = frozenset({"AgentExecutor"})
_INVOKE_AGENT = "invoke_agent"


@dataclass(slots=True)
class _Run:
    span: trace.Span
    path: tuple[str, ...]
    agent: str | None
    base_span_id: int  # the span current when the outermost run started (the app's), 0 if none
    attributes: dict[str, Any]


def _run_name(serialized: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> str:
    name = kwargs.get("name")
    if isinstance(name, str) and name:
        return name
    if serialized:
        name = serialized.get("name")
        if isinstance(name, str) and name:
            return name
        ident = serialized.get("id")
        if isinstance(ident, list) and ident:
            return str(ident[-1])
    return "chain"


def _make_handler_class(base: type) -> type:
    """The handler, a ``BaseCallbackHandler`` subclass made when the app imports LangChain."""

    class Handler(base):  # type: ignore[misc, valid-type]
        run_inline = True  # called in the run's own thread/task: no executor hop
        raise_error = False
        ignore_llm = True  # LLM calls are the provider instrumentors' spans
        ignore_chat_model = True
        ignore_retriever = True
        ignore_retry = True
        ignore_custom_event = True

        def __init__(self, tracer: trace.Tracer) -> None:
            super().__init__()
            self.tracer = tracer
            self.enabled = True
            self.runs: dict[UUID, _Run] = {}

        # --- runs become spans
        def _start(
            self, run_type: str, name: str, run_id: UUID, parent_run_id: UUID | None, metadata: Any
        ) -> None:
            if not self.enabled or run_id in self.runs:
                return
            parent = self.runs.get(parent_run_id) if parent_run_id is not None else None
            agent = None
            if run_type == "chain":
                agent_name = metadata.get("lc_agent_name") if isinstance(metadata, Mapping) else None
                if isinstance(agent_name, str) and agent_name:
                    agent, run_type = agent_name, "agent"
                elif name in _AGENT_CLASS_NAMES:
                    agent, run_type = name, "agent"
            if parent is not None:
                path = (*parent.path, name)
                ctx = trace.set_span_in_context(parent.span)
                base_span_id = parent.base_span_id
                agent = agent or parent.agent
            else:
                path = (name,)
                ctx = None
                current = trace.get_current_span().get_span_context()
                base_span_id = current.span_id if current.is_valid else 0
            attributes: dict[str, Any] = {sc.PROMPTPULSE_CHAIN_NAME: name, sc.PROMPTPULSE_CHAIN_PATH: path}
            if agent:
                attributes[sc.GEN_AI_AGENT_NAME] = agent
            span_attrs: dict[str, Any] = {**attributes, sc.PROMPTPULSE_RUN_TYPE: run_type}
            if run_type == "agent":
                span_attrs[sc.GEN_AI_OPERATION_NAME] = _INVOKE_AGENT
            span = self.tracer.start_span(name, context=ctx, kind=SpanKind.INTERNAL, attributes=span_attrs)
            self.runs[run_id] = _Run(span, path, agent, base_span_id, attributes)

        def _end(self, run_id: UUID, error: BaseException | None = None) -> None:
            run = self.runs.pop(run_id, None)
            if run is None:
                return
            if error is not None:
                run.span.set_attribute(sc.ERROR_TYPE, errors.error_type(error))
                run.span.record_exception(error)
                run.span.set_status(Status(StatusCode.ERROR, str(error)[:1024]))
            run.span.end()

        def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
            self._start("chain", _run_name(serialized, kwargs), run_id, kwargs.get("parent_run_id"),
                        kwargs.get("metadata"))

        def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
            self._end(run_id)

        def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
            self._end(run_id, error)

        def on_tool_start(self, serialized: Any, input_str: Any, *, run_id: UUID, **kwargs: Any) -> None:
            self._start("tool", _run_name(serialized, kwargs), run_id, kwargs.get("parent_run_id"), None)

        def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
            self._end(run_id)

        def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
            self._end(run_id, error)

        # --- provider spans find their run
        def context_source(self) -> tuple[otel_context.Context | None, Mapping[str, Any] | None] | None:
            if not self.runs:
                return None
            config = _child_config_var.get() if _child_config_var is not None else None
            if not config:
                return None
            run_id = getattr(config.get("callbacks"), "parent_run_id", None)
            run = self.runs.get(run_id) if run_id is not None else None
            if run is None:
                return None
            current = trace.get_current_span().get_span_context()
            if current.is_valid and current.span_id != run.base_span_id:
                return None, run.attributes  # the app opened its own span inside the run: it stays the parent
            return trace.set_span_in_context(run.span), run.attributes

    Handler.__name__ = Handler.__qualname__ = "PromptPulseCallbackHandler"
    return Handler


_child_config_var: Any = None


class LangChainInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """``opentelemetry-instrument`` loads this through the ``promptpulse_langchain`` entry point.

    Like the SDK instrumentors it imports nothing of LangChain: the handler is made when the app imports
    ``langchain_core.callbacks.base`` (``patching.LazyPatcher``)."""

    _patcher: patching.LazyPatcher | None = None
    handler: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return _INSTRUMENTS

    def _check_dependency_conflicts(self) -> None:
        return None  # checked when LangChain is imported (common.supported), as for the SDK instrumentors

    def _instrument(self, **kwargs: Any) -> None:
        if self._patcher is not None:
            return
        tracer = trace.get_tracer(__name__, __version__, kwargs.get("tracer_provider"))
        patcher = self._patcher = patching.LazyPatcher(type(self).__name__)
        patcher.when_imported("langchain_core.runnables.config", _bind_child_config)
        patcher.when_imported("langchain_core.callbacks.base", lambda base: self._join(base, tracer, patcher))

    def _join(self, base: Any, tracer: trace.Tracer, patcher: patching.LazyPatcher) -> None:
        if not common.supported(type(self).__name__, _INSTRUMENTS):
            return
        handler = self.handler = _make_handler_class(base.BaseCallbackHandler)(tracer)

        def join_manager(wrapped: Any, instance: Any, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
            result = wrapped(*args, **kw)
            try:
                if handler.enabled and not any(h is handler for h in instance.inheritable_handlers):
                    instance.add_handler(handler, True)
            except Exception:
                _log.debug("promptpulse: could not add the LangChain handler", exc_info=True)
            return result

        patcher.apply([patching.Patch("langchain_core.callbacks.base", "BaseCallbackManager.__init__", join_manager)])
        spans.context_sources.append(handler.context_source)

    def _uninstrument(self, **kwargs: Any) -> None:
        patcher, self._patcher = self._patcher, None
        handler, self.handler = self.handler, None
        if patcher is not None:
            patcher.revert()
        if handler is not None:
            handler.enabled = False  # managers made meanwhile may still hold it: make it inert
            for run_id in list(handler.runs):
                handler._end(run_id)
            try:
                spans.context_sources.remove(handler.context_source)
            except ValueError:
                pass


def _bind_child_config(config_module: Any) -> None:
    global _child_config_var
    _child_config_var = config_module.var_child_runnable_config
