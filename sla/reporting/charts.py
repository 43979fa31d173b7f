"""Server-side SVG charts (pygal), the same markup in the portal page and the PDF.

No JavaScript is attached (``js=[]``): the charts are static images, so the portal's CSP
needs no exception and WeasyPrint renders them unchanged.
"""

from __future__ import annotations

import base64

import pygal
from pygal.style import Style

from .metrics import Report

_STYLE = Style(background="white", plot_background="white", foreground="#222",
               foreground_strong="#111", foreground_subtle="#666",
               colors=("#1f5fa8", "#b23b3b", "#4a8a3a", "#c98a1b"), font_family="sans-serif")


def _config(chart) -> None:
    chart.js = []
    chart.disable_xml_declaration = True
    chart.explicit_size = True
    chart.width, chart.height = 640, 300
    chart.legend_at_bottom = True
    chart.print_values = False


def weekly_trend_svg(report: Report) -> str:
    """SLA attainment % per week against the contract target."""
    chart = pygal.Line(style=_STYLE, range=(0, 100), title="SLA attainment by week (%)")
    _config(chart)
    chart.x_labels = [label.split(" (")[0] for label in report.by_week]
    chart.add("Attainment %", [f.attainment for f in report.by_week.values()])
    if report.contract is not None:
        chart.add("Target", [report.contract.attainment_target] * len(report.by_week),
                  show_dots=False, stroke_style={"dasharray": "6, 4"})
    return chart.render(is_unicode=True)


def volume_svg(report: Report) -> str:
    """Received and completed per week."""
    chart = pygal.Bar(style=_STYLE, title="Volume by week")
    _config(chart)
    chart.x_labels = [label.split(" (")[0] for label in report.by_week]
    chart.add("Received", [f.received for f in report.by_week.values()])
    chart.add("Completed", [f.completed for f in report.by_week.values()])
    return chart.render(is_unicode=True)


def aging_svg(report: Report) -> str:
    chart = pygal.Bar(style=_STYLE, title="Backlog aging at period end (business time)")
    _config(chart)
    chart.x_labels = [label for label, _ in report.aging]
    chart.add("Open tasks", [count for _, count in report.aging])
    return chart.render(is_unicode=True)


def all_charts(report: Report) -> dict[str, str]:
    return {"trend": weekly_trend_svg(report), "volume": volume_svg(report),
            "aging": aging_svg(report)}


def data_uri(svg: str) -> str:
    """An <img src> for the PDF (WeasyPrint draws SVG images; no inline script needed)."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
