"""The 422 answer to a request that fails validation, safe for every input (issue 20).

FastAPI's own answer echoes each error's ``input``; a body such as ``{"x": -Infinity}`` (Python's
JSON reader accepts it) then cannot be written as JSON and the client got a 500. Here an input
that cannot be written as strict JSON is replaced by a short text of it.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


def _json_safe(value: Any) -> Any:
    try:
        json.dumps(jsonable_encoder(value), allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        text = repr(value)
        return text if len(text) <= 200 else text[:200] + "…"
    return value


async def validation_error_answer(request: Request, exc: Exception) -> JSONResponse:
    """422 with FastAPI's list of errors, each ``input`` and ``ctx`` made JSON-safe."""
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        error = dict(error)
        if "input" in error:
            error["input"] = _json_safe(error["input"])
        if "ctx" in error:
            error["ctx"] = {k: _json_safe(v) for k, v in error["ctx"].items()}
        errors.append(error)
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": jsonable_encoder(errors)},
    )
