"""Gateway enrolment: a one-time token and the cloud URL in; `agent.yaml` with broker credentials out.

POSTs an EnrolRequest to `{cloud}/api/v1/enrol` (stdlib urllib, no new dependency) and installs the
first bundle as version N behind the `agent.yaml` pointer (see edge_agent.bundle), with the uplink
username and password filled in, mode 0600. The password appears in no log line, exception or repr.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Final

import edge_agent
from edge_agent.bundle import install, validate
from edge_agent.config import ConfigError
from gateway.enrolment import (
    ENROL_PATH,
    EnrolmentWireError,
    EnrolRequest,
    decode_failure,
    decode_response,
    encode,
)

CONFIG_NAME: Final = "agent.yaml"
# Bodies bigger than this are not an enrolment answer.
_MAX_BODY: Final = 4 * 1024 * 1024


class EnrolError(Exception):
    """Enrolment failed; `reason` is the cloud's (token_used, token_expired, token_unknown) or ours."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _post(url: str, body: bytes, timeout_s: float) -> bytes:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", "Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            data: bytes = response.read(_MAX_BODY)
            return data
    except urllib.error.HTTPError as exc:
        detail = exc.read(_MAX_BODY)
        try:
            failure = decode_failure(detail)
        except EnrolmentWireError:
            raise EnrolError(f"cloud answered HTTP {exc.code} to {url}", reason=f"http_{exc.code}") from None
        raise EnrolError(
            f"enrolment refused: {failure.reason} {failure.detail}".strip(), reason=failure.reason
        ) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise EnrolError(f"cannot reach {url}: {exc}", reason="unreachable") from exc


def enrol(
    token: str,
    cloud_url: str,
    out_dir: Path,
    *,
    hostname: str | None = None,
    agent_version: str = edge_agent.__version__,
    timeout_s: float = 30.0,
) -> Path:
    """Exchange `token` at `cloud_url` for credentials; write `out_dir/agent.yaml` and return its path.

    The credentials are written before the first bundle is validated: the token is spent either way.
    A bundle the agent cannot run raises EnrolError(reason="invalid_bundle") after writing it, so the
    maintainer can fix the bundle on the cloud and the credentials are not lost.
    """
    try:
        request = EnrolRequest(token=token, agent_version=agent_version, hostname=hostname or socket.gethostname())
    except ValueError:
        raise EnrolError("the token is not an enrolment token", reason="token_unknown") from None
    url = cloud_url.rstrip("/") + ENROL_PATH
    try:
        response = decode_response(_post(url, encode(request), timeout_s))
    except EnrolmentWireError as exc:
        raise EnrolError(f"{url} did not answer an enrolment response", reason="bad_response") from exc
    bundle = response.bundle
    if bundle.gateway != response.gateway:
        raise EnrolError("the cloud's bundle names another gateway", reason="bad_response")
    document = dict(bundle.document)
    uplink = {
        "host": response.broker.host,
        "port": response.broker.port,
        **(document.get("uplink") or {}),
        "username": response.username,
        "password": response.password,
    }
    document["uplink"] = uplink
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    pointer = out_dir / CONFIG_NAME
    install(pointer, bundle.version, document)
    try:
        validate(pointer, document, f"bundle v{bundle.version}")
    except ConfigError as exc:
        raise EnrolError(
            f"credentials saved in {pointer}, but the first bundle is invalid: {exc}", reason="invalid_bundle"
        ) from exc
    return pointer
