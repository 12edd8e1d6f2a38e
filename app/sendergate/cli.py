"""The `sendergate` command (SPEC §2). Every user mistake: one clear line and a non-zero exit."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from . import __version__
from .config import Config, ConfigError, load, parse_duration
from .errors import UserError

DEFAULT_CONFIG = "/etc/sendergate/sendergate.toml"
EXIT_USAGE, EXIT_CONFIG, EXIT_STORE, EXIT_RUNTIME = 2, 3, 4, 1


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", metavar="FILE",
                   default=os.environ.get("SENDERGATE_CONFIG", DEFAULT_CONFIG),
                   help=f"configuration file (default: $SENDERGATE_CONFIG or {DEFAULT_CONFIG})")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sendergate", description="SenderGate: refuse unknown senders during the "
                                "SMTP session, with a link that lets real people through.")
    p.add_argument("--version", action="version", version=f"sendergate {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    g = sub.add_parser("gateway", help="run the SMTP listener and HTTP server until SIGTERM/SIGINT")
    _config_arg(g)
    g.add_argument("--log-format", choices=["kv", "json"], default="kv", help="decision log lines (default kv)")
    g.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    g.set_defaults(func=cmd_gateway)

    m = sub.add_parser("milter", help="run the same decisions as a milter for Postfix (smtpd_milters), "
                       "with the HTTP server, until SIGTERM/SIGINT; Postfix delivers")
    _config_arg(m)
    m.add_argument("--listen", metavar="unix:PATH|inet:HOST:PORT", default="",
                   help="the milter socket (default: [milter] listen, unix:/run/sendergate/milter.sock)")
    m.add_argument("--log-format", choices=["kv", "json"], default="kv", help="decision log lines (default kv)")
    m.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    m.set_defaults(func=cmd_milter)

    c = sub.add_parser("check-config", help="validate the configuration and print each problem with its key; "
                       "brings the store's schema up to date")
    _config_arg(c)
    c.set_defaults(func=cmd_check_config)

    h = sub.add_parser("health", help="ask the running gateway's /healthz (at its http.listen) and print the "
                       "answer; exit 0 when ok, 1 when degraded or not answering (a container HEALTHCHECK)")
    _config_arg(h)
    h.add_argument("--timeout", type=float, default=8.0, help="seconds to wait for the answer (default 8)")
    h.set_defaults(func=cmd_health)

    u = sub.add_parser("users", help="manage users, their addresses and API tokens")
    usub = u.add_subparsers(dest="users_command", metavar="ACTION")
    usub.required = True
    ua = usub.add_parser("add", help="create a user who owns ADDRESS; prints a new API token once")
    ua.add_argument("address")
    ua.add_argument("--admin", action="store_true", help="the user may see and change everything")
    ua.add_argument("--name", default="", help="display name")
    _config_arg(ua)
    ua.set_defaults(func=cmd_users_add)
    ut = usub.add_parser("token", help="issue a new API token for scripts: the user's device 'script' "
                         "(its old token stops working; paired devices keep theirs)")
    ut.add_argument("address")
    ut.add_argument("--device", default="script", help="the device name the token replaces (default: script)")
    _config_arg(ut)
    ut.set_defaults(func=cmd_users_token)
    ui = usub.add_parser("invite", help="a one-time pairing code (24 h) for the desktop app of the user who owns "
                         "ADDRESS (the user is created if there is none)")
    ui.add_argument("address")
    ui.add_argument("--name", default="", help="display name, when the user is created")
    ui.add_argument("--admin", action="store_true", help="when the user is created: an admin")
    _config_arg(ui)
    ui.set_defaults(func=cmd_users_invite)
    udv = usub.add_parser("devices", help="list the devices (API tokens) of the user who owns ADDRESS")
    udv.add_argument("address")
    _config_arg(udv)
    udv.set_defaults(func=cmd_users_devices)
    urd = usub.add_parser("revoke-device", help="revoke a device of the user who owns ADDRESS, by name or id")
    urd.add_argument("address")
    urd.add_argument("device", metavar="NAME|ID")
    _config_arg(urd)
    urd.set_defaults(func=cmd_users_revoke_device)
    ul = usub.add_parser("list", help="list users and their addresses")
    _config_arg(ul)
    ul.set_defaults(func=cmd_users_list)
    ur = usub.add_parser("remove", help="remove the user who owns ADDRESS, with their lists and challenges")
    ur.add_argument("address")
    _config_arg(ur)
    ur.set_defaults(func=cmd_users_remove)
    ual = usub.add_parser("alias", help="give the user who owns ADDRESS another address (or @domain catch-all)")
    ual.add_argument("address")
    ual.add_argument("alias")
    _config_arg(ual)
    ual.set_defaults(func=cmd_users_alias)
    um = usub.add_parser("mode", help="set the mailbox mode of the user who owns ADDRESS (SPEC §4.6): enforce "
                         "(challenge strangers), observe (deliver, record what would have been challenged), "
                         "off (scan only); default = the config's [challenge] default_mode")
    um.add_argument("address")
    um.add_argument("mode", choices=("enforce", "observe", "off", "default"))
    um.add_argument("--only-address", action="store_true",
                    help="set the mode of ADDRESS alone (an alias such as info@), not of the whole user")
    _config_arg(um)
    um.set_defaults(func=cmd_users_mode)

    for action in ("allow", "block"):
        a = sub.add_parser(action, help=f"{action} a sender (address, @domain or list:<id>)"
                           + ("; 'allow import FILE' imports an address book" if action == "allow" else ""),
                           description=(f"sendergate {action} ADDRESS-OR-@DOMAIN --user U"
                                        + ("\nsendergate allow import FILE|imaps://user@host --user U [--dry-run]"
                                           if action == "allow" else "")),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        a.add_argument("entry", metavar="ADDRESS-OR-@DOMAIN" if action == "block" else "ADDRESS-OR-@DOMAIN|import")
        if action == "allow":
            a.add_argument("source", nargs="?", metavar="FILE", help="with 'import': the file or imap(s):// URL")
            a.add_argument("--dry-run", action="store_true", help="with 'import': show what would be added")
        who = a.add_mutually_exclusive_group(required=True)
        who.add_argument("--user", metavar="U", help="the user's address")
        who.add_argument("--global", dest="global_", action="store_true", help="for every user")
        a.add_argument("--note", default="")
        a.add_argument("--expires", metavar="DURATION", help="e.g. 48h, 7d: the entry lapses after that")
        _config_arg(a)
        a.set_defaults(func=cmd_list_entry, action=action)

    tg = sub.add_parser("tags", help="sign-up addresses (alice+NAME@…): accept any sender, scanned, until revoked "
                        "or expired")
    tgsub = tg.add_subparsers(dest="tags_command", metavar="ACTION")
    tgsub.required = True
    tga = tgsub.add_parser("add", help="make a sign-up address NAME on ADDRESS and print it")
    tga.add_argument("address", help="the user's own address, without a tag")
    tga.add_argument("name", help="the site's name: a-z, 0-9, and '-' or '_' between them (at most 32)")
    tga.add_argument("--expires", metavar="D", help="refuse mail to it after this long (30d, 12h, 2w)")
    tga.add_argument("--dated", action="store_true", help="write the expiry into the address with a MAC, so it "
                     "cannot be edited or guessed (default expiry 30d)")
    tga.add_argument("--folder", choices=("inbox", "tag", "screened"),
                     help="where its mail goes (default: the config's [tags] folder)")
    _config_arg(tga)
    tga.set_defaults(func=cmd_tags_add)
    tgl = tgsub.add_parser("list", help="the sign-up addresses on ADDRESS, with what they received and from whom")
    tgl.add_argument("address")
    _config_arg(tgl)
    tgl.set_defaults(func=cmd_tags_list)
    tgr = tgsub.add_parser("revoke", help="revoke the sign-up address NAME on ADDRESS: mail to it is refused "
                           "(550 5.1.1) from now on; it is kept")
    tgr.add_argument("address")
    tgr.add_argument("name")
    _config_arg(tgr)
    tgr.set_defaults(func=cmd_tags_revoke)

    dg = sub.add_parser("digest", help="the digest mail of new pending senders")
    dgsub = dg.add_subparsers(dest="digest_command", metavar="ACTION")
    dgsub.required = True
    dgs = dgsub.add_parser("send", help="send the digests that are due (or ADDRESS's); each is sent by one "
                           "node or run only")
    dgs.add_argument("address", nargs="?", help="only this user (an address of theirs)")
    dgs.add_argument("--now", action="store_true", help="send even when not due (new pending senders since "
                     "the last digest)")
    _config_arg(dgs)
    dgs.set_defaults(func=cmd_digest_send)

    rc = sub.add_parser("recount", help="rebuild the rollups read by /api/v1/stats and /api/v1/screened from the "
                                        "event log (after events were loaded or edited outside the gateway)")
    _config_arg(rc)
    rc.set_defaults(func=cmd_recount)

    d = sub.add_parser("demo", help="start a demo gateway on loopback with seeded activity and open the desktop app")
    d.add_argument("--no-desktop", action="store_true", help="run only the gateway (for headless machines)")
    d.add_argument("--dir", help="where to keep the demo's store and config (default: a temporary directory)")
    d.add_argument("--smtp-port", type=int, default=0, help="SMTP port on 127.0.0.1 (default: a free one)")
    d.add_argument("--http-port", type=int, default=0, help="HTTP port on 127.0.0.1 (default: a free one)")
    d.set_defaults(func=cmd_demo)
    return p


def _load(args: argparse.Namespace) -> Config:
    return load(args.config)


def _store(args: argparse.Namespace) -> Any:
    from .store import Store
    store = Store(_load(args).store.url)
    store.migrate()
    return store


def cmd_gateway(args: argparse.Namespace) -> int:
    from . import gateway
    from .logformat import LOG_FORMAT
    cfg = _load(args)
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format=LOG_FORMAT)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command logging costs ~25% CPU
    try:
        return gateway.run(cfg, log_format=args.log_format)
    except gateway.StartupError as exc:
        raise UserError(str(exc)) from None


def cmd_milter(args: argparse.Namespace) -> int:
    from .config import parse_milter_listen
    from .logformat import LOG_FORMAT
    from .milter import server
    if args.listen:
        try:
            parse_milter_listen(args.listen)
        except ValueError as exc:
            raise UserError(f"--listen: {exc}") from None
    cfg = _load(args)
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format=LOG_FORMAT)
    try:
        return server.run(cfg, listen=args.listen, log_format=args.log_format)
    except server.StartupError as exc:
        raise UserError(str(exc)) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        cfg = _load(args)
    except ConfigError as exc:
        for key, msg in exc.problems:
            print(f"{args.config}: {key}: {msg}", file=sys.stderr)
        return EXIT_CONFIG
    problems = []
    from .store import Store, StoreError
    try:
        store = Store(cfg.store.url)
        try:
            store.migrate()  # the gateway would at start; an upgrade (install.sh) migrates here
        finally:
            store.close()
    except (StoreError, Exception) as exc:  # noqa: BLE001 - any failure to reach the store is reported
        problems.append(("store.url", f"cannot reach the store: {str(exc).splitlines()[0]}"))
    if cfg.scan.any_scanner:  # each must answer (rspamd: GET /ping)
        import asyncio

        from .scan import Scanners
        for name, state in asyncio.run(Scanners(cfg.scan).ping()).items():
            if state != "ok":
                problems.append((f"scan.{name}", state))
    if cfg.delivery.mode in ("smtp", "lmtp") and not cfg.milter.configured:
        problems += _check_downstream(args, cfg)
    if cfg.milter.configured:  # the socket `sendergate milter` would listen on
        from .milter.server import probe
        state, detail = probe(cfg.milter.listen)
        if state == "problem":
            problems.append(("milter.listen", detail))
        else:
            print(f"{args.config}: milter.listen: {cfg.milter.listen}: {state} ({detail})")
    for key, msg in problems:
        print(f"{args.config}: {key}: {msg}", file=sys.stderr)
    if problems:
        return EXIT_CONFIG
    print(f"{args.config}: ok")
    return 0


def health_url(cfg: Config) -> str:
    """Where this machine reaches the gateway's /healthz: its http.listen, a wildcard as loopback."""
    host, port = cfg.http.listen
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    scheme = "https" if cfg.http.tls_cert else "http"
    return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}/healthz"


def cmd_health(args: argparse.Namespace) -> int:
    import ssl
    import urllib.error
    import urllib.request
    url = health_url(_load(args))
    # Our own listener, by address: its certificate names the public host, not this one.
    context = ssl._create_unverified_context() if url.startswith("https") else None
    try:
        with urllib.request.urlopen(url, timeout=args.timeout, context=context) as answer:
            print(answer.read().decode("utf-8", "replace"))
            return 0
    except urllib.error.HTTPError as exc:  # 503: degraded; the parts are named in the body
        print(exc.read().decode("utf-8", "replace"))
        return EXIT_RUNTIME
    except (OSError, ValueError) as exc:
        print(f"sendergate: {url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return EXIT_RUNTIME


def _check_downstream(args: argparse.Namespace, cfg: Config) -> list[tuple[str, str]]:
    """Report the mail server behind the gateway: reachable, STARTTLS offered, certificate verified
    (SPEC §3 [delivery] tls). Not reachable is a warning (it may start after the gateway); a TLS
    failure with tls = "required" is a problem: every message would get 451."""
    import asyncio

    from .delivery import Deliverer
    report = asyncio.run(Deliverer(cfg.delivery, cfg.smtp.hostname).probe(min(cfg.delivery.timeout, 10.0)))
    info, problems = report.lines(cfg.delivery)
    if not cfg.delivery.tcp:
        info = info[:1]  # a unix socket: no TLS to report
    print(f"{args.config}: delivery: {'; '.join(info)}")
    if not report.reachable:
        print(f"{args.config}: warning: delivery.target: not reachable now; mail gets 451 until it is",
              file=sys.stderr)
    return [("delivery.tls", p) for p in problems]


def cmd_recount(args: argparse.Namespace) -> int:
    store = _store(args)
    started = time.monotonic()
    store.recount_events()
    print(f"event_counts and screened_counts rebuilt from the event log in {time.monotonic() - started:.1f} s")
    return 0


def cmd_users_add(args: argparse.Namespace) -> int:
    store = _store(args)
    user, token = store.add_user(args.address, name=args.name, admin=args.admin)
    print(f"created user {user.addresses[0]}{' (admin)' if user.is_admin else ''}")
    print(f"API token (shown once): {token}")
    return 0


def cmd_users_token(args: argparse.Namespace) -> int:
    token = _store(args).rotate_token(args.address, args.device)
    print(f"new API token for {args.address}, device {args.device!r} "
          f"(shown once; that device's old token no longer works): {token}")
    return 0


def cmd_users_invite(args: argparse.Namespace) -> int:
    from .pairing import pair_links
    from .store import NotFound
    cfg = _load(args)
    store = _store(args)
    try:
        user = store.user_by_address(args.address)
    except NotFound:
        user, _token = store.add_user(args.address, name=args.name, admin=args.admin)
        store.revoke_device_named(user.id, "script")  # the person pairs their own device instead
        print(f"created user {user.addresses[0]}{' (admin)' if user.is_admin else ''}")
    code, expires = store.create_pairing_code(user.id)
    link, app_link = pair_links(cfg.public_url, code)
    when = datetime.fromtimestamp(expires, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"pairing code for {user.addresses[0]} (one device, until {when}): {code}")
    print(f"link (opens a page that shows the code): {link}")
    print(f"app link: {app_link}")
    print("In the desktop app's setup: type the code (or paste a link) into 'Pairing code or link', "
          "then 'Pair this computer'.")
    return 0


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M")


def cmd_users_devices(args: argparse.Namespace) -> int:
    store = _store(args)
    user = store.user_by_address(args.address)
    devices = store.list_devices(user.id)
    if not devices:
        print(f"{user.addresses[0]} has no devices: pair one with 'sendergate users invite {user.addresses[0]}'")
    for d in devices:
        print(f"{d.id:6} {d.name:30} paired {_when(d.created_at)}  last used {_when(d.last_used_at)}")
    return 0


def cmd_users_revoke_device(args: argparse.Namespace) -> int:
    store = _store(args)
    user = store.user_by_address(args.address)
    for d in store.revoke_device_named(user.id, args.device):
        print(f"revoked device {d.id} ({d.name}) of {user.addresses[0]}")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    users = _store(args).list_users()
    if not users:
        print("no users yet: add one with 'sendergate users add ADDRESS'")
    default = _mode_default(args)
    for u in users:
        print(f"{u.addresses[0] if u.addresses else '-':40} {u.role:6} {u.name}"
              + (f"  aliases: {', '.join(u.addresses[1:])}" if len(u.addresses) > 1 else "")
              + f"  mode: {u.mode or default + ' (default)'}"
              + "".join(f"  {a}: {m}" for a, m in u.address_modes))
    return 0


def _mode_default(args: argparse.Namespace) -> str:
    """The config's [challenge] default_mode."""
    return _load(args).challenge.default_mode


def cmd_users_mode(args: argparse.Namespace) -> int:
    store = _store(args)
    mode = None if args.mode == "default" else args.mode
    if args.only_address:
        user = store.set_address_mode(args.address, mode)
        shown = args.mode if mode else "the user's"
        print(f"{args.address}: mode {shown}")
    else:
        user = store.user_by_address(args.address)
        store.set_user_mode(user.id, mode)
        shown = mode or f"{_mode_default(args)} (the default)"
        print(f"{user.addresses[0]} and its aliases without a mode of their own: mode {shown}")
    if mode == "observe":
        print("observe: nothing is challenged; the app shows what would have been (verdict 'observed')")
    return 0


def cmd_users_remove(args: argparse.Namespace) -> int:
    user = _store(args).remove_user(args.address)
    print(f"removed user {', '.join(user.addresses)}")
    return 0


def cmd_users_alias(args: argparse.Namespace) -> int:
    user = _store(args).add_alias(args.address, args.alias)
    print(f"{user.addresses[0]} now receives mail for: {', '.join(user.addresses)}")
    return 0


def _tag_line(t: dict[str, Any]) -> str:
    state = t["status"] + (f" until {_when(t['expires_at'])}" if t["status"] == "live" and t["expires_at"] else "")
    senders = ", ".join(f"{s['sender']} ({s['count']})" for s in t["senders"])
    return (f"{t['address']:50} {state:26} received {t['received']}, refused {t['refused']}"
            + (f"; from {senders}" if senders else ""))


def cmd_tags_add(args: argparse.Namespace) -> int:
    cfg = _load(args)
    expires = None
    if args.expires is not None:
        try:
            expires = parse_duration(args.expires)
        except ValueError as exc:
            raise UserError(f"--expires: {exc}") from None
        if expires <= 0:
            raise UserError("--expires: must be longer than zero")
    t = _store(args).add_tag(None, args.address, args.name, expires_in=expires, dated=args.dated,
                             folder=args.folder, delimiter=cfg.domains.recipient_delimiter)
    print(t["address"])
    until = f", until {_when(t['expires_at'])} UTC" if t["expires_at"] else ", until revoked"
    print(f"sign-up address {t['name']!r} for {t['owner_address']}{until}: give it to the site; "
          "mail to it is accepted from any sender, virus- and spam-scanned")
    return 0


def cmd_tags_list(args: argparse.Namespace) -> int:
    cfg = _load(args)
    found = _store(args).list_tags(None, args.address, delimiter=cfg.domains.recipient_delimiter)
    if not found:
        print(f"no sign-up addresses on {args.address}: make one with 'sendergate tags add {args.address} NAME'")
    for t in found:
        print(_tag_line(t))
    return 0


def cmd_tags_revoke(args: argparse.Namespace) -> int:
    cfg = _load(args)
    store = _store(args)
    t = store.tag_by_name(None, args.address, args.name, delimiter=cfg.domains.recipient_delimiter)
    t = store.revoke_tag(None, t["id"], delimiter=cfg.domains.recipient_delimiter)
    print(f"revoked {t['address']}: mail to it is refused (550 5.1.1) from now on")
    return 0


def cmd_list_entry(args: argparse.Namespace) -> int:
    if args.action == "allow" and args.entry == "import":
        if not args.source:
            raise UserError("allow import needs a FILE (vCard, CSV, abook.sqlite) or an imaps:// URL")
        from .contacts_cli import run_import  # the contacts importers
        return run_import(args, _store(args))
    if args.action == "allow" and args.source:
        raise UserError(f"unexpected argument {args.source!r} (did you mean 'allow import FILE'?)")
    store = _store(args)
    user_id = None if args.global_ else store.user_by_address(args.user).id
    expires = None
    if args.expires:
        try:
            expires = time.time() + parse_duration(args.expires)
        except ValueError as exc:
            raise UserError(f"--expires: {exc}") from None
    entry, created = store.add_entry(user_id, args.action, args.entry, source="manual", note=args.note,
                                     expires_at=expires)
    who = "everyone" if user_id is None else args.user
    verb = "allowed" if args.action == "allow" else "blocked"
    print(f"{entry.pattern} {verb} for {who}" + ("" if created else " (already present)")
          + (f" until {time.strftime('%Y-%m-%d %H:%M', time.localtime(expires))}" if expires else ""))
    return 0


def cmd_digest_send(args: argparse.Namespace) -> int:
    import asyncio

    from . import delivery
    from .digest import send_digests
    from .store import Store
    cfg = _load(args)
    store = Store(cfg.store.url)
    store.migrate()
    try:
        deliverer = delivery.Deliverer(cfg.delivery, cfg.smtp.hostname)
        sent = asyncio.run(send_digests(cfg, store, deliverer, address=args.address, force=args.now))
    finally:
        store.close()
    for s in sent:
        print(f"{s.address}: {s.entries} new pending sender(s) sent" if s.entries
              else f"{s.address}: nothing new; no digest")
    if not sent:
        print("no digest due" + (f" for {args.address}" if args.address else ""))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    return run_demo(args)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .policy.address import AddressError
    from .store import Conflict, Forbidden, Invalid, NotFound, StoreError

    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ConfigError as exc:
        first = exc.problems[0]
        more = f" (and {len(exc.problems) - 1} more; run 'sendergate check-config')" if len(exc.problems) > 1 else ""
        print(f"sendergate: {exc.source or 'config'}: {first[0]}: {first[1]}{more}", file=sys.stderr)
        return EXIT_CONFIG
    except (NotFound, Invalid, Conflict, Forbidden) as exc:  # the user's mistake, not a broken store
        print(f"sendergate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as exc:
        print(f"sendergate: {exc}", file=sys.stderr)
        return EXIT_STORE
    except (UserError, AddressError) as exc:
        print(f"sendergate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
