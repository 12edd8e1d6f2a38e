"""The verdict colours stay apart for people with deuteranopia and protanopia, read in dark mode, and every
verdict has a colour and its own glyph (issue 17 item 4)."""

from __future__ import annotations

import itertools
import math
from importlib.resources import files

import pytest

from sendergate.desktop import verdicts
from sendergate.policy.decide import Verdict

# Machado, Oliveira & Fernandes (2009), severity 1.0, applied to linear sRGB
MACHADO = {
    "deuteranopia": ((0.367322, 0.860646, -0.227968), (0.280085, 0.672501, 0.047413),
                     (-0.011820, 0.042940, 0.968881)),
    "protanopia": ((0.152286, 1.052583, -0.204868), (0.114503, 0.786281, 0.099216),
                   (-0.003882, -0.048116, 1.051998)),
}
MIN_DELTA_E = 7.0  # CIEDE2000 between any two verdicts, in each vision; ~2.3 is "just noticeable"
DARK_WINDOW, LIGHT_WINDOW = "#2d2d2d", "#ffffff"


def _linear(hex_colour: str) -> list[float]:
    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    return [lin(int(hex_colour[i:i + 2], 16) / 255) for i in (1, 3, 5)]


def simulate(hex_colour: str, vision: str) -> list[float]:
    rgb = _linear(hex_colour)
    if vision == "normal":
        return rgb
    m = MACHADO[vision]
    return [min(1.0, max(0.0, sum(m[r][k] * rgb[k] for k in range(3)))) for r in range(3)]


def lab(rgb: list[float]) -> tuple[float, float, float]:
    x = 0.4124 * rgb[0] + 0.3576 * rgb[1] + 0.1805 * rgb[2]
    y = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
    z = 0.0193 * rgb[0] + 0.1192 * rgb[1] + 0.9505 * rgb[2]

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 216 / 24389 else (24389 / 27 * t + 16) / 116
    fx, fy, fz = f(x / 0.95047), f(y), f(z / 1.08883)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def ciede2000(c1: tuple[float, float, float], c2: tuple[float, float, float]) -> float:
    (l1, a1, b1), (l2, a2, b2) = c1, c2
    cb = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(cb ** 7 / (cb ** 7 + 25 ** 7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1, h2 = math.degrees(math.atan2(b1, a1p)) % 360, math.degrees(math.atan2(b2, a2p)) % 360
    dh = 0.0 if c1p * c2p == 0 else (h2 - h1 if abs(h2 - h1) <= 180 else
                                     (h2 - h1 - 360 if h2 - h1 > 180 else h2 - h1 + 360))
    d_l, d_c = l2 - l1, c2p - c1p
    d_h = 2 * math.sqrt(c1p * c2p) * math.sin(math.radians(dh / 2))
    lb, cbp = (l1 + l2) / 2, (c1p + c2p) / 2
    if c1p * c2p == 0:
        hb = h1 + h2
    elif abs(h1 - h2) <= 180:
        hb = (h1 + h2) / 2
    else:
        hb = (h1 + h2 + 360) / 2 if h1 + h2 < 360 else (h1 + h2 - 360) / 2
    t = (1 - 0.17 * math.cos(math.radians(hb - 30)) + 0.24 * math.cos(math.radians(2 * hb))
         + 0.32 * math.cos(math.radians(3 * hb + 6)) - 0.20 * math.cos(math.radians(4 * hb - 63)))
    rc = 2 * math.sqrt(cbp ** 7 / (cbp ** 7 + 25 ** 7))
    sl = 1 + 0.015 * (lb - 50) ** 2 / math.sqrt(20 + (lb - 50) ** 2)
    sc, sh = 1 + 0.045 * cbp, 1 + 0.015 * cbp * t
    rt = -math.sin(math.radians(2 * 30 * math.exp(-((hb - 275) / 25) ** 2))) * rc
    return math.sqrt((d_l / sl) ** 2 + (d_c / sc) ** 2 + (d_h / sh) ** 2 + rt * (d_c / sc) * (d_h / sh))


def closest_pair(palette: dict[str, str], vision: str) -> tuple[float, str, str]:
    return min((ciede2000(lab(simulate(palette[a], vision)), lab(simulate(palette[b], vision))), a, b)
               for a, b in itertools.combinations(sorted(palette), 2))


def test_the_metric_is_the_published_one():
    # CIEDE2000 reference pair 1 of Sharma, Wu & Dalal (2005): 2.0425
    assert ciede2000((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485)) == pytest.approx(2.0425, abs=1e-4)


def test_every_verdict_has_a_colour_and_a_glyph():
    wanted = {v.value for v in Verdict} | {"confirmed", "approved", "denied"}
    assert wanted <= set(verdicts.PALETTE)
    assert wanted <= set(verdicts.ALL)
    icons = files("sendergate.resources") / "icons"
    sources = {v: (icons / f"verdict-{v}.svg").read_text(encoding="utf-8") for v in wanted}
    assert len(set(sources.values())) == len(wanted), "two verdicts share a glyph"


@pytest.mark.parametrize("vision", ["normal", "deuteranopia", "protanopia"])
def test_colours_stay_apart(vision):
    distance, a, b = closest_pair(verdicts.PALETTE, vision)
    assert distance >= MIN_DELTA_E, f"{a} and {b} look alike in {vision}: ΔE2000 {distance:.1f}"


def test_the_old_chart_colours_fail_the_check():
    """What the issue reported (amber/orange/red/brown): the check above must reject it."""
    old = {"delivered": "#2e7d32", "screened": "#0288d1", "challenged": "#f9a825", "bulk": "#8e24aa",
           "virus": "#b71c1c", "spam": "#e64a19", "blocked": "#5d4037", "relay_denied": "#546e7a",
           "unknown_recipient": "#90a4ae", "tempfail": "#c0ca33", "observed": "#00897b"}
    assert min(closest_pair(old, v)[0] for v in MACHADO) < MIN_DELTA_E


def test_readable_in_dark_and_light_mode():
    for verdict, hex_colour in verdicts.PALETTE.items():
        # chart bars and discs against the window (WCAG 1.4.11 asks 3:1 of graphics; the disc's rim and the
        # glyph carry the rest, so the floor for the fill itself is lower)
        assert verdicts.contrast(hex_colour, DARK_WINDOW) >= 2.5, verdict
        assert verdicts.contrast(hex_colour, LIGHT_WINDOW) >= 1.4, verdict
        # the glyph on the disc reads like text
        assert verdicts.contrast(hex_colour, verdicts.ink(verdict)) >= 4.5, verdict


def test_icons_render_in_the_verdict_colour(qapp):
    for verdict in verdicts.ALL:
        image = verdicts.render(verdict, 32).toImage()
        assert image.pixelColor(16, 4).name().lower() == verdicts.colour_hex(verdict).lower(), verdict
