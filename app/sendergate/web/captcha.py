"""The confirmation page's CAPTCHA: answers derived from a server secret, pictures and sounds made locally.

Nothing about a CAPTCHA is stored. Its answer is an HMAC of the server
secret, the link token and a nonce that names the challenge's *generation*
(its `confirm_failures` count when the picture was issued). Every node that
shares the store computes the same answer, and a CAPTCHA stops working as soon
as any answer for its challenge is checked: a wrong one bumps the generation,
a right one confirms the challenge. That makes each answer single-use and bound
to its token without a table of issued CAPTCHAs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import wave
from dataclasses import dataclass
from importlib import resources
from io import BytesIO
from pathlib import Path

ANSWER_LENGTH = 6
_NONCE = re.compile(r"^(\d{1,9})-([A-Za-z0-9_-]{16})$")


@dataclass(frozen=True, slots=True)
class Nonce:
    generation: int  # the challenge's confirm_failures when the CAPTCHA was issued
    text: str


def new_nonce(generation: int) -> Nonce:
    rand = base64.urlsafe_b64encode(secrets.token_bytes(12)).decode()
    return Nonce(generation, f"{generation}-{rand}")


def parse_nonce(text: str) -> Nonce | None:
    m = _NONCE.match(text or "")
    return Nonce(int(m.group(1)), text) if m else None


def answer_for(secret: str, token: str, nonce: Nonce) -> str:
    """The digits a CAPTCHA shows: unpredictable without the secret, fixed for (token, nonce)."""
    mac = hmac.new(secret.encode(), f"captcha\0{token}\0{nonce.text}".encode(), hashlib.sha256).digest()
    number = int.from_bytes(mac[:8], "big") % 10**ANSWER_LENGTH
    return f"{number:0{ANSWER_LENGTH}d}"


def answer_matches(expected: str, typed: str) -> bool:
    """People type spaces, dashes and look-alike letters; only the digits count."""
    cleaned = typed.strip().upper().translate(str.maketrans({"O": "0", "I": "1", "L": "1"}))
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


_VOICES: dict[str, object] = {}


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
    return bytes(engine.generate(answer))  # type: ignore[attr-defined]


def wav_seconds(data: bytes) -> float:
    with wave.open(BytesIO(data)) as w:
        return w.getnframes() / w.getframerate()
