"""HTTP function `jobs`: the state of a background job the caller started."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import functions_framework
from flask import Request
from werkzeug.wrappers import Response

from functions.api.common import signed_in_router, uuid_path
from shared.config import bootstrap
from shared.db.models import Job
from shared.http.models import ReplyModel
from shared.http.routing import Call
from shared.services import jobs as jobs_service

runtime = bootstrap()
router = signed_in_router("jobs", runtime)


class JobReply(ReplyModel):
    id: UUID
    kind: str
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: dict[str, Any]
    error: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, row: Job) -> JobReply:
        return cls(
            id=row.id,
            kind=row.kind,
            status=row.status.value,
            progress=row.progress,
            error=row.error,
            created_at=row.created_at,
            finished_at=row.finished_at,
        )


@router.get("/jobs/{id}", "A job: status, progress, error", response=JobReply)
def one(call: Call) -> JobReply:
    return JobReply.of(jobs_service.get(call.user.id, uuid_path(call)))


@functions_framework.http
def jobs(request: Request) -> Response:
    return router.dispatch(request)
