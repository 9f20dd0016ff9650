"""Compiling the C++ backends once, at first use, and falling back when that is impossible."""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch

_LOADED: dict[str, Any] = {}


def load_ops(name: str, source: str, namespace: str, what: str) -> Any | None:
    """`torch.ops.<namespace>` after compiling `source` as the extension `name` (~30 s once, then cached by torch
    in its extensions directory and rebuilt when the source changes); None, with one warning, if that fails
    (no C++ compiler, say): the caller then uses its reference loop."""
    if name not in _LOADED:
        _LOADED[name] = None
        try:
            from torch.utils.cpp_extension import load_inline

            os.environ.setdefault("MAX_JOBS", "2")
            load_inline(
                name=name,
                cpp_sources=[source],
                extra_cflags=["-O3", "-ffp-contract=off"],
                is_python_module=False,
                no_implicit_headers=True,
                verbose=False,
            )
            _LOADED[name] = getattr(torch.ops, namespace)
        except Exception as err:  # no compiler, no ninja, a build error: fall back, never crash
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            warnings.warn(f"{what} unavailable, using the reference loop ({first[:200]})", stacklevel=3)
    return _LOADED[name]
