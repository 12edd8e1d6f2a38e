"""The check behind every copy of a library's internals (smtp/server.py: aiosmtpd; scan/spamd.py: aiospamc):
a copy is right for the version it was made from, so another version stops the gateway with one line."""

from __future__ import annotations


def version_problem(library: str, installed: str, made_from: str, copier: str) -> str:
    """"" when `installed` is the version `copier` copied from, else what to do about it."""
    if installed == made_from:
        return ""
    return (f"{library} {installed} is installed, but {copier} copies parts of {library} {made_from}: install "
            f"{library}=={made_from} (pyproject.toml pins it) or review the copies against the new version")
