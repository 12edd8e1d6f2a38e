"""Make the spoken digits the audio CAPTCHA uses for a language (resources/sounds/<lang>/<digit>/*.wav).

The captcha package ships English voices only. This renders each digit with
espeak-ng (Debian package espeak-ng; a developer tool, not a runtime
dependency) in two voices and converts it to the package's format: 8 kHz,
8-bit unsigned, mono. Run once per language and commit the files:

    .venv/bin/python installer/dev/captcha-voices.py de
"""

from __future__ import annotations

import audioop  # deprecated in 3.13; a developer tool run on 3.11, replace when moving on
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

WORDS = {
    "de": ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"],
}
VOICES = ["", "+f3"]  # a male and a female variant: the CAPTCHA picks one per digit at random
ROOT = Path(__file__).resolve().parents[2] / "resources" / "sounds"


def convert(src: Path, dst: Path) -> None:
    with wave.open(str(src)) as w:
        frames, width = w.readframes(w.getnframes()), w.getsampwidth()
        rate, channels = w.getframerate(), w.getnchannels()
    if channels == 2:
        frames = audioop.tomono(frames, width, 0.5, 0.5)
    frames, _ = audioop.ratecv(frames, width, 1, rate, 8000, None)
    frames = audioop.bias(audioop.lin2lin(frames, width, 1), 1, 128)  # 8-bit WAV samples are unsigned
    with wave.open(str(dst), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(8000)
        out.writeframes(frames)


def main(lang: str) -> None:
    words = WORDS.get(lang)
    if words is None:
        sys.exit(f"captcha-voices: no digit words for {lang!r}; add them to WORDS")
    with tempfile.TemporaryDirectory() as tmp:
        for digit, word in enumerate(words):
            target = ROOT / lang / str(digit)
            target.mkdir(parents=True, exist_ok=True)
            for i, variant in enumerate(VOICES):
                raw = Path(tmp) / f"{digit}-{i}.wav"
                subprocess.run(["espeak-ng", "-v", lang + variant, "-s", "140", "-w", str(raw), word], check=True)
                convert(raw, target / f"espeak-{i}.wav")
    print(f"captcha-voices: wrote {len(words) * len(VOICES)} files under {ROOT / lang}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "de")
