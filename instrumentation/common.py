"""The instrumentor skeleton every provider module subclasses (what calls are made of is in ``kit``)."""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from promptpulse import __version__
from promptpulse.instrumentation import patching
from promptpulse.instrumentation.spans import Telemetry

_log = logging.getLogger(__name__)


# --- instrumentors -------------------------------------------------------------------------------------------------
class Instrumentor(BaseInstrumentor):  # type: ignore[misc]
    """An instrumentor that wraps SDK methods: subclasses name their SDK requirement, the module whose import means
    the SDK is in use, and list their patches.

    ``instrument()`` imports no SDK: ``patches()`` runs when the app imports ``_SDK_MODULE`` (now, if it already
    has), and each patch is applied when its own module is imported (``patching.LazyPatcher``). An SDK outside
    ``_INSTRUMENTS`` gets one warning and no patches when it is imported (reading its version costs a metadata parse:
    an SDK never imported costs nothing). Telemetry is scoped to the subclass's module. Never
    instantiated itself (``BaseInstrumentor`` is a singleton per class).
    """

    _INSTRUMENTS: tuple[str, ...] = ()
    _SDK_MODULE: str = ""
    _patcher: patching.LazyPatcher | None = None
    telemetry: Telemetry | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return self._INSTRUMENTS

    def _check_dependency_conflicts(self) -> None:
        return None  # checked when the SDK is imported, the same way for instrument() and opentelemetry-instrument

    def patches(self, telemetry: Telemetry) -> list[patching.Patch]:
        raise NotImplementedError

    def _instrument(self, **kwargs: Any) -> None:
        if self._patcher is not None:  # never wrap twice, whatever BaseInstrumentor's bookkeeping says
            return
        telemetry = self.telemetry = Telemetry(
            type(self).__module__,
            __version__,
            tracer_provider=kwargs.get("tracer_provider"),
            meter_provider=kwargs.get("meter_provider"),
            capture_content=kwargs.get("capture_content"),
            logger_provider=kwargs.get("logger_provider"),
        )
        patcher = self._patcher = patching.LazyPatcher(type(self).__name__)

        def on_import(_module: Any) -> None:
            if supported(type(self).__name__, self._INSTRUMENTS):
                self._on_sdk_import(telemetry, patcher)

        patcher.when_imported(self._SDK_MODULE, on_import)

    def _on_sdk_import(self, telemetry: Telemetry, patcher: patching.LazyPatcher) -> None:
        """The app imported the SDK: register its patches (each applied when its module is imported)."""
        patcher.apply(self.patches(telemetry))

    def _uninstrument(self, **kwargs: Any) -> None:
        patcher, self._patcher = self._patcher, None
        if patcher is not None:
            patcher.revert()


def supported(owner: str, requirements: Collection[str]) -> bool:
    """False, with one warning, when an SDK in ``requirements`` is installed at a version outside its range. Reads
    package metadata only. Not installed (a module without a distribution) is not a warning."""
    conflict = get_dependency_conflicts(requirements)
    if conflict is None:
        return True
    if conflict.found:
        _log.warning(
            "promptpulse: %s supports %s, but %s is installed: nothing is instrumented",
            owner,
            conflict.required,
            conflict.found,
        )
        return False
    return True
