"""HTTP route for importing a tenant's contact history (who was last surveyed when)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from libs.common.deps import Tenant, UoW
from libs.common.http import error_body
from services.trigger import history

router = APIRouter(tags=["history"])

CSV_EXAMPLE = (
    "customer_id,last_surveyed_at,email\n"
    "customer-42,2025-03-14,jane@example.com\n"
    "customer-43,2025-06-01T09:30:00+02:00,\n"
)


@router.post(
    "/v1/contact-history",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}, "example": CSV_EXAMPLE}},
        }
    },
)
async def post_contact_history(tenant: Tenant, uow: UoW, request: Request) -> dict[str, Any]:
    """Import contact history from a CSV (`Content-Type: text/csv`, UTF-8), so that customers
    surveyed before the platform are not asked again inside their rest period.

    The first line is the header: `customer_id` (or `customer`) and `last_surveyed_at` are
    required, `email` is optional; columns are separated by `,`, `;` or a tab. A time is an ISO
    8601 date (00:00 UTC that day) or date-time (UTC when it has no zone). Each customer's rest
    period then runs from the later of the imported time and the last invitation already known;
    unknown customers are created, and an email is stored only where none is known.

    Bad rows do not stop the import: the answer lists them with their line number (the header is
    line 1), the first 1,000 of them, and `errors_total` counts all. Sending the file again is
    harmless. A file whose header lacks a required column, or that is not UTF-8, is refused with
    422 and nothing is imported. The body may be up to 5 MiB; import larger files with
    `nps history import TENANT FILE.csv`.
    """
    media_type, _, parameters = request.headers.get("content-type", "").partition(";")
    if media_type.strip().lower() != "text/csv":
        raise HTTPException(
            415, f"send the file as 'Content-Type: text/csv', not {media_type.strip() or 'nothing'!r}"
        )
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise HTTPException(415, f"send the file as UTF-8, not charset {value.strip()!r}")
    body = await request.body()
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        line = body.count(b"\n", 0, error.start) + 1
        raise HTTPException(
            422,
            error_body(
                "invalid_file",
                f"the file is not UTF-8 text (line {line}, byte {error.start}): "
                "save it as 'CSV UTF-8' and send it again",
            ),
        ) from None
    try:
        report = await history.import_history(uow, tenant.tenant_id, io.BytesIO(body), now=datetime.now(UTC))
    except history.RefusedFile as refused:
        raise HTTPException(422, error_body("invalid_file", str(refused))) from None
    return report.as_json()
