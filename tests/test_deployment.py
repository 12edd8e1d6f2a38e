"""The gateway's deployment (installer/gateway/): both setups of SPEC §8 with a
real Postfix and Dovecot on loopback, and the install script.

- Behind Postfix: Postfix, configured from installer/gateway/postfix/*.snippet,
  keeps "port 25" and hands each session to a real gateway
  (smtpd_proxy_filter); the gateway delivers to Postfix's after-filter
  listener, which queues for Dovecot LMTP. Mail is read back over IMAP.
- Stand-alone: the gateway takes the client's mail and delivers to a Postfix
  behind it, which stores it in a Maildir.
- install.sh in --prefix mode: a fresh install, a re-run that keeps the
  configuration and the store and migrates an older store, a bad configuration.
- The systemd unit (systemd-analyze verify and security, offline), the sample
  configuration (every key, with its default) and the logrotate snippet.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import smtplib
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sendergate import config as sg_config
from tests.support.common import OWNER_FILE, free_loopback_port, make_service_dir, remove_service_dir
from tests.support.dovecot import DovecotServer
from tests.support.gateway import GatewayProcess
from tests.support.postfix import PostfixInstance

REPO = Path(__file__).resolve().parent.parent
GATEWAY_INSTALLER = REPO / "installer" / "gateway"
SNIPPETS = GATEWAY_INSTALLER / "postfix"
# The ports the snippets and the sample configuration use; tests put free ones in their place.
SNIPPET_GATEWAY_PORT = "127.0.0.1:10024"
SNIPPET_AFTER_FILTER_PORT = "127.0.0.1:10025"

MESSAGE = (b"From: Bob <bob@friend.example>\r\nTo: Alice <alice@example.org>\r\nSubject: Deployment test\r\n"
           b"Message-ID: <deploy-1@friend.example>\r\nDate: Thu, 26 Nov 2026 12:00:00 +0000\r\n\r\n"
           b"Through Postfix and SenderGate into the mailbox.\r\n")
# Long enough that the gateway puts the link on a line of its own: a multi-line reply that
# Postfix must pass on line by line.
BILINGUAL_REPLY = (
    "{recipient} accepts mail only from known senders. Confirm you are a person at {url} and send your "
    "message again. {recipient} nimmt nur Nachrichten von bekannten Absendern an. Bitte bestaetigen Sie "
    "unter {url}, dass Sie ein Mensch sind, und senden Sie Ihre Nachricht dann noch einmal. The link "
    "works for two weeks; after that, simply write again and you will get a new one. Der Link gilt zwei "
    "Wochen; danach schreiben Sie einfach noch einmal und erhalten einen neuen."
)
TOKEN = re.compile(rb"https://mx\.example\.org/c/([A-Za-z0-9_-]{22})\b")
STRANGER = (b"From: Mallory <stranger@elsewhere.test>\r\nTo: Alice <alice@example.org>\r\nSubject: Hello\r\n"
            b"Message-ID: <stranger-1@elsewhere.test>\r\n\r\nDo you know me?\r\n")


# -- the Postfix snippets, as an admin would paste them ---------------------------------------------

def snippet_main_cf() -> dict[str, str]:
    """main.cf.snippet's `name = value` lines."""
    parameters = {}
    for line in (SNIPPETS / "main.cf.snippet").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            parameters[name.strip()] = value.strip()
    return parameters


def snippet_master_cf() -> dict[str, list[str]]:
    """master.cf.snippet's entries: first line of each entry -> its lines (entry line and -o lines)."""
    entries: dict[str, list[str]] = {}
    current: list[str] = []
    for line in (SNIPPETS / "master.cf.snippet").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line[0].isspace():
            current.append(line)
        else:
            current = [line]
            entries[line.split()[0]] = current
    return entries


def options_of(entry: list[str]) -> dict[str, str]:
    return dict(line.strip()[len("-o "):].split("=", 1) for line in entry[1:])


def proxy_mx(gateway_port: int, after_filter_port: int, routes: dict[str, str]) -> PostfixInstance:
    """A receiving Postfix set up from the snippets: its public smtpd plays port 25."""
    entries = snippet_master_cf()
    public = options_of(entries["smtp"])
    assert public["smtpd_proxy_filter"] == SNIPPET_GATEWAY_PORT
    public["smtpd_proxy_filter"] = f"127.0.0.1:{gateway_port}"
    after_filter = [line.replace(SNIPPET_AFTER_FILTER_PORT, f"127.0.0.1:{after_filter_port}")
                    for line in entries[SNIPPET_AFTER_FILTER_PORT]]
    return PostfixInstance(
        routes=routes, hostname="mx.example.org", smtpd_options=public, master_cf=after_filter,
        main_cf={**snippet_main_cf(), "mynetworks": ""},  # an MX: nobody relays through port 25
    )


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotServer]:
    server = DovecotServer()
    server.add_user("alice@example.org", "secret")
    server.add_user("carol@example.org", "secret")
    yield server
    server.stop()


def imap_inbox(dovecot: DovecotServer, user: str) -> list[bytes]:
    from imapclient import IMAPClient

    with IMAPClient("127.0.0.1", port=dovecot.imap_port, ssl=False, timeout=10) as imap:
        imap.login(user, "secret")
        imap.select_folder("INBOX")
        uids = imap.search("ALL")
        return [data[b"RFC822"] for data in imap.fetch(uids, ["RFC822"]).values()] if uids else []


def wait_for_inbox(dovecot: DovecotServer, user: str, count: int, mx: PostfixInstance,
                   timeout: float = 10.0) -> list[bytes]:
    import time
    deadline = time.monotonic() + timeout
    while True:
        messages = imap_inbox(dovecot, user)
        if len(messages) >= count:
            return messages
        if time.monotonic() > deadline:
            raise AssertionError(f"{user} has {len(messages)} of {count} messages; Postfix queue: {mx.queue()}\n"
                                 f"{mx.maillog_tail()}")
        time.sleep(0.05)


def challenge_reply(port: int, sender: str, recipient: str, message: bytes) -> tuple[int, bytes]:
    """The end-of-DATA reply a client gets (smtplib joins the reply's lines with \\n)."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=30) as client:
        client.ehlo()
        assert client.mail(sender)[0] == 250
        code, text = client.rcpt(recipient)
        assert code == 250, (code, text)
        return client.data(message)


# -- behind Postfix --------------------------------------------------------------------------------

@pytest.mark.slow  # about 13 s
def test_behind_postfix_challenge_text_intact_and_known_sender_delivered(dovecot: DovecotServer) -> None:
    after_filter_port = free_loopback_port()
    gw = GatewayProcess(delivery=("smtp", f"127.0.0.1:{after_filter_port}"),
                        extra={"challenge": {"reply": BILINGUAL_REPLY},
                               # the Postfix proxy connects from 127.0.0.1 (installer/gateway/sendergate.toml)
                               "smtp": {"xforward_from": ["127.0.0.1"]}})
    try:
        alice, _ = gw.store.add_user("alice@example.org")
        carol, _ = gw.store.add_user("carol@example.org")
        gw.store.add_entry(alice.id, "allow", "bob@friend.example")
        with proxy_mx(gw.smtp_port, after_filter_port,
                      routes={"example.org": f"lmtp:inet:127.0.0.1:{dovecot.lmtp_port}"}) as mx:
            # SenderGate not running yet: Postfix asks the client to come back later.
            with smtplib.SMTP("127.0.0.1", mx.port, local_hostname="client.test", timeout=30) as client:
                client.ehlo()
                client.mail("bob@friend.example")
                while_down = client.rcpt("alice@example.org")
            gw.start()
            # The reference: what the gateway itself answers a stranger (the link is reused while pending).
            direct = challenge_reply(gw.smtp_port, "stranger@elsewhere.test", "alice@example.org", STRANGER)
            through_postfix = challenge_reply(mx.port, "stranger@elsewhere.test", "alice@example.org", STRANGER)

            # The link Postfix passed on works: the confirmation page for alice's challenge.
            [token] = set(TOKEN.findall(through_postfix[1]))
            page = httpx.get(f"{gw.http_url}/c/{token.decode()}", timeout=10)

            accepted = mx.submit("bob@friend.example", "alice@example.org", MESSAGE)
            [delivered] = wait_for_inbox(dovecot, "alice@example.org", 1, mx)

            # Per-recipient answers reach the client too (the reason for no speed_adjust).
            # From another loopback address: XFORWARD must carry it through Postfix to the gateway.
            with smtplib.SMTP("127.0.0.1", mx.port, local_hostname="client.test", timeout=30,
                              source_address=("127.0.0.2", 0)) as client:
                client.ehlo()
                client.mail("bob@friend.example")
                known = client.rcpt("alice@example.org")
                other_class = client.rcpt("carol@example.org")  # bob is a stranger to carol
                ghost = client.rcpt("ghost@example.org")
                client.rset()
            mx.wait_for_empty_queue()
            ghost_events = [e for e in gw.events() if e.recipient == "ghost@example.org"]
            queued_for_strangers = [line for line in mx.maillog().splitlines()
                                    if "stranger@elsewhere.test" in line and "queued" in line]
    finally:
        gw.close()

    # Each refusal carries a fresh token for the same pending challenge; apart from it the
    # client gets, line for line, what the gateway said.
    assert while_down[0] == 451 and while_down[1].startswith(b"4.3.0"), while_down
    assert direct[0] == through_postfix[0] == 550
    assert direct[1].startswith(b"5.7.1 alice@example.org accepts mail only from known senders.")
    lines = direct[1].split(b"\n")
    assert len(lines) >= 2 and TOKEN.search(lines[0]), direct  # multi-line, the link on the first line
    direct_token = TOKEN.search(direct[1]).group(1)  # type: ignore[union-attr]
    assert through_postfix[1].replace(token, direct_token) == direct[1], "Postfix changed the gateway's refusal"
    assert page.status_code == 200 and "alice@example.org" in page.text
    assert not queued_for_strangers

    assert accepted.reply.startswith("2.0.0"), accepted.reply
    body = MESSAGE.split(b"\r\n\r\n", 1)[1]
    assert delivered.endswith(body)
    headers = delivered.split(b"\r\n\r\n", 1)[0]
    assert b"Subject: Deployment test" in headers
    assert b"(SenderGate)" in headers  # the gateway's Received line, below Postfix's
    assert b"sendergate-in" in headers or b"mx.example.org" in headers

    assert known[0] == 250
    assert other_class[0] == 250, other_class  # known and unknown recipients share the transaction
    assert ghost[0] == 550 and ghost[1].startswith(b"5.1.1"), ghost
    # The gateway recorded the real client and its HELO, as Postfix forwarded them (XFORWARD).
    assert [(e.client_ip, e.helo) for e in ghost_events] == [("127.0.0.2", "client.test")]


# -- stand-alone -------------------------------------------------------------------------------------

@pytest.mark.slow  # about 8 s
def test_stand_alone_gateway_delivers_to_the_mail_server_behind_it() -> None:
    with PostfixInstance(mailbox_domain="example.org", mailboxes=("alice",),
                         hostname="store.example.org") as mailserver:
        gw = GatewayProcess(delivery=("smtp", f"127.0.0.1:{mailserver.port}"))
        try:
            alice, _ = gw.store.add_user("alice@example.org")
            gw.store.add_entry(alice.id, "allow", "bob@friend.example")
            gw.start()
            with gw.smtp() as client:
                client.mail("bob@friend.example")
                client.rcpt("alice@example.org")
                accepted = client.data(MESSAGE)
            delivered = mailserver.wait_for_mail("alice")
            refused = challenge_reply(gw.smtp_port, "stranger@elsewhere.test", "alice@example.org", STRANGER)
            mailserver.wait_for_empty_queue()
            maildir_new = list((mailserver.mail_dir / "alice" / "new").iterdir())
            verdicts = [event.verdict for event in gw.events()]
        finally:
            gw.close()

    assert accepted[0] == 250 and accepted[1].startswith(b"2.0.0"), accepted
    assert delivered.replace(b"\r\n", b"\n").endswith(MESSAGE.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n"))
    assert b"(SenderGate)" in delivered
    assert refused[0] == 550 and b"https://mx.example.org/c/" in refused[1]
    assert maildir_new == []  # the stranger's message went nowhere
    assert verdicts == ["delivered", "challenged"]


# -- the install script ------------------------------------------------------------------------------

def seeded_prefix() -> Path:
    """A prefix whose Python environment already exists and sees the test environment's packages.

    install.sh reuses an existing environment (that is its upgrade path), so
    here it installs SenderGate itself offline (--no-deps --no-build-isolation)
    while the dependencies come from this test run's environment.
    """
    prefix = make_service_dir("sendergate-install-")
    venv = prefix / "opt" / "sendergate"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    assert site, sys.path
    (venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" /
     "test-dependencies.pth").write_text("\n".join(site) + "\n")
    return prefix


def run_install(prefix: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(GATEWAY_INSTALLER / "install.sh"), "--prefix", str(prefix), "--no-systemd",
         "--python", sys.executable, "--pip-options", "--no-deps --no-build-isolation", *extra],
        capture_output=True, text=True, timeout=120)


def schema_revision(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def head_revision() -> str:
    from importlib import resources

    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("sendergate.store") / "migrations"))
    return ScriptDirectory.from_config(cfg).get_current_head()


def store_at_first_revision(db: Path) -> None:
    """A store as the first release left it: schema at the first migration, one user in it."""
    from importlib import resources

    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{db}")
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("sendergate.store") / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(text("INSERT INTO users (name, role, created_at) VALUES ('Alice', 'user', 0)"))
        user_id = conn.execute(text("SELECT id FROM users")).scalar_one()
        conn.execute(text("INSERT INTO user_addresses (user_id, address, is_primary) "
                          "VALUES (:u, 'alice@example.org', 1)"), {"u": user_id})
    engine.dispose()


@pytest.mark.slow  # about 90 s
def test_install_script_installs_keeps_config_and_store_and_migrates() -> None:
    prefix = seeded_prefix()
    try:
        first = run_install(prefix)
        assert first.returncode == 0, first.stdout + first.stderr
        venv = prefix / "opt" / "sendergate"
        config = prefix / "etc" / "sendergate" / "sendergate.toml"
        db = prefix / "var" / "lib" / "sendergate" / "state.db"
        # The package really is installed in the prefix, not borrowed from the test environment.
        where = subprocess.run([str(venv / "bin" / "python"), "-c", "import sendergate; print(sendergate.__file__)"],
                               capture_output=True, text=True, check=True).stdout.strip()
        assert where.startswith(str(venv)), where
        assert (prefix / "etc" / "systemd" / "system" / "sendergate.service").read_bytes() == \
            (GATEWAY_INSTALLER / "sendergate.service").read_bytes()
        assert (prefix / "etc" / "logrotate.d" / "sendergate").is_file()
        assert config.stat().st_mode & 0o777 == 0o640
        assert f'\nurl = "sqlite:///{db}"\n' in config.read_text()
        assert schema_revision(db) == head_revision()
        assert "installing the sample configuration" in first.stdout

        # The admin edits the configuration; the store is one from the first release.
        edited = config.read_text().replace('local = ["example.org"]', 'local = ["example.net"]')
        config.write_text(edited)
        db.unlink()
        store_at_first_revision(db)
        assert schema_revision(db) == "0001"

        again = run_install(prefix)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "keeping the configuration" in again.stdout
        assert config.read_text() == edited
        assert schema_revision(db) == head_revision() != "0001"
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT address FROM user_addresses").fetchall() == [("alice@example.org",)]
        listed = subprocess.run([str(venv / "bin" / "sendergate"), "users", "list", "--config", str(config)],
                                capture_output=True, text=True)
        assert listed.returncode == 0 and "alice@example.org" in listed.stdout, listed.stderr

        # A configuration mistake stops the script with the key named.
        config.write_text(edited.replace("[domains]\n", "[domains]\nlocals = []\n"))
        broken = run_install(prefix)
        assert broken.returncode != 0
        assert "domains.locals: unknown key" in broken.stderr, broken.stderr
    finally:
        remove_service_dir(prefix)


def test_install_script_dry_run_changes_nothing() -> None:
    prefix = make_service_dir("sendergate-install-")
    try:
        dry = run_install(prefix, "--dry-run")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert "+ " in dry.stdout and "pip install" in dry.stdout
        assert [p for p in prefix.iterdir() if p.name != OWNER_FILE] == []  # only the test directory's own mark
    finally:
        remove_service_dir(prefix)


# -- the unit, the sample configuration, log rotation ---------------------------------------------

def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(GATEWAY_INSTALLER / "sendergate.service")
    return parser


def test_systemd_unit_verifies_and_is_sandboxed() -> None:
    for tool in ("systemd-analyze",):
        assert shutil.which(tool), f"{tool} missing: install systemd (installer/dev/system-deps.sh)"
    service = unit()["Service"]
    assert service["User"] == "sendergate" and service["StateDirectory"] == "sendergate"
    assert service["ExecStart"] == f"/opt/sendergate/bin/sendergate gateway --config {_default_config()}"
    assert service["AmbientCapabilities"] == service["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "yes"
    assert service["KillSignal"] == "SIGTERM"
    from sendergate.gateway import SHUTDOWN_GRACE
    assert float(service["TimeoutStopSec"]) > SHUTDOWN_GRACE
    # The default store lives in the state directory systemd creates and lets the service write.
    assert sg_config.StoreConfig().url == "sqlite:////var/lib/sendergate/state.db"

    # Offline: a root with the unit, the executable it names and the system's own units.
    root = make_service_dir("sendergate-unit-")
    try:
        (root / "etc" / "systemd" / "system").mkdir(parents=True)
        shutil.copy(GATEWAY_INSTALLER / "sendergate.service", root / "etc" / "systemd" / "system")
        executable = root / "opt" / "sendergate" / "bin" / "sendergate"
        executable.parent.mkdir(parents=True)
        executable.write_text("#!/bin/sh\n")
        executable.chmod(0o755)
        (root / "usr" / "lib" / "systemd").mkdir(parents=True)
        shutil.copytree("/usr/lib/systemd/system", root / "usr" / "lib" / "systemd" / "system", symlinks=True)
        verify = subprocess.run(["systemd-analyze", "verify", f"--root={root}",
                                 str(root / "etc" / "systemd" / "system" / "sendergate.service")],
                                capture_output=True, text=True)
        # verify exits 0 on unknown keys too; its warnings are the failure.
        assert verify.returncode == 0 and not verify.stdout.strip() and not verify.stderr.strip(), \
            verify.stdout + verify.stderr
        security = subprocess.run(["systemd-analyze", "security", "--offline=true", f"--root={root}",
                                   "--no-pager", "sendergate.service"], capture_output=True, text=True)
    finally:
        remove_service_dir(root)
    exposure = re.search(r"Overall exposure level for sendergate.service: ([\d.]+)", security.stdout)
    assert exposure, security.stdout + security.stderr
    assert float(exposure.group(1)) <= 2.0, security.stdout


def _default_config() -> str:
    from sendergate.cli import DEFAULT_CONFIG
    return DEFAULT_CONFIG


def test_sample_config_names_every_key_with_its_default() -> None:
    import tomllib

    text = (GATEWAY_INSTALLER / "sendergate.toml").read_text()
    as_shipped = sg_config.from_dict(tomllib.loads(text), "sample")
    # Uncomment every `# key = value` line: the defaults, every key of every section.
    uncommented = re.sub(r"(?m)^# ([a-z_]+ = )", r"\1", text)
    raw = tomllib.loads(uncommented)
    for section, keys in sg_config.section_keys().items():
        assert sorted(raw.get(section, {})) == sorted(keys), section
    with_defaults = sg_config.from_dict(raw, "sample")
    expected = sg_config.from_dict({"domains": {"local": ["example.org"]}}, "sample")
    for cfg in (as_shipped, with_defaults):
        cfg.smtp.hostname = expected.smtp.hostname  # "" means the machine's FQDN
    assert with_defaults == expected
    assert as_shipped == expected


def test_logrotate_snippet_parses() -> None:
    assert shutil.which("logrotate"), "logrotate missing (Debian package logrotate)"
    state = make_service_dir("sendergate-logrotate-")
    try:
        result = subprocess.run(["logrotate", "-d", "-s", str(state / "status"),
                                 str(GATEWAY_INSTALLER / "logrotate")], capture_output=True, text=True)
    finally:
        remove_service_dir(state)
    assert result.returncode == 0, result.stderr
    assert "error" not in (result.stdout + result.stderr).lower()
    assert "rotating pattern: /var/log/sendergate/sendergate.log" in result.stdout + result.stderr


# -- the unit's privileges, applied by hand ---------------------------------------------------------

def free_privileged_port() -> int:
    import socket
    for port in range(1023, 900, -1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below 1024 on 127.0.0.1")


def run_as_unit_user(config_path: Path, *, bind_capability: bool) -> subprocess.Popen[bytes]:
    """The gateway as an unprivileged user with what the unit grants: CAP_NET_BIND_SERVICE and nothing else."""
    caps = "-all,+net_bind_service" if bind_capability else "-all"
    assert shutil.which("setpriv"), "setpriv missing (Debian package util-linux)"
    return subprocess.Popen(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", f"--inh-caps={caps}",
         f"--ambient-caps={caps}", f"--bounding-set={caps}", "--no-new-privs", "--",
         sys.executable, "-m", "sendergate", "gateway", "--config", str(config_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd="/", start_new_session=True,
        # Like the unit's RuntimeDirectory: the workers' metrics files stay in the test's directory.
        env={**os.environ, "SENDERGATE_METRICS_DIR": str(config_path.parent)})


@pytest.mark.slow  # about 13 s
def test_unprivileged_user_binds_port_25_with_the_units_capability_only() -> None:
    import pwd
    import signal
    import time

    from tests.support.gateway import write_config

    state = make_service_dir("sendergate-unit-user-")
    nobody = pwd.getpwnam("nobody")
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    port = free_privileged_port()
    config_path = state / "sendergate.toml"
    write_config(config_path, {
        "smtp": {"listen": [f"127.0.0.1:{port}"], "hostname": "mx.example.org", "workers": 2},
        "domains": {"local": ["example.org"]},
        "http": {"listen": f"127.0.0.1:{free_loopback_port()}"},
        "store": {"url": f"sqlite:///{state}/state.db"},
    })
    try:
        refused = run_as_unit_user(config_path, bind_capability=False)
        out, _ = refused.communicate(timeout=30)
        assert refused.returncode == 2, out  # the unit's RestartPreventExitStatus: no restart loop
        assert f"smtp.listen 127.0.0.1:{port}: cannot listen: permission denied" in out.decode(), out

        gateway = run_as_unit_user(config_path, bind_capability=True)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
                        banner_code = client.ehlo("client.test")[0]
                    break
                except OSError:
                    assert gateway.poll() is None, gateway.stdout.read() if gateway.stdout else b""
                    assert time.monotonic() < deadline, "the gateway did not answer within 20 s"
                    time.sleep(0.1)
            assert (state / "state.db").stat().st_uid == nobody.pw_uid
            gateway.send_signal(signal.SIGTERM)
            out, _ = gateway.communicate(timeout=30)
        finally:
            if gateway.poll() is None:
                os.killpg(gateway.pid, signal.SIGKILL)
                gateway.wait(5)
        assert banner_code == 250
        assert gateway.returncode == 0, out
    finally:
        remove_service_dir(state)
