"""The gateway's exception tree: each error carries its HTTP status and OpenAI error type."""
from __future__ import annotations

from typing import Mapping


class GatewayError(Exception):
    """Root of every error the gateway turns into an HTTP response."""

    status: int = 500
    type: str = "server_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})


class InvalidRequest(GatewayError):
    """The client's request is malformed (400 on /v1, 422 on the MLflow routes)."""

    status = 400
    type = "invalid_request_error"


class NotFound(GatewayError):
    """An unknown endpoint or route."""

    status = 404
    type = "not_found_error"


class PayloadTooLarge(GatewayError):
    """The request body is over the configured limit."""

    status = 413
    type = "invalid_request_error"


class NotSupported(GatewayError):
    """The provider cannot do what was asked (a capability or a parameter)."""

    status = 501
    type = "not_supported_error"


class RateLimited(GatewayError):
    """The endpoint's own rate limit was hit."""

    status = 429
    type = "rate_limit_exceeded"


class UpstreamError(GatewayError):
    """The provider answered with an error; status is the mapped status."""

    status = 502
    type = "upstream_error"


class UpstreamTimeout(UpstreamError):
    """The provider did not answer in time."""

    status = 504
    type = "timeout_error"


class UpstreamUnavailable(UpstreamError):
    """The provider is overloaded or temporarily unavailable."""

    status = 503
    type = "service_unavailable_error"


class ConfigError(Exception):
    """A gateway config file is invalid; the message names file, endpoint and field."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))
