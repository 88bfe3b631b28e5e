"""AWS credentials for the Bedrock provider: static keys, an assumed role kept fresh, or the default chain."""
from __future__ import annotations

import datetime
import functools
import uuid
from typing import Any, Callable, Mapping

import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.credentials import (
    CredentialProvider,
    CredentialResolver,
    Credentials,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import BotoCoreError, ClientError

from app.errors import UpstreamError

ROLE_METHOD = "ai-gateway-assume-role"


class AssumeRoleFailed(UpstreamError):
    """STS refused or could not be reached; raised from the Bedrock call that needed credentials."""


def refresh_margins(session_length: int) -> tuple[int, int]:
    """(advisory, mandatory) seconds before expiry at which role credentials are renewed.

    botocore's defaults (15 and 10 minutes) would treat a 900-second session as due for renewal
    on every call; scale the margins to the session so renewal happens once per session.
    """
    advisory = max(30, min(300, session_length // 4))
    return advisory, max(15, advisory // 2)


def assume_role_fetcher(
    sts: Any, role_arn: str, session_length: int, session_name: str | None = None,
) -> Callable[[], dict]:
    """A `refresh_using` callable for botocore: one STS AssumeRole call, as credential metadata."""
    name = session_name or f"ai-gateway-{uuid.uuid4().hex[:12]}"

    def fetch() -> dict:
        # STS reply shape (sts service-2.json AssumeRoleResponse):
        # {"Credentials": {"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration": datetime}}
        try:
            reply = sts.assume_role(RoleArn=role_arn, RoleSessionName=name, DurationSeconds=session_length)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise AssumeRoleFailed(
                f"Could not assume the AWS role {role_arn}: {err.get('Code', 'Error')}: "
                f"{err.get('Message', '')}".rstrip(": ")
            ) from None
        except BotoCoreError as exc:
            raise AssumeRoleFailed(
                f"Could not assume the AWS role {role_arn}: {type(exc).__name__}."
            ) from None
        creds = reply["Credentials"]
        expiry = creds["Expiration"]
        if isinstance(expiry, datetime.datetime):
            expiry = expiry.astimezone(datetime.timezone.utc).isoformat()
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": expiry,
        }

    return fetch


def role_credentials(
    fetch: Callable[[], dict], session_length: int,
    time_fetcher: Callable[[], datetime.datetime] | None = None,
) -> DeferredRefreshableCredentials:
    """Credentials fetched on first use and renewed shortly before expiry, not on every call.

    A failed fetch leaves nothing cached, so the next request tries STS again.
    """
    kwargs = {"time_fetcher": time_fetcher} if time_fetcher else {}
    creds = DeferredRefreshableCredentials(refresh_using=fetch, method=ROLE_METHOD, **kwargs)
    creds._advisory_refresh_timeout, creds._mandatory_refresh_timeout = refresh_margins(session_length)
    return creds


class _Fixed(CredentialProvider):
    """A credential chain of one: the credentials object we built."""

    METHOD = "ai-gateway"

    def __init__(self, credentials: Credentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Credentials:
        return self._credentials


@functools.lru_cache(maxsize=1)
def _loader() -> botocore.loaders.Loader:
    # Service models are read-only data; sharing one loader makes each endpoint's client
    # about four times cheaper to build (no re-parsing of the JSON models on reload).
    return botocore.loaders.create_loader()


def new_session() -> botocore.session.Session:
    session = botocore.session.Session()
    session.register_component("data_loader", _loader())
    return session


def build_session(aws: Mapping[str, Any], sts_client: Any = None) -> botocore.session.Session:
    """A botocore session carrying the configured credentials (keys, role, or default chain)."""
    session = new_session()
    keys = aws.get("aws_access_key_id")
    if aws.get("aws_role_arn"):
        if sts_client is None:
            base = new_session()
            sts_client = base.create_client(
                "sts", region_name=aws["aws_region"], endpoint_url=aws.get("sts_endpoint_url"),
                aws_access_key_id=keys, aws_secret_access_key=aws.get("aws_secret_access_key"),
                aws_session_token=aws.get("aws_session_token"),
                config=Config(retries={"total_max_attempts": 2, "mode": "standard"}),
            )
        length = int(aws.get("session_length_seconds", 900))
        creds = role_credentials(assume_role_fetcher(sts_client, aws["aws_role_arn"], length), length)
        session.register_component("credential_provider", CredentialResolver([_Fixed(creds)]))
    elif keys:
        static = Credentials(keys, aws["aws_secret_access_key"], aws.get("aws_session_token"))
        session.register_component("credential_provider", CredentialResolver([_Fixed(static)]))
    return session
