"""Lazy public APIs for the stage packages.

A stage package's ``__init__`` names its public API (``run`` and the few names other stages may use)
and where each lives; a name is imported on first use. Importing ``pipelines.train`` therefore loads
nothing heavy, and one stage can use another's public module (``pipelines.evaluate.metrics``) without
running that package's whole import chain.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, api: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``api``: public name -> submodule of ``package`` defining it.

    A name equal to its submodule's name is the submodule itself (a public module).
    """

    def __getattr__(name: str) -> Any:
        if name not in api:
            raise AttributeError(
                f"module {package!r} has no attribute {name!r}; its public API is {sorted(api)}"
            )
        module = importlib.import_module(f"{package}.{api[name]}")
        return module if name == api[name] else getattr(module, name)

    return __getattr__
