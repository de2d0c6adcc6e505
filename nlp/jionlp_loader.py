"""jionlp, imported without the banner it prints to stdout (which would corrupt the output of
a command such as ``wangge export-reviews``)."""

from __future__ import annotations

import contextlib
import io
from functools import cache
from types import ModuleType


@cache
def jionlp() -> ModuleType:
    with contextlib.redirect_stdout(io.StringIO()):
        import jionlp as module
    return module
