"""Symmetric wrap/unwrap of SDK methods for the instrumentors, applied lazily: a patch is applied when the app imports
the module it patches (wrapt's post-import hooks), so instrumenting imports no SDK and an SDK the app never imports
costs nothing but a registered hook."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType

from opentelemetry.instrumentation.utils import unwrap
from wrapt import FunctionWrapper, register_post_import_hook, resolve_path, wrap_function_wrapper

from promptpulse.instrumentation.wrappers import WrapperFn

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Patch:
    module: str  # e.g. "openai.resources.chat.completions"
    name: str  # e.g. "Completions.create"
    wrapper: WrapperFn
    # Present only in some supported SDK versions (an alternative path, a newer method): missing is not a warning.
    optional: bool = False


class LazyPatcher:
    """One instrumentor's patches, applied as their modules are imported.

    wrapt has no way to unregister a post-import hook, so every hook checks ``armed``: ``revert()`` disarms the hooks
    not yet fired (they do nothing if their module is imported later) and unwraps what was applied. A patcher is used
    for one instrument/uninstrument cycle; instrumenting again makes a new one.
    """

    def __init__(self, owner: str) -> None:
        self.owner = owner  # the instrumentor's name, for the one warning
        self.armed = True
        self.applied: list[tuple[ModuleType, Patch]] = []
        self.missing: list[str] = []
        self.foreign: str | None = None  # the module of another instrumentation found wrapping a method, if any
        self._lock = threading.RLock()  # wrapping may import a module whose hook is ours too

    def when_imported(self, module: str, hook: Callable[[ModuleType], None]) -> None:
        """``hook(module)`` once ``module`` is imported (now if it already is), unless reverted first. An exception in
        the hook is logged: it must never fail the app's import."""

        def guarded(mod: ModuleType) -> None:
            if not self.armed:
                return
            try:
                hook(mod)
            except Exception:
                _log.warning("promptpulse: %s could not patch %s", self.owner, module, exc_info=True)

        register_post_import_hook(guarded, module)

    def apply(self, patches: Iterable[Patch]) -> None:
        """Wrap each patch's method when its module is imported; warn once about required methods not found."""
        by_module: dict[str, list[Patch]] = {}
        for patch in patches:
            by_module.setdefault(patch.module, []).append(patch)
        for module, group in by_module.items():
            self.when_imported(module, lambda mod, group=group: self._wrap(mod, group))  # type: ignore[misc]

    def _wrap(self, module: ModuleType, patches: list[Patch]) -> None:
        missing = []
        with self._lock:
            if not self.armed:
                return
            for patch in patches:
                try:
                    self._note_foreign(module, patch)
                    wrap_function_wrapper(module, patch.name, patch.wrapper)
                    self.applied.append((module, patch))
                except AttributeError:
                    if not patch.optional:
                        missing.append(f"{patch.module}.{patch.name}")
                    _log.debug("promptpulse: %s.%s not in this SDK version; skipped", patch.module, patch.name)
            first = missing and not self.missing
            self.missing.extend(missing)
        if first:
            _log.warning(
                "promptpulse: %s: this SDK version has no %s; those calls get no span",
                self.owner,
                ", ".join(missing),
            )

    def _note_foreign(self, module: ModuleType, patch: Patch) -> None:
        """Warn once when another instrumentation (OpenLLMetry, the contrib openai-v2) already wraps a method: it then
        records its own span of each call besides ours (docs/INSTRUMENTATION.md, "Other instrumentations")."""
        if self.foreign is not None:
            return
        original = resolve_path(module, patch.name)[2]
        if isinstance(original, FunctionWrapper):
            wrapper = getattr(original, "_self_wrapper", None)
            self.foreign = getattr(wrapper, "__module__", None) or "an unknown module"
            _log.warning(
                "promptpulse: %s.%s is already instrumented by %s, which records its own span of each call besides "
                "PromptPulse's; disable one of them (OTEL_PYTHON_DISABLED_INSTRUMENTATIONS) to count each call once",
                patch.module,
                patch.name,
                self.foreign,
            )

    def revert(self) -> bool:
        """Disarm the hooks not yet fired and unwrap what was applied; True when something was unwrapped."""
        with self._lock:
            self.armed = False
            applied, self.applied = self.applied, []
        for module, patch in reversed(applied):
            try:
                owner, attr, _ = resolve_path(module, patch.name)
                unwrap(owner, attr)
            except (ImportError, AttributeError):
                _log.debug("promptpulse: could not unwrap %s.%s", patch.module, patch.name)
        return bool(applied)
