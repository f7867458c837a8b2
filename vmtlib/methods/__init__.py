"""The registry of method ids; importing this package registers every method.

Every module of this package is imported here, and a method class registers
itself by being defined (see :mod:`vmtlib.methods.base`): adding a method is one
new file. ``METHODS`` maps each id to a one-line description, in the order of
VMT-Adapter's Table 2 and Polyhistor's Table 1 (each class's ``table_row``);
``get_method_class`` and ``make_config`` turn an id and its hyper-parameters
into a method class and its config (``vmtlib.build_model`` does both).
"""

from __future__ import annotations

import importlib
import pkgutil

from vmtlib.methods.base import (
    Method,
    get_method_class,
    make_config,
    registered_methods,
)

FRAMEWORK_MODULES = ("base", "layers")  # the framework itself, no methods
METHOD_MODULES: tuple[str, ...] = tuple(
    info.name for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name)
    if info.name not in FRAMEWORK_MODULES
)
for _name in METHOD_MODULES:
    importlib.import_module(f"{__name__}.{_name}")

# The papers' table order, derived from each class's ``table_row``; new ids without one go last.
TABLE_ORDER: tuple[str, ...] = tuple(registered_methods())

METHODS: dict[str, str] = {mid: cls.description for mid, cls in registered_methods().items()}


__all__ = ["METHODS", "TABLE_ORDER", "Method", "get_method_class", "make_config"]
