"""The desktop app (SPEC §7). Importing it applies the interpreter settings it needs (interpreter.py)."""

from .interpreter import prepare as _prepare_interpreter

_prepare_interpreter()
