"""Role-based Bedrock auth: AssumeRole once, renew shortly before expiry, retry after a failure."""
from __future__ import annotations

import datetime
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber

from app.errors import GatewayError
from app.providers.bedrock import BedrockConfig, BedrockProvider
from app.providers.bedrock_auth import AssumeRoleFailed, assume_role_fetcher, refresh_margins, role_credentials
from tests.fakes.bedrock_runtime import BedrockRuntimeFake, sts_credentials, sts_error

ROLE = "arn:aws:iam::123456789012:role/gateway-bedrock"
T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)


def sts_client() -> Any:
    return botocore.session.Session().create_client(
        "sts", region_name="us-east-1", aws_access_key_id="AKIDBASE", aws_secret_access_key="base-secret")


def assumed(akid: str, expires: datetime.datetime) -> dict:
    return {"Credentials": {"AccessKeyId": akid, "SecretAccessKey": f"secret-{akid}", "SessionToken": f"token-{akid}",
                            "Expiration": expires}}


def expected(length: int = 900) -> dict:
    return {"RoleArn": ROLE, "RoleSessionName": "gw-test", "DurationSeconds": length}


def test_margins_let_a_short_session_be_used_most_of_its_life() -> None:
    advisory, mandatory = refresh_margins(900)
    assert 0 < mandatory < advisory <= 900 // 4
    assert refresh_margins(43200) == (300, 150)


def test_role_assumed_once_then_renewed_shortly_before_expiry() -> None:
    clock, sts = Clock(), sts_client()
    with Stubber(sts) as stub:
        stub.add_response("assume_role", assumed("ASIAFIRST0000000", T0 + datetime.timedelta(seconds=900)), expected())
        creds = role_credentials(assume_role_fetcher(sts, ROLE, 900, "gw-test"), 900, time_fetcher=clock)
        assert creds.get_frozen_credentials().access_key == "ASIAFIRST0000000"
        # Many calls during the session: no further STS call (Stubber would fail on an unqueued one).
        for _ in range(20):
            clock.advance(30)  # up to 600 s in, 300 s left: more than the advisory margin
            assert creds.get_frozen_credentials().token == "token-ASIAFIRST0000000"
        stub.assert_no_pending_responses()
        # Inside the renewal margin, before expiry: renewed once.
        stub.add_response("assume_role", assumed("ASIASECOND000000", clock.now + datetime.timedelta(seconds=900)), expected())
        clock.advance(200)  # 100 s left: inside the renewal margin, still valid
        assert T0 + datetime.timedelta(seconds=900) - clock.now < datetime.timedelta(seconds=refresh_margins(900)[0])
        assert creds.get_frozen_credentials().access_key == "ASIASECOND000000"
        stub.assert_no_pending_responses()
        assert creds.get_frozen_credentials().access_key == "ASIASECOND000000"


def test_assume_role_failure_is_clear_and_the_next_call_tries_again() -> None:
    clock, sts = Clock(), sts_client()
    with Stubber(sts) as stub:
        stub.add_client_error("assume_role", "AccessDenied", "User is not authorized to perform: sts:AssumeRole", 403)
        stub.add_response("assume_role", assumed("ASIALATER0000000", T0 + datetime.timedelta(hours=1)), expected())
        creds = role_credentials(assume_role_fetcher(sts, ROLE, 900, "gw-test"), 900, time_fetcher=clock)
        with pytest.raises(AssumeRoleFailed) as info:
            creds.get_frozen_credentials()
        assert info.value.status == 502
        assert ROLE in info.value.message and "AccessDenied" in info.value.message
        assert "base-secret" not in info.value.message
        assert creds.get_frozen_credentials().access_key == "ASIALATER0000000"
        stub.assert_no_pending_responses()


def test_provider_assumes_role_through_fake_sts_and_signs_with_temporary_keys() -> None:
    answers = [sts_error(403, "AccessDenied", "not allowed"), sts_credentials("ASIAROLEKEY00001", 3600)]
    with BedrockRuntimeFake(sts=lambda form: answers.pop(0), keys={"AKIDBASEKEY00001": "base-secret"}) as fake:
        config = BedrockConfig().load({"aws_config": {
            "aws_region": "us-east-1", "endpoint_url": fake.url, "sts_endpoint_url": fake.url,
            "aws_access_key_id": "AKIDBASEKEY00001", "aws_secret_access_key": "base-secret",
            "aws_role_arn": ROLE, "session_length_seconds": 1800}})
        provider = BedrockProvider("anthropic.claude-3-haiku-20240307-v1:0", config, session=None)
        request = {"messages": [{"role": "user", "content": "hello"}]}
        with pytest.raises(GatewayError) as info:
            provider.chat(request)
        assert info.value.status == 502 and "Could not assume the AWS role" in info.value.message
        assert fake.calls == []  # nothing reached Bedrock unsigned
        for _ in range(3):
            assert provider.chat(request)["choices"][0]["message"]["content"] == "You said: hello"
        assert len(fake.sts_calls) == 2  # the failure, then one success reused by three calls
        assert fake.sts_calls[-1]["RoleArn"] == ROLE and fake.sts_calls[-1]["DurationSeconds"] == "1800"
        assert {c.akid for c in fake.calls} == {"ASIAROLEKEY00001"} and fake.refused == []
        assert all(c.headers.get("X-Amz-Security-Token") == "fakeTokenASIAROLEKEY00001" for c in fake.calls)


def test_a_failed_early_renewal_keeps_the_still_valid_credentials() -> None:
    clock, sts = Clock(), sts_client()
    advisory, mandatory = refresh_margins(900)
    with Stubber(sts) as stub:
        stub.add_response("assume_role", assumed("ASIAFIRST0000000", T0 + datetime.timedelta(seconds=900)), expected())
        creds = role_credentials(assume_role_fetcher(sts, ROLE, 900, "gw-test"), 900, time_fetcher=clock)
        assert creds.get_frozen_credentials().access_key == "ASIAFIRST0000000"
        clock.advance(900 - (advisory + mandatory) // 2)  # inside the advisory margin only
        stub.add_client_error("assume_role", "Throttling", "Rate exceeded", 400)
        assert creds.get_frozen_credentials().access_key == "ASIAFIRST0000000"
        clock.advance((advisory + mandatory) // 2 - mandatory // 2)  # inside the mandatory margin
        stub.add_response("assume_role", assumed("ASIASECOND000000", clock.now + datetime.timedelta(seconds=900)), expected())
        assert creds.get_frozen_credentials().access_key == "ASIASECOND000000"
        stub.assert_no_pending_responses()
