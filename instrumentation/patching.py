"""Symmetric wrap/unwrap of SDK methods for the instrumentors (``_instrument``/``_uninstrument``)."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

from promptpulse.instrumentation.wrappers import WrapperFn

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Patch:
    module: str  # e.g. "openai.resources.chat.completions"
    name: str  # e.g. "Completions.create"
    wrapper: WrapperFn


def apply(patches: Iterable[Patch]) -> list[Patch]:
    """Wrap what exists in the installed SDK version; return what was wrapped (for ``revert``)."""
    applied = []
    for patch in patches:
        try:
            wrap_function_wrapper(patch.module, patch.name, patch.wrapper)
            applied.append(patch)
        except (ImportError, AttributeError):
            _log.debug("promptpulse: %s.%s not in this SDK version; skipped", patch.module, patch.name)
    return applied


def revert(patches: Iterable[Patch]) -> None:
    for patch in patches:
        owner_path, _, attr = patch.name.rpartition(".")
        try:
            owner = importlib.import_module(patch.module)
            for part in owner_path.split(".") if owner_path else ():
                owner = getattr(owner, part)
            unwrap(owner, attr)
        except (ImportError, AttributeError):
            _log.debug("promptpulse: could not unwrap %s.%s", patch.module, patch.name)
