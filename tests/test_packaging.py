"""The desktop app's packaging (SPEC §8, issue 9): the PyInstaller spec builds a Linux bundle, which starts
without a display (--version) and, offscreen, connects to a real gateway with keyring's backends and the
translations inside the bundle. The Windows and macOS installers are built by .ci/desktop-release.yml from
the same spec; their icon containers are checked here.

The build takes ~30-40 s on 2 cores (measured: see resources/docs/installing-desktop.md).
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from sendergate import __version__
from tests.support.bundle import ADDRESS, bundle_executable, isolated_env, keyring_session_command, smoke_run
from tests.support.gateway import GatewayProcess

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "installer" / "desktop"))
import make_icons  # noqa: E402

pytestmark = pytest.mark.slow  # builds the desktop bundle with PyInstaller

KEYRING_BACKENDS = {"KWallet", "SecretService", "Windows", "chainer", "libsecret", "macOS"}
MAX_BUNDLE_MB = 260  # measured 211 MB; WebEngine or QML sneaking in would add 20-200 MB


# -- icons: an independent reader (Pillow) must see every size we packed --

def test_ico_and_icns_hold_every_size_as_png(tmp_path: Path) -> None:
    paths = make_icons.make_icons(tmp_path)
    ico = Image.open(paths["ico"])
    assert ico.format == "ICO"
    assert sorted(ico.info["sizes"]) == [(s, s) for s in make_icons.ICO_SIZES]
    icns = Image.open(paths["icns"])
    assert icns.format == "ICNS" and icns.size == (1024, 1024)
    data = paths["icns"].read_bytes()
    assert data[:4] == b"icns" and struct.unpack(">I", data[4:8])[0] == len(data)
    kinds, offset = [], 8
    while offset < len(data):
        kind, length = data[offset:offset + 4], struct.unpack(">I", data[offset + 4:offset + 8])[0]
        assert data[offset + 8:offset + 16] == make_icons.PNG_MAGIC, kind
        kinds.append(kind)
        offset += length
    assert offset == len(data) and kinds == [k for k, _ in make_icons.ICNS_TYPES]
    # the 256 px image really is the shield: opaque blue at its rim, transparent in the corner
    png = Image.open(io.BytesIO((tmp_path / "png" / "sendergate-256.png").read_bytes())).convert("RGBA")
    assert png.getpixel((0, 0))[3] == 0
    r, g, b, a = png.getpixel((128, 20))
    assert a == 255 and b > r and b > g


def test_ico_container_rejects_an_image_too_large_for_it() -> None:
    with pytest.raises(ValueError, match="1..256"):
        make_icons.ico_container({512: make_icons.PNG_MAGIC})


# -- the Linux bundle, built once for this module --

@dataclass(frozen=True)
class Bundle:
    dist: Path
    executable: Path
    build_seconds: float
    size_mb: float


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


@pytest.fixture(scope="module")
def bundle() -> Iterator[Bundle]:
    where = Path(tempfile.mkdtemp(prefix="sendergate-bundle-"))
    started = time.monotonic()
    built = subprocess.run(["bash", str(ROOT / "installer" / "desktop" / "linux" / "build.sh"),
                            str(where / "dist"), str(where / "work")],
                           env={**os.environ, "PYTHON": sys.executable}, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=280, check=False)
    seconds = time.monotonic() - started
    try:
        assert built.returncode == 0, f"the bundle did not build:\n{built.stdout[-4000:]}"
        executable = bundle_executable(where / "dist")
        result = Bundle(where / "dist", executable, seconds, folder_mb(where / "dist" / "sendergate-desktop"))
        print(f"\nLinux bundle: built in {seconds:.0f} s, {result.size_mb:.0f} MB")
        yield result
    finally:
        shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sendergate-smoke-home-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[GatewayProcess, str]]:
    g = GatewayProcess()
    _, token = g.store.add_user(ADDRESS, name="Smoke Test")
    g.start()
    try:
        yield g, token
    finally:
        g.close()


def test_bundle_reports_its_version_without_a_display(bundle: Bundle, home: Path) -> None:
    env = isolated_env(home)
    for name in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(name, None)  # no display at all: --version must not need one (Qt would abort)
    done = subprocess.run([str(bundle.executable), "--version"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, f"sendergate-desktop {__version__}"), done.stderr


def test_bundle_holds_resources_translations_and_keyring_metadata(bundle: Bundle) -> None:
    inside = bundle.dist / "sendergate-desktop" / "_internal"
    resources = inside / "sendergate" / "resources"
    shipped_icons = {p.name for p in (ROOT / "resources" / "icons").glob("*.svg")}
    assert {p.name for p in (resources / "icons").glob("*.svg")} == shipped_icons
    assert (resources / "i18n" / "sendergate_en.qm").read_bytes() == \
        (ROOT / "resources" / "i18n" / "sendergate_en.qm").read_bytes()  # English plural forms
    assert (resources / "i18n" / "sendergate_de.qm").read_bytes() == \
        (ROOT / "resources" / "i18n" / "sendergate_de.qm").read_bytes()
    entry_points = (inside / "keyring-25.7.0.dist-info" / "entry_points.txt").read_text()
    assert all(f"{name} = keyring.backends." in entry_points for name in KEYRING_BACKENDS)
    qt_libraries = {p.name.split(".so")[0] for p in (inside / "PySide6" / "Qt" / "lib").glob("libQt6*")}
    assert {"libQt6Core", "libQt6Widgets", "libQt6Svg", "libQt6Charts"} <= qt_libraries
    assert not {n for n in qt_libraries if n.startswith(("libQt6WebEngine", "libQt6Quick", "libQt6Qml", "libQt6Pdf"))}
    assert not (inside / "PIL").exists() and not (inside / "uvicorn").exists()  # gateway-only packages stay out
    assert bundle.size_mb < MAX_BUNDLE_MB, f"the bundle grew to {bundle.size_mb:.0f} MB"


def test_bundle_connects_to_a_real_gateway_with_the_keychain(bundle: Bundle, gateway: tuple[GatewayProcess, str],
                                                             home: Path) -> None:
    g, token = gateway
    started = time.monotonic()
    done = smoke_run(bundle.executable, g, token, home, prefix=keyring_session_command(home), language="de")
    seconds = time.monotonic() - started
    assert done.returncode == 0, f"smoke test failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}"
    report = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    # keyring found its backends through the bundled metadata and chose the Secret Service on this bus
    assert report["keyring backend"] == "keyring.backends.SecretService.Keyring"
    assert set(report["keyring entry points"].split(", ")) == KEYRING_BACKENDS
    assert report["keychain"] == "Secret Service (GNOME Keyring / KWallet), round trip ok"
    assert report["translation"] == "de (Beenden)"
    assert report["gateway"] == f"{g.http_url} as {ADDRESS}"
    assert report["live stream"] == "online"
    assert done.stdout.rstrip().endswith("smoke test passed")
    print(f"\nsmoke start of the bundle (D-Bus session, keyring, gateway, stream): {seconds:.1f} s")


def test_bundle_without_a_keychain_still_starts(bundle: Bundle, gateway: tuple[GatewayProcess, str],
                                                home: Path) -> None:
    """A bare Linux session (no D-Bus): keyring falls back to its fail backend; the app says so and runs."""
    g, token = gateway
    done = smoke_run(bundle.executable, g, token, home, language="en")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-3000:]}"
    assert "keychain: none usable (secrets would be kept for the session only)" in done.stdout
    assert "translation:" not in done.stdout


def test_smoke_test_fails_when_the_gateway_refuses_the_token(bundle: Bundle, gateway: tuple[GatewayProcess, str],
                                                            home: Path) -> None:
    g, _ = gateway
    done = smoke_run(bundle.executable, g, "not-a-token", home, language="en")
    assert done.returncode == 1, done.stdout
    assert "smoke test FAILED: the gateway refused" in done.stdout
