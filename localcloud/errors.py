"""API errors in Hetzner's envelope: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

from typing import Any

# HTTP status per error code, from the error table in the API description.
STATUS_BY_CODE: dict[str, int] = {
    "json_error": 400,
    "unauthorized": 401,
    "token_readonly": 401,
    "forbidden": 403,
    "maintenance": 403,
    "resource_limit_exceeded": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "uniqueness_error": 409,
    "conflict": 409,
    "deprecated_api_endpoint": 410,
    "resource_unavailable": 412,
    "invalid_input": 422,
    "placement_error": 422,
    "service_error": 422,
    "unsupported_error": 422,
    "locked": 423,
    "protected": 423,
    "rate_limit_exceeded": 429,
    "server_error": 500,
    "bad_gateway": 502,
    "unavailable": 503,
    "timeout": 504,
}


class APIError(Exception):
    """An error answered to the client; the status follows from the code unless given."""

    def __init__(
        self,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.status = status if status is not None else STATUS_BY_CODE.get(code, 400)

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def invalid_input(field: str, message: str) -> APIError:
    return APIError(
        "invalid_input",
        f"invalid input in field '{field}'",
        {"fields": [{"name": field, "messages": [message]}]},
    )


def not_found(kind: str, ident: object) -> APIError:
    return APIError("not_found", f"{kind} with ID '{ident}' not found")
