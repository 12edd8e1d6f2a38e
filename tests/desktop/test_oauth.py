"""OAuth2 sign-in for the IMAP account, against a real Dovecot and a real gateway.

The authorization server is a FAKE (tests/support/oauth_server.py): Microsoft's and Google's real
servers cannot run here, and these tests reach loopback only. It speaks the same RFCs (code grant
with PKCE, refresh, revocation, RFC 7662 introspection). Dovecot is the real one: its passdb is
`oauth2`, asking that server's introspection endpoint whether the bearer token the app presents is
good. The keychain is the in-memory keyring of tests/desktop/conftest.py: the Windows Credential
Manager and the macOS Keychain cannot run here; the app reaches it through the same keyring API.

The browser is the test: a URL handler registered with QDesktopServices receives the address the
app opens, and fetches it with httpx, following the fake's redirect back to the app's listener.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from PySide6.QtCore import QObject, QUrl, Slot
from PySide6.QtGui import QDesktopServices

from sendergate.contacts import ImapHarvester
from sendergate.desktop.importing import ImapAccount
from sendergate.desktop.oauth import (
    GOOGLE,
    MICROSOFT,
    TOKENS,
    HeldTokens,
    KeychainTokens,
    OAuthClient,
    SignIn,
    SignInProblem,
    Tokens,
    TokenSource,
    custom_provider,
    exchange_code,
)
from sendergate.desktop.pages.import_page import ImportPage
from sendergate.desktop.secrets import IMAP_PASSWORD, SERVICE, SecretStore
from sendergate.desktop.setup import SetupDialog
from tests.desktop.seed import seed
from tests.support.dovecot import DovecotServer
from tests.support.gateway import GatewayProcess
from tests.support.mailgen import append, expected_contacts, sent_messages
from tests.support.oauth_server import FakeAuthorizationServer

SCOPES = "imap offline_access"
_numbers = itertools.count(1)


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def auth() -> Iterator[FakeAuthorizationServer]:
    with FakeAuthorizationServer(scopes_required=("imap", "offline_access")) as server:
        yield server


@pytest.fixture(scope="module")
def dovecot(auth: FakeAuthorizationServer) -> Iterator[DovecotServer]:
    with DovecotServer(oauth2_introspection_url=auth.url("/introspect")) as server:
        yield server


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayProcess]:
    g = GatewayProcess()
    seed(g.store, events=10, pending=0)
    g.start()
    try:
        yield g
    finally:
        g.close()


@pytest.fixture
def user(gateway: GatewayProcess) -> SimpleNamespace:
    n = next(_numbers)
    address = f"oauth{n}@example.org"
    _u, token = gateway.store.add_user(address, name=f"OAuth {n}")
    return SimpleNamespace(address=address, token=token)


@pytest.fixture
def mailbox(dovecot: DovecotServer, auth: FakeAuthorizationServer) -> SimpleNamespace:
    """A Dovecot user with a Sent folder. Its password is for the test's own setup: the app never knows it."""
    from imapclient import IMAPClient
    n = next(_numbers)
    name = f"signin{n}@example.test"
    password = f"not-for-the-app-{n}"
    dovecot.add_user(name, password)
    sent = list(sent_messages(300, pool=f"colleague{n}x"))
    with IMAPClient("127.0.0.1", dovecot.imap_port, ssl=False, timeout=30) as c:
        c.login(name, password)
        append(c, "Sent", sent)
    auth.user = name  # whom the fake approves
    return SimpleNamespace(user=name, password=password, sent=sent, expected=expected_contacts(sent))


class Browser(QObject):
    """The system browser, as QDesktopServices.openUrl reaches it. `follow=False`: the user sees the
    address it ended on but it never reaches the app (for the paste fallback); `act=False`: the user
    never signs in (for Cancel)."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[str] = []
        self.pages: list[httpx.Response] = []
        self.follow = True
        self.act = True
        self.threads: list[threading.Thread] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        text = url.toString(QUrl.ComponentFormattingOption.FullyEncoded)
        self.opened.append(text)
        if self.act:
            thread = threading.Thread(target=self._visit, args=(text,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _visit(self, url: str) -> None:
        self.pages.append(httpx.get(url, follow_redirects=self.follow, timeout=20))

    def landed(self) -> str:
        """The address the browser ended on (the redirect it did not follow)."""
        for t in self.threads:
            t.join(20)
        return self.pages[-1].headers["location"]


@pytest.fixture
def browser() -> Iterator[Browser]:
    b = Browser()
    QDesktopServices.setUrlHandler("http", b, "open")
    try:
        yield b
    finally:
        QDesktopServices.unsetUrlHandler("http")


def oauth_settings(settings, auth: FakeAuthorizationServer, dovecot: DovecotServer, user: str) -> None:
    """The settings a finished setup leaves: the custom provider (the fake), OAuth2 login."""
    settings.imap_host, settings.imap_port, settings.imap_security, settings.imap_user = (
        "127.0.0.1", dovecot.imap_port, "none", user)
    settings.imap_auth = "oauth2"
    settings.oauth_provider = "custom"
    settings.set_oauth_client_id("custom", auth.client_id)
    settings.oauth_custom_endpoints = (auth.url("/authorize"), auth.url("/token"), SCOPES)
    settings.sync()


def client(auth: FakeAuthorizationServer) -> OAuthClient:
    return OAuthClient(custom_provider(auth.url("/authorize"), auth.url("/token"), SCOPES), auth.client_id)


def sign_in_headless(auth: FakeAuthorizationServer, login_hint: str = "") -> Tokens:
    """A sign-in without widgets: the browser visit in a thread, the wait here."""
    sign_in = SignIn(client(auth), login_hint)
    threading.Thread(target=httpx.get, args=(sign_in.authorization_url,),
                     kwargs={"follow_redirects": True, "timeout": 20}, daemon=True).start()
    return sign_in.run(lambda: False, timeout=30)


def read_and_wait(qtbot, page: ImportPage) -> str:
    with qtbot.waitSignal(page.read_finished, timeout=60_000) as done:
        page.imap_button.click()
    return done.args[0]


def logged(server: DovecotServer, text: str) -> bool:
    """Dovecot's log process writes a moment after the login: wait for the line (generous bound)."""
    deadline = time.monotonic() + 10
    while text not in server.log():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def stored_tokens(memory_keyring) -> Tokens:
    tokens = KeychainTokens(SecretStore()).load()
    assert tokens is not None
    return tokens


# -- the whole way: setup, browser, keychain, Dovecot, Import page ---------------------------------
def test_sign_in_in_the_browser_then_the_import_page_reads_sent_through_oauth(
        qtbot, browser, auth, dovecot, gateway, user, mailbox, settings, memory_keyring, window_for) -> None:
    dialog = SetupDialog(settings, SecretStore(), url=gateway.http_url, token=user.token)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.imap_box.setChecked(True)
    # the presets fill in the provider's IMAP server
    dialog.imap_auth.setCurrentIndex(dialog.imap_auth.findData("microsoft"))
    dialog.imap_auth.activated.emit(dialog.imap_auth.currentIndex())
    assert (dialog.imap_host.text(), dialog.imap_port.value(), dialog.imap_security.currentData()) == (
        "outlook.office365.com", 993, "tls")
    assert not dialog.imap_password.isVisible() and dialog.oauth_client_id.isVisible()
    assert not dialog.oauth_token_url.isVisible()  # a preset's endpoints are not the user's business
    # "another provider": the fake's endpoints
    dialog.imap_auth.setCurrentIndex(dialog.imap_auth.findData("custom"))
    dialog.imap_auth.activated.emit(dialog.imap_auth.currentIndex())
    assert dialog.oauth_token_url.isVisible()
    dialog.imap_host.setText("127.0.0.1")
    dialog.imap_security.setCurrentIndex(dialog.imap_security.findData("none"))
    dialog.imap_port.setValue(dovecot.imap_port)
    dialog.imap_user.setText(mailbox.user)
    dialog.oauth_client_id.setText(auth.client_id)
    dialog.oauth_authorization_url.setText(auth.url("/authorize"))
    dialog.oauth_token_url.setText(auth.url("/token"))
    dialog.oauth_scopes.setText(SCOPES)

    with qtbot.waitSignal(dialog.sign_in.finished, timeout=30_000) as finished:
        dialog.sign_in.sign_in_button.click()
    assert tuple(finished.args) == (1, "Signed in.")
    # what the browser was sent to: PKCE S256, a state, a loopback redirect on a port of the system's choosing
    asked = auth.authorize_requests[-1]
    assert browser.opened and browser.opened[-1].startswith(auth.url("/authorize?"))
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert len(asked["state"]) >= 32 and asked["login_hint"] == mailbox.user
    assert asked["redirect_uri"].startswith("http://127.0.0.1:") and not asked["redirect_uri"].endswith(":0/")
    assert browser.pages[-1].status_code == 200 and "Signed in" in browser.pages[-1].text
    exchange = auth.token_requests[-1]
    assert exchange["grant_type"] == "authorization_code" and len(exchange["code_verifier"]) >= 43
    assert (SERVICE, TOKENS) not in memory_keyring.secrets  # kept in memory until Save

    with qtbot.waitSignal(dialog.imap_tested, timeout=20_000) as tested:
        dialog.imap_test_button.click()
    assert tuple(tested.args) == (1, "Logged in. Sent mail is read from the folder Sent."), tested.args
    with qtbot.waitSignal(dialog.tested, timeout=20_000):
        dialog.test_button.click()
    dialog.save_button.click()

    # the keychain holds the tokens; the settings file holds none of them, nor a password
    tokens = stored_tokens(memory_keyring)
    assert tokens.refresh_token in auth.active_refresh_tokens()
    assert tokens.expires_at > time.time() + 3000
    assert (SERVICE, IMAP_PASSWORD) not in memory_keyring.secrets
    ini = Path(settings._s.fileName()).read_text()
    assert tokens.refresh_token not in ini and tokens.access_token not in ini
    assert settings.imap_auth == "oauth2" and settings.oauth_provider == "custom"

    # the Import page harvests the Sent folder, logged in with the token Dovecot checked with the fake
    window = window_for(gateway, SimpleNamespace(token=user.token))
    page = window.show_page("import")
    before = auth.introspections
    summary = read_and_wait(qtbot, page)
    assert f"New messages read: {len(mailbox.sent)}." in summary, summary
    assert {r.address for r in page.model.rows()} == mailbox.expected
    assert auth.introspections > before
    assert logged(dovecot, f"Login: user=<{mailbox.user}>, method=OAUTHBEARER")
    assert auth.grant_types()[-1] == "authorization_code"  # the token was fresh: no refresh needed


# -- refresh ----------------------------------------------------------------------------------------
def test_an_expired_access_token_is_refreshed_transparently(
        qtbot, auth, dovecot, gateway, user, mailbox, settings, memory_keyring, window_for) -> None:
    oauth_settings(settings, auth, dovecot, mailbox.user)
    vault = KeychainTokens(SecretStore())
    first = sign_in_headless(auth, mailbox.user)
    # the app's clock says the access token ran out an hour ago
    vault.save(Tokens(first.access_token, first.refresh_token, time.time() - 3600))
    window = window_for(gateway, SimpleNamespace(token=user.token))
    page = window.show_page("import")
    summary = read_and_wait(qtbot, page)
    assert f"New messages read: {len(mailbox.sent)}." in summary, summary
    assert auth.grant_types()[-1] == "refresh_token"
    second = stored_tokens(memory_keyring)
    assert second.access_token != first.access_token and second.expires_at > time.time() + 3000
    assert second.refresh_token != first.refresh_token  # rotated, and the new one kept
    assert second.refresh_token in auth.active_refresh_tokens()

    # the server ends the access token early (the app still thinks it good): one refused login,
    # then a refresh and the login again, and the user sees nothing of it
    auth.expire_access_tokens()
    n_refresh = auth.grant_types().count("refresh_token")
    summary = read_and_wait(qtbot, page)
    # read again from the start (nothing was imported, so no state saved); the hashes are known already
    assert f"New messages read: {len(mailbox.sent)}. Sent Message-IDs newly registered (replies to them reach " \
        "you): 0." in summary, summary
    assert auth.grant_types().count("refresh_token") == n_refresh + 1
    assert stored_tokens(memory_keyring).access_token != second.access_token
    assert "refused" not in window.messages.text()


def test_a_revoked_sign_in_asks_the_user_again_and_loses_nothing(
        qtbot, browser, auth, dovecot, gateway, user, mailbox, settings, memory_keyring, window_for,
        crashes) -> None:
    oauth_settings(settings, auth, dovecot, mailbox.user)
    KeychainTokens(SecretStore()).save(sign_in_headless(auth, mailbox.user))
    window = window_for(gateway, SimpleNamespace(token=user.token))
    page = window.show_page("import")
    read_and_wait(qtbot, page)
    with qtbot.waitSignal(page.import_finished, timeout=60_000):
        page.import_button.click()
    account = f"{mailbox.user}@127.0.0.1"
    state = settings.imap_harvest_state(account)
    assert state is not None and state["folders"]["Sent"]["last_uid"] == len(mailbox.sent)

    # the user withdraws the app's access at the provider; the access token runs out
    auth.revoke_all(mailbox.user)
    assert not page.sign_in_box.isVisibleTo(page)
    assert read_and_wait(qtbot, page) == ""
    assert "has expired or was withdrawn: sign in again" in window.messages.text(), window.messages.text()
    assert page.sign_in_box.isVisibleTo(page)
    # nothing lost: the account, the way it logs in, where the import stopped; the dead tokens are gone
    assert settings.imap_auth == "oauth2" and settings.imap_user == mailbox.user
    assert settings.imap_harvest_state(account) == state
    assert KeychainTokens(SecretStore()).load() is None
    assert crashes.seen == []
    # the periodic re-sync says the same, and does not crash either
    with qtbot.waitSignal(page.resync_finished, timeout=30_000) as resynced:
        page.resync_now()
    assert "sign in again" in resynced.args[0]

    # signing in again, on the page itself, and reading carries on where it stopped
    with qtbot.waitSignal(page.sign_in.finished, timeout=30_000) as finished:
        page.sign_in.sign_in_button.click()
    assert tuple(finished.args) == (1, "Signed in."), finished.args
    assert not page.sign_in_box.isVisibleTo(page)
    assert stored_tokens(memory_keyring).refresh_token in auth.active_refresh_tokens()
    summary = read_and_wait(qtbot, page)
    assert "New messages read: 0." in summary, summary


# -- the redirect ---------------------------------------------------------------------------------
def test_a_redirect_with_a_wrong_state_is_refused_and_its_code_never_used(auth, mailbox) -> None:
    sign_in = SignIn(client(auth), mailbox.user)
    outcome: list[object] = []
    waiter = threading.Thread(target=lambda: outcome.append(_run(sign_in)), daemon=True)
    waiter.start()
    n_token = len(auth.token_requests)
    # a web page in the user's browser, or another program, answers first: forged state
    forged = httpx.get(sign_in.redirect_uri, params={"code": "attacker-code", "state": "forged"}, timeout=10)
    assert forged.status_code == 400 and "does not belong" in forged.text
    no_state = httpx.get(sign_in.redirect_uri, params={"code": "attacker-code"}, timeout=10)
    assert no_state.status_code == 400
    assert sign_in.refused == 2 and len(auth.token_requests) == n_token  # no code was traded
    assert waiter.is_alive()  # still waiting for the real answer: a forged one cannot end the sign-in
    real = httpx.get(sign_in.authorization_url, follow_redirects=True, timeout=20)
    assert real.status_code == 200
    waiter.join(20)
    assert isinstance(outcome[0], Tokens)
    assert auth.token_requests[-1]["code"] != "attacker-code"
    # the listener is gone once the sign-in is over
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", sign_in.port), timeout=2).close()


def test_pasted_answers_are_checked_like_redirects(auth, mailbox) -> None:
    # an address with another sign-in's state is refused
    sign_in = SignIn(client(auth), mailbox.user)
    sign_in.paste(f"{sign_in.redirect_uri}?code=abc&state=someone-elses")
    with pytest.raises(SignInProblem, match="does not belong to this sign-in"):
        sign_in.run(lambda: False, timeout=10)
    # a bare code from another sign-in (its own PKCE verifier) is refused by the token endpoint
    other = SignIn(client(auth), mailbox.user)
    landed = httpx.get(other.authorization_url, follow_redirects=False, timeout=10).headers["location"]
    other.close()
    stolen_code = landed.split("code=")[1].split("&")[0]
    victim = SignIn(client(auth), mailbox.user)
    victim.paste(stolen_code)
    with pytest.raises(SignInProblem, match="did not accept the answer"):
        victim.run(lambda: False, timeout=10)
    assert auth.token_requests[-1]["code"] == stolen_code
    assert auth.token_errors[-1] == "redirect_uri differs"
    # and with the right redirect_uri but not the verifier of the sign-in that asked for it: PKCE refuses
    third = SignIn(client(auth), mailbox.user)
    landed = httpx.get(third.authorization_url, follow_redirects=False, timeout=10).headers["location"]
    third.close()
    code = landed.split("code=")[1].split("&")[0]
    with pytest.raises(SignInProblem, match="did not accept the answer"):
        exchange_code(client(auth), code, third.redirect_uri, victim.verifier)
    assert auth.token_errors[-1] == "PKCE verification failed"


def _run(sign_in: SignIn) -> object:
    try:
        return sign_in.run(lambda: False, timeout=30)
    except SignInProblem as exc:  # handed to the test's thread, which asserts on it
        return exc


# -- progress, cancel and the paste fallback in the window --------------------------------------
def test_the_user_can_cancel_waiting_for_the_browser_then_paste_the_address(
        qtbot, browser, auth, dovecot, gateway, user, mailbox, settings, memory_keyring) -> None:
    oauth_settings(settings, auth, dovecot, mailbox.user)
    dialog = SetupDialog(settings, SecretStore(), url=gateway.http_url, token=user.token)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.auth_choice() == "custom" and dialog.oauth_client_id.text() == auth.client_id
    panel = dialog.sign_in
    browser.act = False  # the browser opens, the user walks away
    panel.sign_in_button.click()
    qtbot.waitUntil(lambda: panel.progress.isVisible(), timeout=5_000)
    assert panel.cancel_button.isEnabled() and not panel.sign_in_button.isEnabled()
    assert panel.url_edit.text() == browser.opened[-1]  # the address, to open by hand if no browser came up
    port = panel.sign_in.port
    with qtbot.waitSignal(panel.finished, timeout=5_000) as finished:
        panel.cancel_button.click()
    assert tuple(finished.args) == (0, "Sign-in cancelled.")
    assert not panel.progress.isVisible() and panel.sign_in_button.isEnabled()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert all(r.get("redirect_uri") != f"http://127.0.0.1:{port}/" for r in auth.token_requests)

    # again; the browser cannot reach the app (say, another device), the user pastes where it ended
    browser.act, browser.follow = True, False
    panel.sign_in_button.click()
    qtbot.waitUntil(lambda: bool(browser.pages), timeout=10_000)
    panel.paste_edit.setText(browser.landed())
    with qtbot.waitSignal(panel.finished, timeout=20_000) as finished:
        panel.paste_button.click()
    assert tuple(finished.args) == (1, "Signed in."), finished.args
    with qtbot.waitSignal(dialog.imap_tested, timeout=20_000) as tested:
        dialog.imap_test_button.click()
    assert tested.args[0] == 1, tested.args[1]


# -- the pieces -----------------------------------------------------------------------------------
def test_provider_presets_ask_for_imap_and_offline_access() -> None:
    assert MICROSOFT.scopes == ("https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access")
    assert MICROSOFT.imap_host == "outlook.office365.com"
    assert GOOGLE.scopes == ("https://mail.google.com/",) and ("access_type", "offline") in GOOGLE.extra_params
    assert GOOGLE.imap_host == "imap.gmail.com"
    for p in (MICROSOFT, GOOGLE):
        assert p.authorization_url.startswith("https://") and p.token_url.startswith("https://")


def test_settings_that_would_leak_the_code_are_refused_before_a_browser_opens(browser) -> None:
    plain = OAuthClient(custom_provider("https://login.example.net/authorize", "http://login.example.net/token",
                                        SCOPES), "client")
    with pytest.raises(SignInProblem, match="must be an https:// address"):
        SignIn(plain)
    with pytest.raises(SignInProblem, match="client ID"):
        SignIn(OAuthClient(MICROSOFT, " "))
    assert browser.opened == []


def test_long_tokens_are_kept_in_keychain_entries_windows_can_hold(memory_keyring) -> None:
    store = SecretStore()
    tokens = Tokens("a" * 2500, "r" * 1500, 1.5e9)
    KeychainTokens(store).save(tokens)
    assert all(len(v) <= 1100 for v in memory_keyring.secrets.values())
    assert KeychainTokens(store).load() == tokens
    KeychainTokens(store).forget()
    assert memory_keyring.secrets == {}


def test_xoauth2_when_the_server_offers_no_oauthbearer(auth) -> None:
    """Microsoft 365 offers XOAUTH2 only; Gmail and Dovecot both."""
    with DovecotServer(oauth2_introspection_url=auth.url("/introspect"), oauth2_mechanisms="xoauth2") as server:
        server.add_user("ms@example.test", "not-for-the-app")
        auth.user = "ms@example.test"
        source = TokenSource(client(auth), HeldTokens(sign_in_headless(auth)))
        account = ImapAccount("127.0.0.1", server.imap_port, "none", "ms@example.test")
        assert account.with_login(source, lambda h: h.sent_folder_name()) == "Sent"
        assert logged(server, "Login: user=<ms@example.test>, method=XOAUTH2")


def test_a_token_for_another_user_does_not_open_this_mailbox(auth, dovecot, mailbox) -> None:
    """Dovecot checks the introspected user name against the login name."""
    auth.user = "someone-else@example.test"
    token = sign_in_headless(auth).access_token
    harvester = ImapHarvester("127.0.0.1", dovecot.imap_port, security="none", username=mailbox.user,
                              oauth2_token=token)
    with pytest.raises(Exception, match="refused the login"):
        harvester.sent_folder_name()


def test_a_sign_in_replaced_turned_off_or_not_saved_is_withdrawn_at_the_provider(
        qtbot, browser, auth, dovecot, gateway, user, mailbox, settings, memory_keyring) -> None:
    """Forgetting a refresh token here leaves it good at the provider: the app revokes it (RFC 7009)."""
    oauth_settings(settings, auth, dovecot, mailbox.user)
    settings.oauth_custom_revocation_url = auth.url("/revoke")
    first = sign_in_headless(auth, mailbox.user)
    KeychainTokens(SecretStore()).save(first)

    def dialog() -> SetupDialog:
        d = SetupDialog(settings, SecretStore(), url=gateway.http_url, token=user.token)
        qtbot.addWidget(d)
        d.show()
        with qtbot.waitSignal(d.tested, timeout=20_000):
            d.test_button.click()
        return d

    # signing in again replaces the sign-in: the old one is withdrawn once saved
    d = dialog()
    assert d.oauth_revocation_url.text() == auth.url("/revoke")
    with qtbot.waitSignal(d.sign_in.finished, timeout=30_000):
        d.sign_in.sign_in_button.click()
    assert first.refresh_token in auth.active_refresh_tokens()  # not before Save
    d.save_button.click()
    qtbot.waitUntil(lambda: first.refresh_token not in auth.active_refresh_tokens(), timeout=10_000)
    second = stored_tokens(memory_keyring)
    assert second.refresh_token in auth.active_refresh_tokens()

    # a sign-in done in the dialog and then cancelled is withdrawn; the saved one stays
    d = dialog()
    with qtbot.waitSignal(d.sign_in.finished, timeout=30_000):
        d.sign_in.sign_in_button.click()
    unsaved = d._held.tokens
    assert unsaved is not None and unsaved.refresh_token in auth.active_refresh_tokens()
    d.reject()
    qtbot.waitUntil(lambda: unsaved.refresh_token not in auth.active_refresh_tokens(), timeout=10_000)
    assert stored_tokens(memory_keyring) == second and second.refresh_token in auth.active_refresh_tokens()

    # back to a password: the tokens leave the keychain and the sign-in is withdrawn
    d = dialog()
    d.imap_auth.setCurrentIndex(d.imap_auth.findData("password"))
    d.imap_auth.activated.emit(d.imap_auth.currentIndex())
    d.imap_password.setText(mailbox.password)
    d.save_button.click()
    assert KeychainTokens(SecretStore()).load() is None and settings.imap_auth == "password"
    assert memory_keyring.secrets[(SERVICE, IMAP_PASSWORD)] == mailbox.password
    qtbot.waitUntil(lambda: second.refresh_token not in auth.active_refresh_tokens(), timeout=10_000)
