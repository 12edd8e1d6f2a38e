"""Overview: the last 30 days per verdict as a stacked bar chart, today's counts, the pending count."""

from __future__ import annotations

from datetime import date
from typing import Any

from PySide6.QtCharts import QBarCategoryAxis, QBarSet, QChart, QChartView, QStackedBarSeries, QValueAxis
from PySide6.QtCore import QDate, QEvent, QLocale, Qt
from PySide6.QtGui import QFont, QPainter, QPalette
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ..api_client import MAIL_VERDICTS, MODES, Me, Stats
from ..checklist import FirstRunChecklist
from ..i18n import tr
from ..models.base import verdict_label
from ..verdicts import PALETTE, colour, visible_to
from ..verdicts import icon as verdict_icon
from .base import Page

COLOURS = PALETTE  # one colour per verdict, colour-blind safe (desktop/verdicts.py)
CHART_MIN_HEIGHT, CHART_MIN_HEIGHT_WITH_CHECKLIST = 260, 100


def mode_texts() -> dict[str, tuple[str, str]]:
    """Each mailbox mode's name and what it does, for the Overview's mode box (SPEC §4.6)."""
    return {
        "enforce": (tr("Enforce"), tr("Unknown senders are asked to confirm they are a person. Viruses and "
                                      "spam are refused.")),
        "observe": (tr("Observe"), tr("Everything but viruses and spam is delivered; what would have been "
                                      "challenged is counted as “Observed”. Suggested for the first week.")),
        "off": (tr("Off"), tr("Only viruses and spam are refused; everything else is delivered.")),
    }



class OverviewPage(Page):
    key = "overview"
    icon_name = "overview"

    @staticmethod
    def title() -> str:
        return tr("Overview")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stats: Stats | None = None
        layout = QVBoxLayout(self)
        self.checklist: FirstRunChecklist | None = None  # set by the window that has the app's settings
        top = QHBoxLayout()
        self.pending_label = QLabel("–")
        self.pending_label.setObjectName("pendingCount")
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 2.2)
        font.setBold(True)
        self.pending_label.setFont(font)
        pending_box = QGroupBox(tr("Pending senders"))
        pending_layout = QVBoxLayout(pending_box)
        pending_layout.addWidget(self.pending_label, 0, Qt.AlignmentFlag.AlignCenter)
        self.pending_label.setAccessibleName(tr("Pending senders"))
        top.addWidget(pending_box)

        today_box = QGroupBox(tr("Today"))
        self.today_grid = QGridLayout(today_box)
        self.today_grid.setHorizontalSpacing(6)
        self.today_labels: dict[str, QLabel] = {}
        self._today_cells: list[QWidget] = []
        self._show_today_rows(visible_to("user", MAIL_VERDICTS))  # an admin's extra rows come with /me
        top.addWidget(today_box, 1)

        # beside today's counts (not below them): the window still fits a small screen
        mode_box = QGroupBox(tr("Mailbox mode"))
        mode_layout = QVBoxLayout(mode_box)
        self.mode_choice = QComboBox()
        self.mode_choice.setObjectName("modeChoice")
        self.mode_choice.setAccessibleName(tr("Mailbox mode"))
        for mode, (mode_name, _) in mode_texts().items():
            self.mode_choice.addItem(mode_name, mode)
        self.mode_choice.setEnabled(False)  # until the gateway said which mode is set
        self.mode_choice.activated.connect(self._mode_chosen)
        self.mode_text = QLabel("")
        self.mode_text.setObjectName("modeExplanation")
        self.mode_text.setWordWrap(True)
        self.mode_text.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        # the row's height is today's counts'; the wrapped text does not make the window bigger
        self.mode_text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        mode_layout.addWidget(self.mode_choice)
        mode_layout.addWidget(self.mode_text, 1)
        top.addWidget(mode_box, 1)
        layout.addLayout(top)
        self.me: Me | None = None

        self.chart = QChart()
        self.chart.setTitle(tr("Last 30 days"))
        self.chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        self.chart.setAnimationOptions(QChart.AnimationOption.NoAnimation)
        self.chart_view = QChartView(self.chart)
        self.chart_view.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.chart_view.setObjectName("overviewChart")
        self.chart_view.setAccessibleName(tr("Decisions per day over the last 30 days"))
        self.chart_view.setMinimumHeight(CHART_MIN_HEIGHT)
        layout.addWidget(self.chart_view, 1)
        self._apply_palette()

    def _show_today_rows(self, shown: tuple[str, ...]) -> None:
        """One row per verdict the user can have: icon, the count, its name right after it."""
        if tuple(self.today_labels) == shown:
            return
        for cell in self._today_cells:
            cell.deleteLater()
        self._today_cells.clear()
        self.today_labels.clear()
        rows = (len(shown) + 1) // 2  # two columns: the page fits a small screen
        for i, verdict in enumerate(shown):
            row, col = i % rows, (i // rows) * 4
            glyph = QLabel()
            size = self.fontMetrics().height()
            glyph.setPixmap(verdict_icon(verdict).pixmap(size, size))
            value = QLabel("–")
            value.setObjectName(f"today-{verdict}")
            value.setAccessibleName(tr("Today: %1").replace("%1", verdict_label(verdict)))
            value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            name = QLabel(verdict_label(verdict))
            name.setBuddy(value)
            self.today_grid.addWidget(glyph, row, col)
            self.today_grid.addWidget(value, row, col + 1)
            self.today_grid.addWidget(name, row, col + 2)
            self._today_cells += [glyph, value, name]
            self.today_labels[verdict] = value
        self.today_grid.setColumnMinimumWidth(3, self.fontMetrics().horizontalAdvance("MM"))  # gap between columns
        self.today_grid.setColumnStretch(7, 1)
        if self.stats is not None:
            self._show_today(self.stats)

    def _show_today(self, stats: Stats) -> None:
        today = stats.today()
        for verdict, label in self.today_labels.items():
            label.setText(QLocale().toString(today.get(verdict, 0)))

    def set_checklist(self, checklist: FirstRunChecklist) -> None:
        """The first-run checklist, above everything else on the page."""
        self.checklist = checklist
        layout = self.layout()
        assert isinstance(layout, QVBoxLayout)
        layout.insertWidget(0, checklist)
        checklist.mode_requested.connect(self.open_mode_choice)
        if checklist.active:  # the page still fits a small screen (760 x 540) while the list shows
            self.chart_view.setMinimumHeight(CHART_MIN_HEIGHT_WITH_CHECKLIST)
            checklist.closed.connect(lambda: self.chart_view.setMinimumHeight(CHART_MIN_HEIGHT))

    def open_mode_choice(self) -> None:
        """Where the checklist's mode button goes: the mode box, opened."""
        self.mode_choice.setFocus()
        if self.mode_choice.isEnabled():
            self.mode_choice.showPopup()

    def _apply_palette(self) -> None:
        dark = self.palette().color(QPalette.ColorRole.Window).lightness() < 128
        self.chart.setTheme(QChart.ChartTheme.ChartThemeDark if dark else QChart.ChartTheme.ChartThemeLight)
        self.chart.setBackgroundBrush(self.palette().brush(QPalette.ColorRole.Window))
        self.chart.setTitleBrush(self.palette().brush(QPalette.ColorRole.WindowText))
        self.chart.legend().setLabelColor(self.palette().color(QPalette.ColorRole.WindowText))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_palette()
            if self.stats is not None:
                self.show_stats(self.stats)
        super().changeEvent(event)

    def refresh(self) -> None:
        client = self.client
        self.run(lambda: client.stats(30), self.show_stats, lambda exc: self.messages.error(str(exc)))
        self.run(client.me, self.show_mode, self._me_failed)

    def _me_failed(self, exc: Exception) -> None:
        self.messages.error(str(exc))
        if self.checklist is not None and self.checklist.active:
            self.checklist.show_problem(exc)

    def show_mode(self, me: Me) -> None:
        self.me = me
        self._show_today_rows(visible_to(me.role, MAIL_VERDICTS))
        index = self.mode_choice.findData(me.mode if me.mode in MODES else "enforce")
        self.mode_choice.setCurrentIndex(index)
        self.mode_choice.setEnabled(True)
        name, text = mode_texts()[self.mode_choice.itemData(index)]
        if me.mode == "enforce" and me.mode_is_default:
            text += " " + tr("New here? Try Observe for a week first.")
        self.mode_text.setText(text)
        self.mode_text.setToolTip(text)
        if self.checklist is not None and self.checklist.active:
            self.checklist.show_me(me)

    def _mode_chosen(self, index: int) -> None:
        mode = self.mode_choice.itemData(index)
        if self.me is not None and mode == self.me.mode:
            return
        client = self.client
        self.mode_choice.setEnabled(False)

        def failed(exc: Exception) -> None:
            if self.me is not None:
                self.show_mode(self.me)  # back to what the gateway has
            self.messages.error(str(exc))

        def done(me: Me) -> None:
            self.show_mode(me)
            self.messages.info(tr("Mailbox mode: %1").replace("%1", mode_texts()[me.mode][0]))

        self.run(lambda: client.set_mode(mode), done, failed)

    def set_pending(self, count: int) -> None:
        self.pending_label.setText(QLocale().toString(count))

    def show_stats(self, stats: Stats) -> None:
        self.stats = stats
        self.loaded = True
        self.set_pending(stats.pending_challenges)
        self._show_today(stats)
        self.chart.removeAllSeries()
        for axis in self.chart.axes():
            self.chart.removeAxis(axis)
        series = QStackedBarSeries()
        days = [day for day, _ in stats.days]
        shown = [v for v in MAIL_VERDICTS if any(counts.get(v, 0) for _, counts in stats.days)] or ["delivered"]
        for verdict in shown:
            bar = QBarSet(verdict_label(verdict))
            bar.setColor(colour(verdict))
            bar.setBorderColor(self.palette().color(QPalette.ColorRole.Window))  # a hairline between stacked bars
            for _, counts in stats.days:
                bar.append(counts.get(verdict, 0))
            series.append(bar)
        self.chart.addSeries(series)
        axis_x = QBarCategoryAxis()
        axis_x.append([self._day_label(d, i, len(days)) for i, d in enumerate(days)])
        axis_x.setTruncateLabels(False)  # narrow bars would elide every date to "…"
        axis_x.setLabelsColor(self.palette().color(QPalette.ColorRole.WindowText))
        self.chart.addAxis(axis_x, Qt.AlignmentFlag.AlignBottom)
        series.attachAxis(axis_x)
        axis_y = QValueAxis()
        peak = max((sum(c.get(v, 0) for v in shown) for _, c in stats.days), default=0)
        axis_y.setRange(0, max(5, peak))
        axis_y.applyNiceNumbers()
        axis_y.setLabelFormat("%d")
        axis_y.setLabelsColor(self.palette().color(QPalette.ColorRole.WindowText))
        self.chart.addAxis(axis_y, Qt.AlignmentFlag.AlignLeft)
        series.attachAxis(axis_y)

    @staticmethod
    def _day_label(iso: str, i: int, n: int) -> str:
        # every 5th day counted back from today gets a label; the others a unique invisible one
        if (n - 1 - i) % 5:
            return "\u200b" * (i + 1)
        d = date.fromisoformat(iso)
        return QLocale().toString(QDate(d.year, d.month, d.day), "d MMM")
