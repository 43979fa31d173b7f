"""The PDF report, rendered by WeasyPrint from a Jinja template.

The URL fetcher serves only ``data:`` URIs (the charts) and files under the app's static
folder; anything else — http(s), other files, ``file:`` paths escaping the folder — is
refused, so a report can never make the server fetch a URL or read an arbitrary file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from flask import current_app, render_template
from weasyprint import HTML
from weasyprint.urls import URLFetcher

from .charts import all_charts, data_uri
from .metrics import DEFINITIONS, Report, tile_colour


class RefusedURL(ValueError):
    """A resource outside the static folder (WeasyPrint logs it and leaves it out)."""


class LocalStaticFetcher(URLFetcher):
    """Fetch ``data:`` URIs and files under ``root`` only."""

    def __init__(self, root: Path) -> None:
        super().__init__(allowed_protocols={"file", "data"})
        self.root = root.resolve()

    def fetch(self, url: str, headers=None):
        if url.startswith("data:"):
            return super().fetch(url, headers)
        if not url.startswith("file://"):
            raise RefusedURL(f"refused: {url}")
        from urllib.parse import unquote, urlparse

        path = Path(unquote(urlparse(url).path)).resolve()
        if not path.is_file() or not path.is_relative_to(self.root):
            raise RefusedURL(f"refused: {url}")
        return super().fetch(path.as_uri(), headers)


def static_root() -> Path:
    return Path(current_app.static_folder or ".")


def render_html(report: Report) -> str:
    charts = {name: data_uri(svg) for name, svg in all_charts(report).items()}
    return render_template(
        "reports/pdf.html", report=report, charts=charts, definitions=DEFINITIONS,
        tile_colour=tile_colour, generated_at=datetime.now(UTC),
    )


def render_pdf(report: Report) -> bytes:
    root = static_root()
    html = HTML(string=render_html(report), base_url=root.as_uri() + "/",
                url_fetcher=LocalStaticFetcher(root))
    return html.write_pdf()
