"""The maap-py adapter: whatever maap-py raises becomes a service error naming the endpoint."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests

from opera_disp.errors import AuthError, ServiceError, Unreachable
from opera_disp.io import maap as maapx

ENDPOINT = "https://cumulus.asf.earthdatacloud.nasa.gov/s3credentials"
SECRET = "pgt-SECRET-token"


def _http_error(status: int) -> requests.HTTPError:
    resp = requests.Response()
    resp.status_code = status
    resp.url = f"https://api.maap-project.org/api/members/self/awsAccess?proxy-ticket={SECRET}"
    return requests.HTTPError(f"{status} Client Error for url: {resp.url}", response=resp)


@pytest.fixture
def fake_maap(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], None]:
    """Make maap-py's ``earthdata_s3_credentials`` answer (a value) or raise (an exception)."""

    def install(answer: Any) -> None:
        class FakeAws:
            def earthdata_s3_credentials(self, endpoint: str) -> Any:
                assert endpoint == ENDPOINT
                if isinstance(answer, BaseException):
                    raise answer
                return answer

        class FakeMAAP:
            aws = FakeAws()

        monkeypatch.setattr(maapx, "_maap", lambda: FakeMAAP())

    maapx._maap.cache_clear()  # no MAAP() built by an earlier test may answer instead
    return install


@pytest.mark.parametrize(("answer", "kind", "detail"), [
    (_http_error(403), AuthError, "HTTPError, HTTP 403"),
    (_http_error(401), AuthError, "HTTPError, HTTP 401"),
    (_http_error(500), Unreachable, "HTTPError, HTTP 500"),
    (requests.exceptions.JSONDecodeError("Expecting value", f"<html>{SECRET}</html>", 0),
     Unreachable, "JSONDecodeError"),
    (json.JSONDecodeError("Expecting value", "", 0), Unreachable, "JSONDecodeError"),
    (KeyError(f"accessKeyId {SECRET}"), Unreachable, "KeyError"),
    (requests.ConnectionError(f"no route to api.maap-project.org?ticket={SECRET}"),
     Unreachable, "ConnectionError"),
])
def test_maap_failures_are_service_errors(fake_maap: Callable[[Any], None], answer: Exception,
                                          kind: type[ServiceError], detail: str) -> None:
    fake_maap(answer)
    with pytest.raises(ServiceError) as exc:
        maapx.earthdata_s3_credentials(ENDPOINT)
    assert type(exc.value) is kind
    message = str(exc.value)
    assert message == (f"MAAP could not get temporary S3 credentials for {ENDPOINT} "
                       f"({detail})")
    assert SECRET not in message and exc.value.__cause__ is None


@pytest.mark.parametrize("answer", [None, "<html>maintenance</html>", ["accessKeyId"]])
def test_maap_answer_that_is_no_credentials_is_unreachable(fake_maap: Callable[[Any], None],
                                                           answer: Any) -> None:
    fake_maap(answer)
    with pytest.raises(Unreachable, match=f"MAAP answered no temporary S3 credentials for "
                                          f"{ENDPOINT}$"):
        maapx.earthdata_s3_credentials(ENDPOINT)


def test_maap_credentials_keep_only_the_keys_of_tea(fake_maap: Callable[[Any], None]) -> None:
    fake_maap({"accessKeyId": "A", "secretAccessKey": "B", "sessionToken": "T",
               "expiration": "2099-01-01 00:00:00+00:00", "DAAC": "x"})
    assert maapx.earthdata_s3_credentials(ENDPOINT) == {
        "accessKeyId": "A", "secretAccessKey": "B", "sessionToken": "T",
        "expiration": "2099-01-01 00:00:00+00:00"}
