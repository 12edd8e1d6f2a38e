"""The container files (Dockerfile, compose.yaml, installer/container/) read against the code.

This machine has a Docker client but no engine and no image registry, so no image is built or run
here. What can be checked without one is: the ports, paths, user, healthcheck and command in the
Dockerfile and compose.yaml agree with the container's sample configuration and the CLI; the files
the Dockerfile copies build the package; the healthcheck command works against a real gateway; the
rspamd and spamd images' configuration and command line are accepted by Debian's own rspamd and
spamd (the packages those images install)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from sendergate import cli
from sendergate import config as sg_config
from tests.support.common import free_loopback_port, kill_and_wait, make_service_dir, remove_service_dir
from tests.support.gateway import GatewayProcess

REPO = Path(__file__).resolve().parent.parent
CONTAINER = REPO / "installer" / "container"
SAMPLE = CONTAINER / "sendergate.toml"


# -- reading the files --------------------------------------------------------------------------

def dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments dropped, continuation lines joined."""
    kept = "\n".join(ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#"))
    text = re.sub(r"\\\n", " ", kept)
    out = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def exec_form(args: str) -> list[str]:
    import json
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in stage:
        if word == "ENV":
            for part in shlex.split(args):
                key, _, value = part.partition("=")
                env[key] = value
    return env


def one(stage: list[tuple[str, str]], word: str) -> str:
    found = [args for w, args in stage if w == word]
    assert len(found) == 1, (word, found)
    return found[0]


@pytest.fixture(scope="module")
def sample() -> sg_config.Config:
    return sg_config.load(SAMPLE)


@pytest.fixture(scope="module")
def gateway_image() -> list[tuple[str, str]]:
    return dockerfile(REPO / "Dockerfile")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def state_dir(cfg: sg_config.Config) -> str:
    m = re.match(r"sqlite:/{3,4}(/.*)$", cfg.store.url)
    assert m, cfg.store.url
    return os.path.dirname(m.group(1) if m.group(1).startswith("/") else "/" + m.group(1))


def ports(cfg: sg_config.Config) -> tuple[int, int]:
    (smtp,) = cfg.smtp.listen
    return smtp[1], cfg.http.listen[1]


# -- the gateway image --------------------------------------------------------------------------

def test_sample_config_is_valid_and_listens_on_all_interfaces(sample: sg_config.Config) -> None:
    assert [host for host, _ in sample.smtp.listen] == ["0.0.0.0"] and sample.http.listen[0] == "0.0.0.0"
    smtp, http = ports(sample)
    assert smtp >= 1024, "the gateway runs unprivileged in the container: no port below 1024"
    assert sample.scan.clamd and sample.scan.rspamd and not sample.scan.spamd


def test_image_is_slim_debian_python_and_runs_unprivileged(gateway_image) -> None:
    args = {k: v for k, _, v in (a.partition("=") for w, a in gateway_image if w == "ARG")}
    assert re.fullmatch(r"python:3\.1[1-9]-slim-(bookworm|trixie)", args["PYTHON_IMAGE"]), args
    assert [a for w, a in gateway_image if w == "FROM"] == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    stage = final_stage(gateway_image)
    assert one(stage, "USER") == "sendergate"
    run = " ".join(a for w, a in stage if w == "RUN")
    assert "useradd --system" in run and "--shell /usr/sbin/nologin sendergate" in run


def test_exposed_ports_are_the_sample_configs(gateway_image, sample: sg_config.Config) -> None:
    exposed = {int(p) for p in one(final_stage(gateway_image), "EXPOSE").split()}
    assert exposed == set(ports(sample))


def test_config_and_state_are_volumes_at_the_paths_the_code_uses(gateway_image, sample: sg_config.Config) -> None:
    stage = final_stage(gateway_image)
    env = env_of(stage)
    volumes = set(exec_form(one(stage, "VOLUME")))
    config_path = env["SENDERGATE_CONFIG"]
    assert config_path == cli.DEFAULT_CONFIG  # the same path as the package's default and the unit's
    assert volumes == {os.path.dirname(config_path), state_dir(sample)}
    copies = [a.split() for w, a in stage if w == "COPY" and not a.startswith("--from")]
    assert ["installer/container/sendergate.toml", config_path] in copies
    assert one(stage, "WORKDIR") == state_dir(sample)
    # The metrics directory the workers share exists and belongs to the gateway's user.
    run = " ".join(a for w, a in stage if w == "RUN")
    assert f"install -d -o sendergate -g sendergate -m 0750 {state_dir(sample)} {env['SENDERGATE_METRICS_DIR']}" in run


def test_entry_point_is_the_gateway_command(gateway_image) -> None:
    stage = final_stage(gateway_image)
    command = exec_form(one(stage, "ENTRYPOINT")) + exec_form(one(stage, "CMD"))
    assert command[0] == "sendergate"
    env = env_of(stage)
    assert "/opt/sendergate/bin" in env["PATH"].split(":")
    os.environ["SENDERGATE_CONFIG"], saved = env["SENDERGATE_CONFIG"], os.environ.get("SENDERGATE_CONFIG")
    try:
        args = cli.build_parser().parse_args(command[1:])
    finally:
        if saved is None:
            del os.environ["SENDERGATE_CONFIG"]
        else:
            os.environ["SENDERGATE_CONFIG"] = saved
    assert args.func is cli.cmd_gateway and args.config == env["SENDERGATE_CONFIG"]
    assert one(stage, "STOPSIGNAL") == "SIGTERM"


def test_healthcheck_asks_healthz_at_the_configured_listener(gateway_image, sample: sg_config.Config) -> None:
    check = one(final_stage(gateway_image), "HEALTHCHECK")
    options, _, cmd = check.partition(" CMD ")
    command = exec_form(cmd)
    args = cli.build_parser().parse_args(command[1:] + ["--config", str(SAMPLE)])
    assert command[0] == "sendergate" and args.func is cli.cmd_health
    found = re.search(r"--timeout=(\d+)s", options)
    assert found, options
    timeout = float(found.group(1))
    assert args.timeout < timeout  # the command gives up before Docker kills it
    assert cli.health_url(sample) == f"http://127.0.0.1:{ports(sample)[1]}/healthz"


def test_the_files_the_image_copies_build_the_package(gateway_image, tmp_path: Path) -> None:
    """The build stage's COPY lines, replayed into an empty directory, then built as the image's
    `pip install /src` would (offline here: --no-deps --no-build-isolation)."""
    starts = [i for i, (w, _) in enumerate(gateway_image) if w == "FROM"]
    build = gateway_image[starts[0]:starts[1]]
    assert "COPY" in [w for w, _ in build]
    src = tmp_path / "src"
    src.mkdir()
    lines = (REPO / ".dockerignore").read_text().splitlines()
    ignored = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    for word, args in build:
        if word != "COPY":
            continue
        *sources, dest = args.split()
        into = src / dest.strip("./") if dest.strip("./") else src
        for s in sources:
            assert s.rstrip("/") not in ignored, f"{s} is excluded by .dockerignore"
            origin = REPO / s.rstrip("/")
            if origin.is_dir():
                shutil.copytree(origin, into, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
            else:
                into.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, into / origin.name)
    out = tmp_path / "wheel"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                        "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    (wheel,) = out.glob("sendergate-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("sendergate/resources/web/") for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "sendergate = sendergate.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


# -- compose.yaml -------------------------------------------------------------------------------

def test_compose_services_and_profiles(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"sendergate", "clamd", "rspamd", "postgres"}
    assert services["postgres"]["profiles"] == ["postgres"]
    assert "postgres" not in services["sendergate"].get("depends_on", [])  # the default store is SQLite
    text = (REPO / "compose.yaml").read_text()
    assert "#   build: installer/container/spamd" in text  # spamd: the commented alternative
    for name, service in services.items():
        if "build" in service:
            context = REPO / service["build"]
            assert (context / "Dockerfile").is_file(), name
        else:
            assert re.search(r"debian|bookworm", service["image"]), f"{name}: a Debian-based image"


def test_compose_publishes_the_gateways_ports(compose: dict, sample: sg_config.Config) -> None:
    smtp, http = ports(sample)
    assert compose["services"]["sendergate"]["ports"] == [f"25:{smtp}", f"{http}:{http}"]


def test_compose_mounts_config_and_state_where_the_image_reads_them(compose: dict, gateway_image,
                                                                   sample: sg_config.Config) -> None:
    env = env_of(final_stage(gateway_image))
    volumes = compose["services"]["sendergate"]["volumes"]
    config_mount, state_mount = volumes
    source, target, mode = config_mount.rsplit(":", 2)
    assert (target, mode) == (env["SENDERGATE_CONFIG"], "ro")
    default = re.fullmatch(r"\$\{SENDERGATE_CONFIG_FILE:-(.+)\}", source)
    assert default and (REPO / default.group(1)).resolve() == SAMPLE
    name, target = state_mount.split(":")
    assert target == state_dir(sample) and name in compose["volumes"]
    # SIGTERM lets open transactions finish (60 s); compose must wait longer before SIGKILL.
    assert compose["services"]["sendergate"]["stop_grace_period"] == "75s"


def test_scanner_addresses_in_the_sample_are_compose_services(compose: dict, sample: sg_config.Config) -> None:
    assert sg_config.parse_socket_spec(sample.scan.clamd) == ("tcp", ("clamd", 3310))
    assert "clamd" in compose["services"]
    kind, where = sg_config.parse_rspamd_url(sample.scan.rspamd)
    assert kind == "tcp" and isinstance(where, tuple)
    host, port = where
    assert host in compose["services"]
    rspamd_image = dockerfile(CONTAINER / "rspamd" / "Dockerfile")
    assert one(rspamd_image, "EXPOSE") == str(port)
    spamd_line = re.search(r'^# spamd = "(tcp:[^"]+)"', SAMPLE.read_text(), re.M)
    assert spamd_line and sg_config.parse_socket_spec(spamd_line.group(1))[1] == ("spamd", 783)
    assert one(dockerfile(CONTAINER / "spamd" / "Dockerfile"), "EXPOSE") == "783"


# -- the scanners' images, checked with the Debian packages they install ----------------------

def test_rspamd_image_config_is_accepted_by_debians_rspamd() -> None:
    """The image's local.d/override.d on top of Debian's /etc/rspamd, as the image lays them out."""
    local = Path(tempfile.mkdtemp(prefix="sendergate-rspamd-image-"))
    try:
        for part in ("local.d", "override.d"):
            shutil.copytree(CONTAINER / "rspamd" / part, local / part)
        base = ["rspamadm", f"--var=LOCAL_CONFDIR={local}"]
        test = subprocess.run(base + ["configtest", "-c", "/etc/rspamd/rspamd.conf"], capture_output=True,
                              text=True, timeout=120)
        assert test.returncode == 0 and "syntax OK" in test.stdout, test.stdout + test.stderr
        workers = subprocess.run(base + ["configdump", "-c", "/etc/rspamd/rspamd.conf", "worker"],
                                 capture_output=True, text=True, timeout=120).stdout
        normal = workers[workers.index("normal {"):workers.index("}", workers.index("normal {"))]
        assert 'bind_socket = "*:11333";' in normal, normal
        logging = subprocess.run(base + ["configdump", "-c", "/etc/rspamd/rspamd.conf", "logging"],
                                 capture_output=True, text=True, timeout=120).stdout
        assert 'type = "console";' in logging
    finally:
        shutil.rmtree(local, ignore_errors=True)
    cmd = exec_form(one(dockerfile(CONTAINER / "rspamd" / "Dockerfile"), "CMD"))
    assert cmd == ["rspamd", "-f", "-u", "_rspamd", "-g", "_rspamd"]
    run = subprocess.run(["getent", "passwd", "_rspamd"], capture_output=True, text=True)
    assert run.returncode == 0, "Debian's rspamd package creates _rspamd"


def test_spamd_image_command_line_is_accepted_by_debians_spamd() -> None:
    """The image's CMD, run here with its listener moved to a free loopback port: spamd answers PING."""
    cmd = exec_form(one(dockerfile(CONTAINER / "spamd" / "Dockerfile"), "CMD"))
    assert cmd[0] == "spamd" and "--listen=0.0.0.0:783" in cmd
    port = free_loopback_port()
    directory = make_service_dir("sendergate-spamd-image-")
    argv = ["/usr/sbin/" + cmd[0]] + [f"--listen=127.0.0.1:{port}" if a.startswith("--listen=") else a
                                      for a in cmd[1:]] + ["-r", str(directory / "spamd.pid")]
    with open(directory / "spamd.out", "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        answer = b""
        while time.monotonic() < deadline and b"PONG" not in answer:
            assert proc.poll() is None, (directory / "spamd.out").read_text()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    s.sendall(b"PING SPAMC/1.5\r\n\r\n")
                    answer = s.recv(100)
            except OSError:
                time.sleep(0.2)
        assert b"PONG" in answer, (directory / "spamd.out").read_text()
    finally:
        kill_and_wait(proc.pid)
        proc.wait(10)
        remove_service_dir(directory)


# -- `sendergate health`, the HEALTHCHECK, against a real gateway ------------------------------

def health(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sendergate", "health", "--config", str(config), "--timeout", "5"],
                          capture_output=True, text=True, timeout=60)


def test_health_command_against_a_real_gateway() -> None:
    g = GatewayProcess(extra={"http": {"listen": f"0.0.0.0:{free_loopback_port()}"}}).start()
    try:
        ok = health(g.config_path)
        assert ok.returncode == 0 and '"status":"ok"' in ok.stdout.replace(" ", ""), ok.stdout + ok.stderr
    finally:
        g.close()
    degraded = GatewayProcess(extra={"scan": {"rspamd": "http://127.0.0.1:9", "timeout": "2s"}}).start()
    try:
        r = health(degraded.config_path)
        assert r.returncode == 1 and '"rspamd":"unavailable"' in r.stdout.replace(" ", ""), r.stdout + r.stderr
        degraded.stop()
        gone = health(degraded.config_path)
        assert gone.returncode == 1 and "Connection refused" in gone.stderr and "Traceback" not in gone.stderr
    finally:
        degraded.close()
