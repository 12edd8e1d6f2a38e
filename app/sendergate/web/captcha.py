"""The confirmation page's CAPTCHA: answers drawn at random, pictures and sounds made locally.

A CAPTCHA is a row of the store's `captchas` table (one per challenge): a
random answer, the nonce that names it in the form, and its one rendering.
Every new form draws a new answer and replaces the previous CAPTCHA; any
answer checked retires it. So a picture is never rendered twice for one
answer (no voting across renderings), and each answer is single-use and
bound to its challenge on every node that shares the store.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import wave
from importlib import resources
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from captcha.audio import AudioCaptcha

ANSWER_LENGTH = 6
_NONCE = re.compile(r"^[A-Za-z0-9_-]{22}$")


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def nonce_ok(text: str) -> bool:
    return bool(_NONCE.match(text or ""))


def new_answer() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(ANSWER_LENGTH))


def answer_matches(expected: str, typed: str) -> bool:
    """People type spaces, dashes and look-alike letters; only the digits count."""
    cleaned = typed.strip().upper().translate(str.maketrans("OIL", "011"))
    cleaned = "".join(c for c in cleaned if not c.isspace() and c not in "-.")
    return hmac.compare_digest(cleaned.encode("ascii", "replace"), expected.encode())


def csrf_value(secret: str, cookie: str, token: str, issued: int) -> str:
    """The form's CSRF field: ties the form to the browser's cookie and to this link, with its age."""
    mac = hmac.new(secret.encode(), f"csrf\0{cookie}\0{token}\0{issued}".encode(), hashlib.sha256).hexdigest()
    return f"{issued}.{mac[:32]}"


def csrf_ok(secret: str, cookie: str, token: str, value: str, *, now: float, max_age: float) -> bool:
    issued_s, _, _ = (value or "").partition(".")
    if not cookie or not issued_s.isdigit():
        return False
    issued = int(issued_s)
    if not (now - max_age <= issued <= now + 60):
        return False
    return hmac.compare_digest(csrf_value(secret, cookie, token, issued), value)


def render_png(answer: str) -> bytes:
    from captcha.image import ImageCaptcha

    # A wider picture than the package default keeps six digits readable on a phone.
    return ImageCaptcha(width=280, height=90, font_sizes=(54, 62, 70)).generate(answer, format="png").getvalue()


_VOICES: dict[str, AudioCaptcha] = {}


def voice_dir(lang: str) -> Path | None:
    """Spoken digits for a language shipped under resources/sounds/<lang>/, or None (the package's English)."""
    candidate = resources.files("sendergate.resources") / "sounds" / lang
    path = Path(str(candidate))
    return path if path.is_dir() and (path / "0").is_dir() else None


def render_wav(answer: str, lang: str = "en") -> bytes:
    from captcha.audio import AudioCaptcha

    key = lang if voice_dir(lang) is not None else "en"
    engine = _VOICES.get(key)
    if engine is None:
        vdir = voice_dir(key)
        engine = AudioCaptcha(voicedir=str(vdir)) if vdir is not None else AudioCaptcha()
        _VOICES[key] = engine
    return bytes(engine.generate(answer))


def wav_seconds(data: bytes) -> float:
    with wave.open(BytesIO(data)) as w:
        return float(w.getnframes() / w.getframerate())
