"""Sub-commands of ``python -m vmtlib`` that live in their own modules.

Each module has ``add_parser(subparsers)``, which registers the command and sets
``func`` to its handler (``handler(args) -> exit code``); ``vmtlib.__main__``
calls it. The work itself is in the library (``vmtlib.adapter_file``,
``vmtlib.predict``, ``vmtlib.data.check``); these modules only parse flags.
"""
