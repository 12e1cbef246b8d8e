"""HTTP function `users`: the signed-in user's own profile."""

from __future__ import annotations

import functions_framework
from flask import Request
from pydantic import Field
from werkzeug.wrappers import Response

from functions.api.common import signed_in_router
from shared.config import bootstrap
from shared.http.models import RequestModel
from shared.http.routing import Call
from shared.services.users import UserReply, get_me, update_me

runtime = bootstrap()
router = signed_in_router("users", runtime)


class UserUpdate(RequestModel):
    display_name: str | None = Field(default=None, min_length=1, max_length=200)


@router.get("/users/me", "The signed-in user", response=UserReply)
def me(call: Call) -> UserReply:
    return get_me(call.user.id)


@router.put("/users/me", "Update the signed-in user", body=UserUpdate, response=UserReply)
def replace_me(call: Call) -> UserReply:
    return update_me(call.user.id, call.body.display_name)


@functions_framework.http
def users(request: Request) -> Response:
    return router.dispatch(request)
