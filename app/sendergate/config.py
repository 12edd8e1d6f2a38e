"""Loading and validating the gateway's TOML configuration (SPEC §3).

Every problem is reported with the key it belongs to; unknown keys are errors
so a typo never silently falls back to a default.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .policy.address import AddressError, parse
from .policy.replies import challenge_template_problem, public_url_problem

DEFAULT_REPLY = (
    "{recipient} accepts mail only from known senders. "
    "Confirm you are a person at {url} and send your message again."
)
# The default text when one refusal names several recipients (an admin's own template serves both).
DEFAULT_REPLY_MANY = (
    "{recipient} accept mail only from known senders. "
    "Confirm you are a person at {url} and send your message again."
)
DEFAULT_VIRUS_REPLY = "Message refused: it contains a virus ({virus})."
DEFAULT_SPAM_REPLY = "Message refused as spam (score {score} >= {threshold})."
# When rspamd's action decided (scan.rspamd_action = "honour"): its "add header" has no threshold it tells us.
DEFAULT_SPAM_REPLY_BY_ACTION = "Message refused as spam (score {score})."
DEFAULT_BULK_REPLY = "{recipient} accepts mail only from known senders; automated mail is not accepted."
DEFAULT_BLOCKED_REPLY = "{recipient} does not accept mail from this sender."


class ConfigError(Exception):
    """One or more problems in a configuration; each names its key."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "") -> None:
        self.problems = problems
        self.source = source
        super().__init__("; ".join(f"{k}: {m}" for k, m in problems))


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|K|MB|M|GB|G|KiB|MiB|GiB)?\s*$", re.I)
_SIZE_UNITS = {"b": 1, "kb": 1000, "k": 1000, "mb": 1000**2, "m": 1000**2, "gb": 1000**3, "g": 1000**3,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3, None: 1}


def parse_duration(value: Any) -> float:
    """`30s`, `15m`, `7d` (or a bare number of seconds) -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 15m or 7d")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a duration such as 30s, 15m or 7d")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def parse_size(value: Any) -> int:
    """`25MB`, `512KiB`, or a bare number of bytes -> bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 25MB")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a size such as 25MB or 512KiB")
    unit = m.group(2).lower() if m.group(2) else None
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


def parse_hostport(value: str, default_port: int | None = None) -> tuple[str, int]:
    """`host:port`, `[::1]:25`, `::1` (with default_port) -> (host, port)."""
    value = str(value).strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_s = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, port_s = value.split(":")
    elif value.count(":") > 1:  # a bare IPv6 address
        host, port_s = value, ""
    else:
        host, port_s = value, ""
    if not host:
        raise ValueError(f"{value!r} has no host")
    if not port_s:
        if default_port is None:
            raise ValueError(f"{value!r} needs a port (host:port)")
        return host, default_port
    if not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise ValueError(f"{value!r} has an invalid port")
    return host, int(port_s)


def parse_socket_spec(value: str) -> tuple[str, str | tuple[str, int]]:
    """Scanner address: `unix:/path` or `tcp:host:port`."""
    return _unix_or(value, "tcp")


RSPAMD_PORT = 11333  # rspamd's normal worker (the one that scans; the controller is 11334)


def parse_rspamd_url(value: str) -> tuple[str, str | tuple[str, int]]:
    """rspamd's normal worker: `http://host[:port]` (port 11333 by default) or `unix:/path` (its
    bind_socket may be a unix socket); returned in parse_socket_spec's form."""
    if value.startswith("unix:"):
        return parse_socket_spec(value)
    m = re.fullmatch(r"http://([^/?#@\s]+)/?", value)
    if not m:
        raise ValueError(f"{value!r} is neither http://host:port nor unix:/path "
                         "(rspamd speaks plain HTTP; https and paths are not supported)")
    return "tcp", parse_hostport(m.group(1), RSPAMD_PORT)


@dataclass
class SMTPConfig:
    listen: list[tuple[str, int]] = field(default_factory=lambda: [("0.0.0.0", 25)])
    hostname: str = ""
    max_message_size: int = 25_000_000
    max_recipients: int = 100
    tls_cert: str = ""
    tls_key: str = ""
    workers: int = 0  # 0 = one per CPU core
    cpu_affinity: str = "auto"  # auto: each worker kept on a CPU of its own (Linux, workers <= CPUs); off
    timeout: float = 300.0
    # DATA's deadline moves by one second per min_data_rate bytes received (SessionTemplate); 0 = the whole
    # message within `timeout` of the DATA command
    min_data_rate: int = 500
    max_connections: int = 2000
    error_limit: int = 20  # refused commands in one session before 421 and close; 0 = no limit
    max_connections_per_ip: int = 20  # open sessions per client IPv4 address or IPv6 /64; 0 = no cap
    xforward_from: list[str] = field(default_factory=list)  # peers (addresses or networks) whose XFORWARD counts

    @property
    def xforward_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(n, strict=False) for n in self.xforward_from)


@dataclass
class DomainsConfig:
    local: list[str] = field(default_factory=list)
    # What separates a sign-up address's name from the mailbox (`alice+acme@`), as Postfix's key of that name
    recipient_delimiter: str = "+"


@dataclass
class TagsConfig:
    # Where mail to a sign-up address goes when its own setting says nothing: "inbox", "tag" (a folder of
    # its own, folder_prefix + "." + name) or "screened" (delivery.screened_folder, with the mark)
    folder: str = "inbox"
    folder_prefix: str = "Sign-ups"


@dataclass
class DeliveryConfig:
    mode: str = "smtp"
    target: str = "127.0.0.1:10025"
    screened_folder: str = "Screened"  # "" = the inbox, marked only (SPEC §4.5 item 7)
    timeout: float = 60.0
    # STARTTLS to a tcp target (never over a unix socket): Postfix's smtp_tls_security_level
    # "may" (opportunistic), "secure" (required, tls_verify) or "encrypt" (required, not tls_verify).
    tls: str = "opportunistic"
    tls_verify: bool = True  # with "required": the chain to tls_ca_file and the target's host name
    tls_ca_file: str = ""  # "" = the system's CA store
    tls_cert: str = ""  # client certificate, for connectors that authenticate the gateway by it
    tls_key: str = ""
    # Connections to the target kept open per worker between messages (RSET before each reuse);
    # 0 = a new connection per message. One idle longer than pool_idle is closed, not reused.
    pool_size: int = 4
    pool_idle: float = 30.0

    @property
    def tcp(self) -> bool:
        """Whether delivery goes over TCP (where TLS applies)."""
        return self.mode in ("smtp", "lmtp") and not self.target.startswith("/")


@dataclass
class HTTPConfig:
    listen: tuple[str, int] = ("127.0.0.1", 8025)
    public_url: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    trusted_proxies: list[str] = field(default_factory=list)  # whose X-Forwarded-For names the client
    metrics_public: bool = False  # /metrics, /docs, /openapi.json without a token


@dataclass
class StoreConfig:
    url: str = "sqlite:////var/lib/sendergate/state.db"  # as written in SPEC §3: sqlite:///var/lib/…


@dataclass
class ScanConfig:
    clamd: str = ""
    spamd: str = ""
    spam_threshold: float = 5.0
    on_failure: str = "tempfail"
    timeout: float = 30.0
    clamd_max_size: int = 0  # 0 = clamd's own StreamMaxLength (its "size limit exceeded" answer = skipped)
    spamd_max_size: int = 500_000
    virus_reply: str = DEFAULT_VIRUS_REPLY
    spam_reply: str = DEFAULT_SPAM_REPLY
    rspamd: str = ""  # instead of spamd: "http://127.0.0.1:11333" (its /checkv2 protocol)
    # "honour": rspamd's action decides (as its milter does); "score": spam_threshold on its score.
    rspamd_action: str = "honour"
    # rspamd's "add header" / "rewrite subject" (its "probably spam"): "refuse" as spam, or "screen":
    # a message that would be delivered goes to the Screened folder; an unknown sender is challenged.
    rspamd_add_header: str = "refuse"
    # rspamd answers 413 to a message above its max_message (50 MiB by default): a bigger one is
    # scanned on its first part, as with spamd_max_size, never failed (SPEC §4.5 item 1). 0: no cap.
    rspamd_max_size: int = 50_000_000

    @property
    def spam_scanner(self) -> str:
        """The configured spam scanner's name, "" when none."""
        return "rspamd" if self.rspamd else "spamd" if self.spamd else ""

    @property
    def any_scanner(self) -> bool:
        return bool(self.clamd or self.spamd or self.rspamd)


@dataclass
class ChallengeConfig:
    ttl: float = 14 * 86400
    allowlist_auth: str = "relaxed"
    automated: str = "screen"
    reply: str = DEFAULT_REPLY
    bulk_reply: str = DEFAULT_BULK_REPLY
    blocked_reply: str = DEFAULT_BLOCKED_REPLY
    # Pending challenges per user; a new sender beyond it gets 451 and retries (SPEC §4.5 item 5). 0: no cap.
    max_pending: int = 1000
    # Mailbox mode where the store sets none for the address or its user (SPEC §4.6): "enforce" | "observe" | "off"
    default_mode: str = "enforce"
    # Who receives postmaster@ and abuse@ of a local domain that no user has (RFC 2142); "" = the first admin
    role_owner: str = ""

    def reply_for(self, recipients: int) -> str:
        """The challenge template for a refusal naming this many recipients."""
        return DEFAULT_REPLY_MANY if recipients > 1 and self.reply == DEFAULT_REPLY else self.reply


@dataclass
class DNSConfig:
    nameservers: list[tuple[str, int]] = field(default_factory=list)
    timeout: float = 5.0
    # Sender checks (SPF + DKIM + DMARC) at once per process, and how many may wait for one;
    # a check that finds the queue full or waits longer than its budget answers 451 (§4.5 item 5).
    max_checks: int = 20
    max_waiting: int = 100


@dataclass
class MilterConfig:
    # Postfix's notation (smtpd_milters): unix:/path or inet:host:port; `sendergate milter --listen` overrides
    listen: str = "unix:/run/sendergate/milter.sock"
    socket_mode: int = 0o660  # the unix socket's permissions: Postfix's smtpd must reach it (group access)
    workers: int = 0  # processes taking milter connections; 0 = one per CPU this process may use
    # the file sets a [milter] key (check-config then checks the socket); not a setting itself
    configured: bool = field(default=False, compare=False)


@dataclass
class EventsConfig:
    retention: float = 90 * 86400


@dataclass
class DigestConfig:
    default: str = "off"  # off | daily | weekly: a user who chose nothing
    hour: int = 7  # UTC hour from which the day's digest is due (weekly: Mondays)
    max_entries: int = 50  # senders listed in one digest; the rest are "and N more in the app"
    link_ttl: float = 7 * 86400  # how long a digest's Approve/Deny link works


DEFAULT_NOTIFY = ("Hello,\n\n{recipient} has approved you as a sender. You can write to {recipient} now; "
                  "if your earlier message did not arrive, please send it again.\n\n"
                  "This is an automatic message; please do not reply to it.\n")


@dataclass
class NotifyConfig:
    # Off by default: the gateway then never writes to a stranger (SPEC §4.5; issue 16 item 5).
    enabled: bool = False
    relay: str = ""  # smtp://host:port of the outbound relay
    sender: str = ""  # the notice's From and envelope sender ("" = postmaster@ smtp.hostname)
    template: str = DEFAULT_NOTIFY  # {recipient}, {sender}


@dataclass
class Config:
    smtp: SMTPConfig = field(default_factory=SMTPConfig)
    domains: DomainsConfig = field(default_factory=DomainsConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    http: HTTPConfig = field(default_factory=HTTPConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    scan: ScanConfig = field(default_factory=ScanConfig)
    challenge: ChallengeConfig = field(default_factory=ChallengeConfig)
    dns: DNSConfig = field(default_factory=DNSConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    milter: MilterConfig = field(default_factory=MilterConfig)
    digest: DigestConfig = field(default_factory=DigestConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    tags: TagsConfig = field(default_factory=TagsConfig)
    path: str = ""

    @property
    def public_url(self) -> str:
        if self.http.public_url:
            return self.http.public_url.rstrip("/")
        host, port = self.http.listen
        scheme = "https" if self.http.tls_cert else "http"
        shown = f"[{host}]" if ":" in host else host
        return f"{scheme}://{shown}:{port}"


# How each key is parsed: section -> key -> converter. A converter raises
# ValueError with a message meant for the admin.
def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("expected a string")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("expected true or false")
    return v


def _int(minimum: int = 0) -> Any:
    def conv(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError("expected a whole number")
        if v < minimum:
            raise ValueError(f"must be at least {minimum}")
        return v
    return conv


def _positive_duration(v: Any) -> float:
    seconds = parse_duration(v)
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return seconds


def _float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError("expected a number")
    return float(v)


def _choice(*options: str) -> Any:
    def conv(v: Any) -> str:
        if v not in options:
            raise ValueError(f"must be one of {', '.join(repr(o) for o in options)}")
        return v
    return conv


def _listen_list(v: Any) -> list[tuple[str, int]]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v:
        raise ValueError("expected a list of host:port")
    return [parse_hostport(_str(x)) for x in v]


def _hostport(v: Any) -> tuple[str, int]:
    return parse_hostport(_str(v))


def _domains(v: Any) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(d, str) for d in v):
        raise ValueError("expected a list of domain names")
    out = []
    for d in v:
        d = d.strip().rstrip(".").lower()
        try:
            d = d.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"{d!r} is not a valid domain name") from None
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*", d):
            raise ValueError(f"{d!r} is not a valid domain name")
        out.append(d)
    return out


def _folder(v: Any) -> str:
    """A Maildir++ folder name (SPEC §4.5 item 7): no path separator, no "." or ".." element."""
    v = _str(v)
    if v and (not re.fullmatch(r"[A-Za-z0-9 _.-]+", v) or v.startswith(".") or v.endswith(".") or ".." in v):
        raise ValueError("use letters, digits, space, '_', '-' and '.' between names (not first, last or doubled)")
    return v


def _tag_prefix(v: Any) -> str:
    """The parent folder of per-tag folders: a folder name (SPEC §4.5 item 7), never empty (a tag named
    "trash" or "sent" would otherwise deliver into the user's Trash or Sent)."""
    v = _folder(v)
    if not v:
        raise ValueError("must not be empty: per-tag folders are made under it")
    return v


def _nameservers(v: Any) -> list[tuple[str, int]]:
    if not isinstance(v, list):
        raise ValueError("expected a list of addresses, e.g. [\"127.0.0.1:5353\", \"::1\"]")
    out = []
    for x in v:
        host, port = parse_hostport(_str(x), 53)
        ipaddress.ip_address(host)  # a resolver must be an IP address
        out.append((host, port))
    return out


def _networks(v: Any) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError("expected a list of addresses or CIDR blocks, e.g. [\"127.0.0.1\", \"10.0.0.0/8\"]")
    for x in v:
        try:
            ipaddress.ip_network(x.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{x!r} is not an IP address or CIDR block") from None
    return [x.strip() for x in v]


def parse_milter_listen(spec: str) -> tuple[str, str | tuple[str, int]]:
    """Postfix's notation for a milter socket: `unix:/path` or `inet:host:port` (`inet:[::1]:port`)."""
    return _unix_or(spec.strip(), "inet")


def _unix_or(spec: str, inet: str) -> tuple[str, str | tuple[str, int]]:
    """`unix:/path` or `<inet>:host:port` -> ("unix", path) or (inet, (host, port))."""
    if spec.startswith("unix:"):
        path = spec[5:]
        if not path.startswith("/"):
            raise ValueError(f"{spec!r}: the socket path must be absolute")
        return "unix", path
    if spec.startswith(inet + ":"):
        return inet, parse_hostport(spec[len(inet) + 1:])
    raise ValueError(f"{spec!r} is neither unix:/path nor {inet}:host:port")


def _milter_listen(v: Any) -> str:
    v = _str(v).strip()
    parse_milter_listen(v)
    return v


def _file_mode(v: Any) -> int:
    """"0660" (a string, as chmod takes it): the owner always keeps read and write."""
    if not isinstance(v, str) or not re.fullmatch(r"0?[0-7]{3}", v.strip()):
        raise ValueError('expected an octal mode as a string, e.g. "0660"')
    mode = int(v.strip(), 8)
    if mode & 0o600 != 0o600:
        raise ValueError("the owner (the milter itself) needs read and write")
    return mode


def _scanner(v: Any) -> str:
    v = _str(v)
    if v:
        parse_socket_spec(v)
    return v


def _rspamd_url(v: Any) -> str:
    v = _str(v)
    if v:
        parse_rspamd_url(v)
    return v


def _url(v: Any) -> str:
    v = _str(v)
    if v and not re.match(r"^https?://[^/\s]+", v):
        raise ValueError(f"{v!r} is not an http(s) URL")
    return v


def _hour(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 23:
        raise ValueError("expected an hour, 0 to 23 (UTC)")
    return v


def _relay_url(v: Any) -> str:
    s = _str(v)
    if s and not re.fullmatch(r"smtp://[^/\s]+:\d+/?", s):
        raise ValueError("expected smtp://host:port")
    return s.rstrip("/")


def _store_url(v: Any) -> str:
    """`sqlite:///var/lib/x.db` means /var/lib/x.db, as documented (SQLAlchemy would read it relative
    to whatever directory the gateway was started from); four slashes work too."""
    v = _str(v)
    if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", v):
        raise ValueError("expected sqlite:///path or postgresql://…")
    m = re.match(r"^(sqlite(?:\+\w+)?):///(?!/)(.+)$", v)
    if m and m.group(2) != ":memory:":
        v = f"{m.group(1)}:////{m.group(2)}"
    return v


def _template(*allowed: str) -> Any:
    def conv(v: Any) -> str:
        v = _str(v)
        for name in re.findall(r"{([^{}]*)}", v):
            if name not in allowed:
                raise ValueError(f"unknown placeholder {{{name}}}; allowed: "
                                 + ", ".join("{" + a + "}" for a in allowed))
        return v
    return conv


def _role_owner(v: Any) -> str:
    """An address (a user's, checked when mail arrives: users change without a restart) or ""."""
    s = _str(v).strip()
    if s:
        try:
            return parse(s).key
        except AddressError as exc:
            raise ValueError(f"not an address: {exc}") from None
    return s


_SCHEMA: dict[str, dict[str, Any]] = {
    "smtp": {
        "listen": _listen_list, "hostname": _str, "max_message_size": parse_size,
        "max_recipients": _int(1), "tls_cert": _str, "tls_key": _str, "workers": _int(0),
        "cpu_affinity": _choice("auto", "off"),
        "timeout": _positive_duration, "min_data_rate": _int(0), "max_connections": _int(1),
        "error_limit": _int(0), "max_connections_per_ip": _int(0), "xforward_from": _networks,
    },
    "domains": {"local": _domains, "recipient_delimiter": _choice("+", "-", "_", "=")},
    "delivery": {
        "mode": _choice("smtp", "lmtp", "maildir"), "target": _str,
        "screened_folder": _folder, "timeout": _positive_duration,
        "tls": _choice("required", "opportunistic", "off"), "tls_verify": _bool,
        "tls_ca_file": _str, "tls_cert": _str, "tls_key": _str,
        "pool_size": _int(0), "pool_idle": _positive_duration,
    },
    "http": {"listen": _hostport, "public_url": _url, "tls_cert": _str, "tls_key": _str,
             "trusted_proxies": _networks, "metrics_public": _bool},
    "store": {"url": _store_url},
    "scan": {
        "clamd": _scanner, "spamd": _scanner, "spam_threshold": _float,
        "on_failure": _choice("tempfail", "accept"), "timeout": _positive_duration,
        "clamd_max_size": parse_size, "spamd_max_size": parse_size,
        "virus_reply": _template("virus", "recipient", "sender"),
        "spam_reply": _template("score", "threshold", "recipient", "sender"),
        "rspamd": _rspamd_url, "rspamd_action": _choice("honour", "score"),
        "rspamd_add_header": _choice("refuse", "screen"), "rspamd_max_size": parse_size,
    },
    "challenge": {
        "ttl": _positive_duration, "allowlist_auth": _choice("off", "relaxed", "strict"),
        "automated": _choice("screen", "refuse"),
        "reply": _template("url", "recipient", "sender"),
        "bulk_reply": _template("recipient", "sender"),
        "blocked_reply": _template("recipient", "sender"),
        "max_pending": _int(0),
        "default_mode": _choice("enforce", "observe", "off"), "role_owner": _role_owner,
    },
    "dns": {"nameservers": _nameservers, "timeout": _positive_duration, "max_checks": _int(1),
            "max_waiting": _int(0)},
    "events": {"retention": parse_duration},
    "milter": {"listen": _milter_listen, "socket_mode": _file_mode, "workers": _int(0)},
    "digest": {"default": _choice("off", "daily", "weekly"), "hour": _hour, "max_entries": _int(1),
               "link_ttl": _positive_duration},
    "notify": {"enabled": _bool, "relay": _relay_url, "sender": _str, "template": _template("recipient", "sender")},
    "tags": {"folder": _choice("inbox", "tag", "screened"), "folder_prefix": _tag_prefix},
}


def from_dict(raw: dict[str, Any], source: str = "") -> Config:
    """Build a Config from parsed TOML, collecting every problem before raising."""
    problems: list[tuple[str, str]] = []
    cfg = Config(path=source)
    for section, values in raw.items():
        if section not in _SCHEMA:
            problems.append((section, "unknown section"))
            continue
        if not isinstance(values, dict):
            problems.append((section, "expected a [section] table"))
            continue
        target = getattr(cfg, section)
        for key, value in values.items():
            conv = _SCHEMA[section].get(key)
            if conv is None:
                problems.append((f"{section}.{key}", "unknown key"))
                continue
            try:
                setattr(target, key, conv(value))
            except ValueError as exc:
                problems.append((f"{section}.{key}", str(exc)))
    cfg.milter.configured = bool(raw.get("milter"))
    if not cfg.domains.local:
        problems.append(("domains.local", "required: the domains this gateway receives mail for"))
    if bool(cfg.smtp.tls_cert) != bool(cfg.smtp.tls_key):
        problems.append(("smtp.tls_cert", "tls_cert and tls_key must be set together"))
    for key in ("tls_cert", "tls_key"):
        p = getattr(cfg.smtp, key)
        if p and not os.path.isfile(p):
            problems.append((f"smtp.{key}", f"file not found: {p}"))
        hp = getattr(cfg.http, key)
        if hp and not os.path.isfile(hp):
            problems.append((f"http.{key}", f"file not found: {hp}"))
    if cfg.scan.spamd and cfg.scan.rspamd:
        # Two spam verdicts on different scales would need a rule for disagreeing; one decides.
        problems.append(("scan.rspamd", "set scan.spamd or scan.rspamd, not both: one spam scanner decides"))
    if cfg.delivery.mode in ("smtp", "lmtp"):
        try:
            if not cfg.delivery.target.startswith("/"):  # LMTP may use a unix socket path
                parse_hostport(cfg.delivery.target)
        except ValueError as exc:
            problems.append(("delivery.target", str(exc)))
    elif cfg.delivery.mode == "maildir" and not cfg.delivery.target.startswith("/"):
        problems.append(("delivery.target", "maildir mode needs an absolute Maildir root path"))
    problems += _delivery_tls_problems(cfg.delivery)
    if cfg.delivery.screened_folder and not re.fullmatch(r"[A-Za-z0-9 _.-]+", cfg.delivery.screened_folder):
        problems.append(("delivery.screened_folder", "use letters, digits, space, '.', '_' or '-'"))
    url_problem = public_url_problem(cfg.public_url)
    if url_problem:
        problems.append(("http.public_url", url_problem))
    else:  # the template's room depends on the link's length
        problem = challenge_template_problem(cfg.challenge.reply, cfg.public_url)
        if problem:
            problems.append(("challenge.reply", problem))
    if cfg.notify.enabled and not cfg.notify.relay:
        problems.append(("notify.relay", "required when notify.enabled: smtp://host:port of the outbound relay"))
    if not cfg.smtp.hostname:
        import socket
        cfg.smtp.hostname = socket.getfqdn()
    if problems:
        raise ConfigError(problems, source)
    return cfg


def _delivery_tls_problems(d: DeliveryConfig) -> list[tuple[str, str]]:
    """The [delivery] TLS keys against each other and their files: a mistake here would otherwise
    show only as every message answered 451 (or as the gateway not starting)."""
    problems: list[tuple[str, str]] = []
    if d.tls == "required" and not d.tcp:
        where = "a Maildir" if d.mode == "maildir" else "a unix socket"
        problems.append(("delivery.tls", f'"required" needs a host:port target; delivery to {where} does not use TLS'))
    if bool(d.tls_cert) != bool(d.tls_key):
        problems.append(("delivery.tls_cert", "tls_cert and tls_key must be set together"))
    missing = False
    for key in ("tls_ca_file", "tls_cert", "tls_key"):
        path = getattr(d, key)
        if path and not os.path.isfile(path):
            problems.append((f"delivery.{key}", f"file not found: {path}"))
            missing = True
    if missing or problems:
        return problems
    import ssl  # only when files are named: loading them is how their mistakes show
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if d.tls_ca_file:
        try:
            ctx.load_verify_locations(cafile=d.tls_ca_file)
        except (ssl.SSLError, OSError) as exc:
            problems.append(("delivery.tls_ca_file", f"not a PEM CA bundle: {exc}"))
    if d.tls_cert:
        try:
            ctx.load_cert_chain(d.tls_cert, d.tls_key)
        except (ssl.SSLError, OSError) as exc:
            problems.append(("delivery.tls_cert", f"cannot load the certificate with tls_key: {exc}"))
    return problems


def load(path: str | os.PathLike[str]) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([("(file)", f"{p}: no such file")], str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([("(file)", f"{p}: cannot read: {exc}")], str(p)) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([("(syntax)", f"{p}: {exc}")], str(p)) from None
    return from_dict(raw, str(p))


def section_keys() -> dict[str, list[str]]:
    """The documented keys, for `check-config` and docs."""
    return {s: list(keys) for s, keys in _SCHEMA.items()}


def _check_dataclass_coverage() -> None:  # keep schema and dataclasses in step
    for s, keys in _SCHEMA.items():
        names = {f.name for f in fields(getattr(Config(), s))}
        missing = set(keys) - names
        assert not missing, (s, missing)


_check_dataclass_coverage()
