"""Render the app icon (resources/icons/app.svg) to PNG sizes with Qt's SVG renderer and pack them as the
Windows .ico and the macOS .icns the installers need. Generated at build time, never committed.

    python installer/desktop/make_icons.py OUT_DIR
    -> OUT_DIR/sendergate.ico, OUT_DIR/sendergate.icns, OUT_DIR/png/sendergate-<size>.png

Both containers are written here rather than by an image library: each is a short header and a table
of PNG images (PNG entries are valid in .ico since Windows Vista and in .icns since macOS 10.7).
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
from collections.abc import Mapping
from pathlib import Path

SVG = Path(__file__).resolve().parents[2] / "resources" / "icons" / "app.svg"

ICO_SIZES = (16, 20, 24, 32, 40, 48, 64, 128, 256)
# icns element types holding PNG data, by the pixel size they hold (2x types are the Retina variants)
ICNS_TYPES: tuple[tuple[bytes, int], ...] = (
    (b"ic07", 128), (b"ic08", 256), (b"ic09", 512), (b"ic10", 1024),
    (b"ic11", 32), (b"ic12", 64), (b"ic13", 256), (b"ic14", 512),
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def ico_container(pngs: Mapping[int, bytes]) -> bytes:
    """An .ico holding one PNG per size (ICONDIR, one ICONDIRENTRY each, then the images)."""
    sizes = sorted(pngs)
    offset = 6 + 16 * len(sizes)
    header = struct.pack("<HHH", 0, 1, len(sizes))
    entries, images = b"", b""
    for size in sizes:
        if not 1 <= size <= 256:
            raise ValueError(f"an .ico image is 1..256 pixels wide, not {size}")
        data = pngs[size]
        side = 0 if size == 256 else size  # 0 means 256 in the one-byte fields
        entries += struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(data), offset + len(images))
        images += data
    return header + entries + images


def icns_container(pngs: Mapping[int, bytes]) -> bytes:
    """An .icns with the PNG element types; every size in ICNS_TYPES must be given."""
    body = b""
    for kind, size in ICNS_TYPES:
        data = pngs[size]
        body += kind + struct.pack(">I", 8 + len(data)) + data
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def render_pngs(svg: bytes, sizes: set[int]) -> dict[int, bytes]:
    """PNG bytes of the SVG at each size (square, transparent background)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # a build machine needs no display
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRectF, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])  # noqa: F841  (kept alive while painting)
    renderer = QSvgRenderer(QByteArray(svg))
    if not renderer.isValid():
        raise ValueError("the app icon SVG cannot be read")
    out: dict[int, bytes] = {}
    for size in sorted(sizes):
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        renderer.render(painter, QRectF(0, 0, size, size))
        painter.end()
        buffer = QBuffer()
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        if not image.save(buffer, "PNG"):
            raise RuntimeError(f"Qt could not encode the {size}px icon as PNG")
        out[size] = bytes(buffer.data())
    return out


def make_icons(out_dir: Path, svg_path: Path = SVG) -> dict[str, Path]:
    """Write the .ico, .icns and PNGs into out_dir; returns their paths by kind."""
    pngs = render_pngs(svg_path.read_bytes(), set(ICO_SIZES) | {size for _, size in ICNS_TYPES})
    (out_dir / "png").mkdir(parents=True, exist_ok=True)
    for size, data in pngs.items():
        (out_dir / "png" / f"sendergate-{size}.png").write_bytes(data)
    ico = out_dir / "sendergate.ico"
    ico.write_bytes(ico_container({s: pngs[s] for s in ICO_SIZES}))
    icns = out_dir / "sendergate.icns"
    icns.write_bytes(icns_container(pngs))
    return {"ico": ico, "icns": icns, "png": out_dir / "png" / "sendergate-256.png"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Render the app icon to .ico, .icns and PNGs.")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--svg", type=Path, default=SVG)
    args = p.parse_args(argv)
    if not args.svg.is_file():
        print(f"make_icons: no icon source at {args.svg}", file=sys.stderr)
        return 2
    for kind, path in make_icons(args.out_dir, args.svg).items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
