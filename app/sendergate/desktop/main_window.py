"""The main window: navigation on the left, one page at a time, the message bar, the connection state."""

from __future__ import annotations

import gc
import logging
from datetime import datetime, timezone

import shiboken6
from PySide6.QtCore import QEvent, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from .. import __version__
from . import crash, operations
from .api_client import GatewayClient, Me, StaffUser, StreamMessage
from .autostart import Autostart, AutostartError
from .checklist import FirstRunChecklist
from .history import PANEL_ATTR
from .i18n import tr
from .icons import app_icon, icon
from .pages.activity import ActivityPage
from .pages.base import Page
from .pages.devices import DevicesPage
from .pages.import_page import ImportPage
from .pages.lists import AllowlistPage, BlocklistPage
from .pages.overview import OverviewPage
from .pages.pending import PendingPage
from .pages.screened import ScreenedPage
from .pages.staff import StaffPage
from .pages.tags import TagsPage
from .secrets import SecretStore
from .settings import Settings
from .stream import OFFLINE, ONLINE, StreamFollower
from .tray import Tray
from .undo import UndoStack, UndoToast
from .widgets import MessageBar, debounced

log = logging.getLogger("sendergate.desktop")

PAGES: tuple[type[Page], ...] = (OverviewPage, ActivityPage, PendingPage, ScreenedPage, AllowlistPage,
                                 BlocklistPage, ImportPage, DevicesPage, TagsPage)
ADMIN_PAGES: tuple[type[Page], ...] = (StaffPage,)  # added once the signed-in user turns out to be an admin
WHOSE_PAGES = ("pending", "activity")  # where an admin chooses whose (everyone's or one person's)



class MainWindow(QMainWindow):
    connection_requested = Signal()
    def __init__(self, client: GatewayClient, settings: Settings, *, me: Me | None = None,
                 stream: StreamFollower | None = None, tray: bool = True, secrets: SecretStore | None = None,
                 autostart: Autostart | None = None) -> None:
        super().__init__()
        self.client = client
        self.settings = settings
        self.autostart = autostart or Autostart()
        self._closing_for_good = False  # Quit (or a new connection's window): close, do not hide to the tray
        # The stream also brings challenges changed in the seconds before it connected; those made before the
        # app started are in Pending's first load and are not news (a notification is for what came since).
        self.opened_at = datetime.now(timezone.utc)
        self.secrets = secrets or SecretStore()  # the app's own: it holds session-only secrets too
        self.me = me
        self.setObjectName("mainWindow")
        self.setWindowIcon(app_icon())
        self._update_title()

        central = QWidget()
        outer = QVBoxLayout(central)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        self.messages = MessageBar()
        outer.addWidget(self.messages)
        self.whose_bar = QWidget()
        self.whose_bar.setObjectName("whoseBar")
        whose_row = QHBoxLayout(self.whose_bar)
        whose_row.setContentsMargins(192, 6, 6, 0)
        whose_label = QLabel(tr("&Whose:"))
        self.whose = QComboBox()
        self.whose.setObjectName("whose")
        self.whose.setAccessibleName(tr("Whose pending senders and activity"))
        self.whose.addItem(tr("Everyone"), None)
        self.whose.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)  # whole names, not "Bob Bu"
        whose_label.setBuddy(self.whose)
        whose_row.addWidget(whose_label)
        whose_row.addWidget(self.whose)
        whose_row.addStretch(1)
        self.whose.activated.connect(self._whose_chosen)
        self.whose_bar.hide()
        outer.addWidget(self.whose_bar)
        body = QHBoxLayout()
        body.setContentsMargins(6, 6, 6, 6)
        self.nav = QListWidget()
        self.nav.setObjectName("navigation")
        self.nav.setAccessibleName(tr("Pages"))
        self.nav.setIconSize(QSize(20, 20))
        self.nav.setFixedWidth(180)
        self.stack = QStackedWidget()
        body.addWidget(self.nav)
        body.addWidget(self.stack, 1)
        outer.addLayout(body, 1)
        self.undo_stack = UndoStack(self)  # pages offer their actions' undo here (undo.offer)
        self.undo_toast = UndoToast(self.undo_stack)
        outer.addWidget(self.undo_toast)
        self.undo_stack.finished.connect(lambda level, text: self.messages.show_message(
            text, level, 0 if level == "error" else 6000))
        self.setCentralWidget(central)

        self.pages: dict[str, Page] = {}
        for i, cls in enumerate(PAGES):
            # the Import page reads the IMAP account's settings and password
            page = cls(client, self.messages, settings=settings, secrets=self.secrets) if cls is ImportPage \
                else cls(client, self.messages)
            self.pages[cls.key] = page
            self.stack.addWidget(page)
            item = QListWidgetItem(icon(cls.icon_name), cls.title())
            item.setData(Qt.ItemDataRole.UserRole, cls.key)
            shortcut = QKeySequence(f"Ctrl+{i + 1}").toString(QKeySequence.SequenceFormat.NativeText)
            item.setToolTip(f"{cls.title()} ({shortcut})")
            self.nav.addItem(item)
        self.nav.currentRowChanged.connect(self._page_chosen)
        self.checklist = FirstRunChecklist(client, settings)
        overview_page = self.pages["overview"]
        assert isinstance(overview_page, OverviewPage)
        overview_page.set_checklist(self.checklist)
        self.checklist.import_requested.connect(lambda: self.show_page("import"))
        # an import adds allow entries: ask again whether the import step is done
        self.pages["import"].import_finished.connect(lambda _text: self.checklist.refresh())  # type: ignore[attr-defined]

        self.connection = QLabel()
        self.connection.setObjectName("connectionState")
        self.statusBar().addPermanentWidget(self.connection)
        self._build_menus()

        operations.set_handlers(self.messages.error, crash.show_crash)

        self.tray = Tray(self) if tray else None
        if self.tray is not None:
            self.tray.notifications_enabled = settings.notifications_enabled
            self.tray.show_window.connect(self.bring_to_front)
            self.tray.quit_requested.connect(self.quit_app)
            self.tray.open_challenges.connect(self.show_challenges)

        self.stream = stream or StreamFollower(client)
        self.stream.message.connect(self._stream_message)
        self.stream.state_changed.connect(self._stream_state)
        self.stream.reconnected.connect(self.refresh_all)
        self._refresh_overview_later = debounced(self, 1500, self.pages["overview"].refresh)
        self._refresh_whose_later = debounced(self, 1500, self._refresh_whose_pages)
        self._set_connection_label("connecting", "")

        pending = self.pages["pending"]
        assert isinstance(pending, PendingPage)
        for signal in (pending.model.rowsInserted, pending.model.rowsRemoved, pending.model.modelReset):
            signal.connect(self._pending_changed)

        if not self.restoreGeometry(settings.window_geometry):
            self.resize(1100, 720)
        self.restoreState(settings.window_state)
        keys = [cls.key for cls in PAGES]
        self.nav.setCurrentRow(keys.index(settings.last_page) if settings.last_page in keys else 0)
        if me is not None:
            self.set_me(me)

    def set_me(self, me: Me) -> None:
        """Who is signed in: the title, and for an admin the Staff page and the Whose selector."""
        self.me = me
        self._update_title()
        if me.role != "admin" or "staff" in self.pages:
            return
        for cls in ADMIN_PAGES:
            page = cls(self.client, self.messages)
            self.pages[cls.key] = page
            self.stack.addWidget(page)
            item = QListWidgetItem(icon(cls.icon_name), cls.title())
            item.setData(Qt.ItemDataRole.UserRole, cls.key)
            self.nav.addItem(item)
        self.refresh_whose()
        self._show_whose()

    def refresh_whose(self) -> None:
        """The people an admin can choose in Whose (from GET /users)."""
        def loaded(users: list[StaffUser]) -> None:
            chosen = self.whose.currentData()
            self.whose.clear()
            self.whose.addItem(tr("Everyone"), None)
            for u in users:
                label = f"{u.name} <{u.addresses[0]}>" if u.name and u.addresses else (u.addresses or (u.name,))[0]
                self.whose.addItem(label, u.id)
            self.whose.setCurrentIndex(max(0, self.whose.findData(chosen)))

        operations.Operation(self, self.client.users, loaded).run()

    def _whose_chosen(self, _index: int) -> None:
        self.client.whose = self.whose.currentData()
        self._refresh_whose_pages()
        panel = getattr(self, PANEL_ATTR, None)  # an open sender history shows the view chosen, too
        if panel is not None and shiboken6.isValid(panel) and panel.isVisible():
            panel.reload()

    def _refresh_whose_pages(self) -> None:
        for key in WHOSE_PAGES:
            self.pages[key].refresh()

    def _show_whose(self) -> None:
        admin = self.me is not None and self.me.role == "admin"
        self.whose_bar.setVisible(admin and self.current_page().key in WHOSE_PAGES)

    # -- start and stop --
    def start(self) -> None:
        """First data and the live stream; call once the window shows."""
        for key in ("overview", "pending"):
            self.pages[key].refresh()
        current = self.current_page()
        if not current.loaded and current.key not in ("overview", "pending"):
            current.refresh()
        self.stream.start()
        # Qt, the widgets and the modules are here to stay: keep them out of the cyclic GC's full passes,
        # which otherwise walk them all while holding the GIL (tens of ms the GUI thread cannot run)
        gc.freeze()

    def refresh_all(self) -> None:
        for page in self.pages.values():
            if page.loaded or page is self.current_page() or page.key in ("overview", "pending"):
                page.refresh()

    def keeps_running(self) -> bool:
        """Closing the window hides it to the tray: a tray exists here and the user wants it."""
        return self.tray is not None and Tray.available() and self.settings.keep_running

    def closeEvent(self, event: QCloseEvent) -> None:
        self.settings.window_geometry = self.saveGeometry()
        self.settings.window_state = self.saveState()
        self.settings.last_page = self.current_page().key if self.current_page().key != "staff" else "overview"
        self.settings.sync()
        if not self._closing_for_good and self.keeps_running():
            event.ignore()
            self.hide_to_tray()
            return
        QApplication.setQuitOnLastWindowClosed(True)  # really closing: the app may end with this window
        self.stream.stop()
        import_page = self.pages["import"]
        assert isinstance(import_page, ImportPage)
        import_page.shutdown()
        if self.tray is not None:
            self.tray.hide()
        super().closeEvent(event)

    # -- navigation --
    def current_page(self) -> Page:
        page = self.stack.currentWidget()
        assert isinstance(page, Page)
        return page

    def show_page(self, key: str) -> Page:
        keys = list(self.pages)
        self.nav.setCurrentRow(keys.index(key))
        return self.pages[key]

    def _page_chosen(self, row: int) -> None:
        if row < 0:
            return
        self.stack.setCurrentIndex(row)
        self._show_whose()
        page = self.current_page()
        if not page.loaded and self.isVisible():
            page.refresh()

    def hide_to_tray(self, *, tell: bool = True) -> None:
        """The window goes, the app stays (live stream, tray, notifications); told once where it went."""
        # a dialog closing while the window is hidden must not end the app as "the last window closed"
        QApplication.setQuitOnLastWindowClosed(False)
        self.hide()
        if tell and self.tray is not None and not self.settings.told_still_running:
            self.tray.tell_still_running()
            self.settings.told_still_running = True

    def close_for_good(self) -> None:
        """Close the window whatever the tray setting (a new connection's window replaces it)."""
        self._closing_for_good = True
        self.close()

    def quit_app(self) -> None:
        """File/tray Quit: really quits, also when closing would only hide to the tray."""
        self.close_for_good()
        QApplication.quit()

    def show_challenges(self, ids: list[int]) -> None:
        """A notification was clicked: Pending, its challenges in view, the newest (last) selected."""
        self.bring_to_front()
        page = self.show_page("pending")
        assert isinstance(page, PendingPage)
        rows = [page.model.row_of(i) for i in ids]
        sources = [page.model.index(r, 0) for r in rows if r >= 0]  # decided meanwhile: no longer there
        if not sources:
            return
        if any(not page.proxy.mapFromSource(ix).isValid() for ix in sources):
            page.filter.clear()  # the filter would hide one of them
        shown = [page.proxy.mapFromSource(ix) for ix in sources]
        for index in shown:
            page.table.scrollTo(index)
        newest = shown[-1]
        page.table.clearSelection()
        page.table.setCurrentIndex(newest)  # selects its row (the table selects rows)
        page.table.scrollTo(newest)
        page.table.setFocus()

    def bring_to_front(self) -> None:
        QApplication.setQuitOnLastWindowClosed(True)
        if self.isMinimized():
            self.showNormal()
        else:
            self.show()  # a maximised window comes back maximised
        self.raise_()
        self.activateWindow()

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu(tr("&File"))
        refresh = QAction(icon("refresh"), tr("&Refresh"), self)
        refresh.setShortcut(QKeySequence.StandardKey.Refresh)
        refresh.triggered.connect(lambda: self.current_page().refresh())
        file_menu.addAction(refresh)
        self.addAction(refresh)
        self.connection_action = QAction(tr("&Connection…"), self)
        self.connection_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.connection_action.triggered.connect(self.connection_requested.emit)
        file_menu.addAction(self.connection_action)
        self.notify_action = QAction(tr("&Notify about new pending senders"), self)
        self.notify_action.setCheckable(True)
        self.notify_action.setChecked(self.settings.notifications_enabled)
        self.notify_action.toggled.connect(self._set_notifications)
        file_menu.addAction(self.notify_action)
        self.keep_running_action = QAction(tr("&Keep running in the tray when the window is closed"), self)
        self.keep_running_action.setCheckable(True)
        self._show_keep_running()
        file_menu.aboutToShow.connect(self._show_keep_running)  # a panel's tray may come or go meanwhile
        self.keep_running_action.toggled.connect(self._set_keep_running)
        file_menu.addAction(self.keep_running_action)
        self.start_at_login_action = QAction(tr("&Start at login"), self)
        self.start_at_login_action.setCheckable(True)
        self.start_at_login_action.setChecked(self.autostart.is_enabled())
        self.start_at_login_action.toggled.connect(self._set_start_at_login)
        file_menu.addAction(self.start_at_login_action)
        self._build_digest_menu(file_menu)
        file_menu.addSeparator()
        quit_action = QAction(tr("&Quit"), self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)  # Cmd+Q on macOS, Ctrl+Q elsewhere
        quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        quit_action.triggered.connect(self.quit_app)
        file_menu.addAction(quit_action)

        edit_menu = self.menuBar().addMenu(tr("&Edit"))
        self.undo_action = QAction(tr("&Undo"), self)
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)  # Ctrl+Z; Cmd+Z on macOS
        self.undo_action.triggered.connect(lambda: self.undo_stack.undo())
        edit_menu.addAction(self.undo_action)
        self.addAction(self.undo_action)
        self.undo_stack.changed.connect(self._undo_changed)
        edit_menu.aboutToShow.connect(self._undo_changed)  # an action goes stale while the menu is shut
        self._undo_changed()

        view_menu = self.menuBar().addMenu(tr("&View"))
        for i, cls in enumerate(PAGES):
            action = QAction(icon(cls.icon_name), cls.title(), self)
            # Qt maps Ctrl to Cmd on macOS
            action.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
            action.triggered.connect(lambda _=False, key=cls.key: self.show_page(key))
            view_menu.addAction(action)
            self.addAction(action)  # works while the menu bar is native (macOS) or hidden, too

        help_menu = self.menuBar().addMenu(tr("&Help"))
        about = QAction(tr("&About SenderGate"), self)
        about.setMenuRole(QAction.MenuRole.AboutRole)
        about.triggered.connect(self._about)
        help_menu.addAction(about)

    def _undo_changed(self) -> None:
        latest = self.undo_stack.latest()
        label = latest.label.replace("&", "&&") if latest else ""  # an address may hold '&': not a mnemonic
        self.undo_action.setText(tr("&Undo %1").replace("%1", label) if latest else tr("&Undo"))
        self.undo_action.setEnabled(latest is not None)

    def _build_digest_menu(self, file_menu: QMenu) -> None:
        """File > Digest mail: how often the gateway mails this user a summary of new pending senders."""
        self.digest_menu = file_menu.addMenu(tr("&Digest mail"))
        self.digest_group = QActionGroup(self)
        self.digest_actions: dict[str, QAction] = {}
        for key, label in (("off", tr("&Off")), ("daily", tr("D&aily")), ("weekly", tr("&Weekly"))):
            action = QAction(label, self)
            action.setCheckable(True)
            action.setEnabled(False)  # until the gateway said what is chosen
            action.triggered.connect(lambda _=False, k=key: self._set_digest(k))
            self.digest_group.addAction(action)
            self.digest_menu.addAction(action)
            self.digest_actions[key] = action
        self.digest_menu.aboutToShow.connect(self._load_digest)

    def _show_digest(self, frequency: str) -> None:
        if self.checklist.active:
            self.checklist.show_digest(frequency)
        for key, action in self.digest_actions.items():
            action.setEnabled(True)
            action.setChecked(key == frequency)

    def _load_digest(self) -> None:
        operations.Operation(self, self.client.digest_frequency, self._show_digest).run()

    def _set_digest(self, frequency: str) -> None:
        def saved(value: str) -> None:
            self._show_digest(value)
            self.messages.info(tr("Digest mail: %1").replace("%1", self.digest_actions[value].text().replace("&", "")))
        operations.Operation(self, lambda: self.client.set_digest_frequency(frequency), saved).run()

    def _about(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, tr("About SenderGate"),
                          tr("SenderGate Desktop %1\nConnected to %2").replace("%1", __version__)
                          .replace("%2", self.client.base_url), QMessageBox.StandardButton.Ok, self)
        box.setIconPixmap(app_icon().pixmap(64, 64))
        box.open()

    def _set_notifications(self, on: bool) -> None:
        self.settings.notifications_enabled = on
        if self.tray is not None:
            self.tray.notifications_enabled = on

    def _show_keep_running(self) -> None:
        """Checked as the user chose where a tray exists; without one, off and disabled (closing quits)."""
        available = Tray.available()
        self.keep_running_action.blockSignals(True)
        self.keep_running_action.setEnabled(available)
        self.keep_running_action.setChecked(available and self.settings.keep_running)
        self.keep_running_action.setToolTip("" if available else tr("This desktop has no system tray."))
        self.keep_running_action.blockSignals(False)

    def _set_keep_running(self, on: bool) -> None:
        self.settings.keep_running = on

    def _set_start_at_login(self, on: bool) -> None:
        try:
            self.autostart.set_enabled(on)
        except AutostartError as exc:
            self.messages.error(tr("Could not change start at login: %1").replace("%1", str(exc)))
        else:
            if on:
                self.messages.info(tr("SenderGate will start when you log in."))
            else:
                self.messages.info(tr("SenderGate will no longer start when you log in."))
        self.start_at_login_action.blockSignals(True)
        self.start_at_login_action.setChecked(self.autostart.is_enabled())  # what the system now holds
        self.start_at_login_action.blockSignals(False)

    def _update_title(self) -> None:
        who = f" — {self.me.addresses[0]}" if self.me and self.me.addresses else ""
        self.setWindowTitle(f"SenderGate{who}")

    # -- live --
    def _stream_message(self, msg: StreamMessage) -> None:
        if msg.kind == "event" and msg.record.tag:  # Sign-up addresses is no Whose page: every view feeds it
            tags = self.pages["tags"]
            assert isinstance(tags, TagsPage)
            tags.live(msg)
        if self.client.whose is not None:  # one person's view: the stream carries everyone's, so reload instead
            if msg.is_for(self.client.whose) is not False:  # theirs, or the gateway did not say whose
                self._refresh_whose_later()
            return
        if msg.kind == "challenge":
            pending = self.pages["pending"]
            assert isinstance(pending, PendingPage)
            is_new = pending.live(msg.record)  # coalesced: a burst of 1,000 does not stall the window
            if is_new and self.tray is not None and msg.record.created_at >= self.opened_at:
                self.tray.notify_challenge(msg.record.sender, msg.record.subject, msg.record.id)
        elif msg.kind == "event":
            activity = self.pages["activity"]
            assert isinstance(activity, ActivityPage)
            activity.model.add_live(msg.record)
            self._refresh_overview_later()

    def _pending_changed(self, *_: object) -> None:
        pending = self.pages["pending"]
        assert isinstance(pending, PendingPage)
        count = pending.model.rowCount()
        overview = self.pages["overview"]
        assert isinstance(overview, OverviewPage)
        overview.set_pending(count)
        item = self.nav.item([cls.key for cls in PAGES].index("pending"))
        title = PendingPage.title()
        item.setText(f"{title} ({count})" if count else title)
        if self.tray is not None:
            self.tray.set_pending(count)

    def _stream_state(self, state: str, reason: str) -> None:
        self._set_connection_label(state, reason)
        if self.tray is not None:
            self.tray.set_offline(state == OFFLINE)

    def _set_connection_label(self, state: str, reason: str) -> None:
        self.connection_state = state
        if state == ONLINE:
            text = tr("● live")
            self.connection.setToolTip(tr("Connected to %1; new senders appear as they arrive.")
                                       .replace("%1", self.client.base_url))
        elif state == OFFLINE:
            text = tr("offline — retrying")
            self.connection.setToolTip(reason)
        else:
            text = tr("connecting…")
            self.connection.setToolTip("")
        self.connection.setText(text)
        self.connection.setAccessibleName(tr("Connection: %1").replace("%1", text))
        if state == OFFLINE:
            self.statusBar().showMessage(tr("Gateway unreachable (%1). Showing what was loaded; retrying.")
                                         .replace("%1", reason))
        elif state == ONLINE:
            self.statusBar().clearMessage()

    def changeEvent(self, event: QEvent) -> None:
        # the system switched light/dark: redraw icons in the new text colour
        if event.type() == QEvent.Type.PaletteChange:
            QTimer.singleShot(0, self._reload_icons)
        super().changeEvent(event)

    def _reload_icons(self) -> None:
        for i, page in enumerate(self.pages.values()):
            self.nav.item(i).setIcon(icon(page.icon_name))
