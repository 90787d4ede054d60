"""The report page a CX manager opens, and the files it is made of (script, styles, the chart
library), all served from here: the page's CSP allows scripts and styles from this origin only, so
nothing of it comes from a CDN and no inline script or style could run."""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response

from libs.common.deps import Settings

router = APIRouter(include_in_schema=False)

_HOME = Path(__file__).parents[1]
_ASSETS = _HOME / "assets"
_CSS = "text/css; charset=utf-8"
_JS = "text/javascript; charset=utf-8"
#: Exactly the files the page loads; any other path is a 404, whatever exists on disk.
_ASSET_TYPES = {
    "report.css": _CSS,
    "report.js": _JS,
    "vendor/uplot/uPlot.min.css": _CSS,
    "vendor/uplot/uPlot.iife.min.js": _JS,
}
_ASSET_HEADERS = {"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"}

_PAGE = (_HOME / "report.html").read_text(encoding="utf-8")
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


@router.get("/", response_class=HTMLResponse)
async def report_page(settings: Settings) -> HTMLResponse:
    """The report page. A person signed in at the case desk sees the report at once; otherwise it
    asks for the API key (kept in the browser tab only), or offers to sign in at the desk."""
    sign_in = f"{settings.desk_public_url}/signin?next={quote(settings.report_public_url + '/', safe='')}"
    return HTMLResponse(_PAGE.replace("{{SIGN_IN_URL}}", html.escape(sign_in)), headers=_PAGE_HEADERS)


@router.get("/assets/{path:path}")
async def report_asset(path: str) -> Response:
    if path not in _ASSET_TYPES:
        return Response("no such asset", status_code=404, media_type="text/plain")
    return FileResponse(_ASSETS / path, media_type=_ASSET_TYPES[path], headers=_ASSET_HEADERS)
