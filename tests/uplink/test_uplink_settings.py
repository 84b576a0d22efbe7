"""UplinkSettings: validated once at load, secrets never shown, TLS settings turned into a context."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pydantic
import pytest

from edge_agent.uplink import Uplink, UplinkSettings
from gateway.tls import TlsSettings


class NoBuffer:
    """A buffer stand-in for constructing an Uplink without running it."""

    def next_batches(self, max_batches: int, *, max_items: int, max_bytes: int, now_ms: int) -> list[Any]:
        return []

    def ack(self, seq: int) -> None:
        raise AssertionError("never called")

    def stats(self) -> Any:
        raise AssertionError("never called")

    def autonomy_hours(self, ingress_bytes_per_s: float) -> float:
        return 0.0


class NoHealth:
    """An empty HealthSource."""

    def health(self) -> dict[str, Any]:
        return {}


def test_defaults_are_the_documented_ones() -> None:
    """Defaults: loopback 1883, window 32, 1000 readings / 256 KiB / 2 s batches, 30 s heartbeat."""
    s = UplinkSettings()
    assert (s.host, s.port, s.window, s.heartbeat_s) == ("127.0.0.1", 1883, 32, 30.0)
    assert (s.batch.max_items, s.batch.max_bytes, s.batch.max_age_s) == (1000, 256 * 1024, 2.0)
    assert (s.backoff_initial_s, s.backoff_max_s) == (0.5, 30.0)


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ({"hots": "x"}, "hots"),
        ({"batch": {"max_item": 5}}, "batch.max_item"),
        ({"tls": {"ca": "x"}}, "tls.ca"),
        ({"window": 0}, "window"),
        ({"window": 70000}, "window"),
        ({"port": 0}, "port"),
        ({"batch": {"max_bytes": 4 * 1024 * 1024}}, "batch.max_bytes"),
    ],
)
def test_unknown_keys_and_bad_values_are_refused(doc: dict[str, Any], where: str) -> None:
    """Unknown keys and out-of-range values fail validation naming the key path."""
    with pytest.raises(pydantic.ValidationError) as error:
        UplinkSettings.model_validate(doc)
    assert where in ".".join(str(p) for p in error.value.errors()[0]["loc"])


def test_password_is_never_shown() -> None:
    """The password is a SecretStr: repr, str and JSON dumps mask it."""
    s = UplinkSettings(username="gw-a", password=pydantic.SecretStr("hunter2"))
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s)
    assert "hunter2" not in s.model_dump_json()
    assert s.password is not None
    assert s.password.get_secret_value() == "hunter2"


def test_client_certificate_needs_its_key() -> None:
    """A client certificate without its key (or the reverse) is a configuration error."""
    with pytest.raises(pydantic.ValidationError, match="cert_file and key_file go together"):
        TlsSettings(cert_file=Path("/etc/gw.crt"))


def test_tls_context_verifies_by_default_and_insecure_only_skips_hostnames() -> None:
    """TLS verifies the chain and hostname; insecure drops only the hostname check."""
    strict = TlsSettings().context()
    assert strict.verify_mode == ssl.CERT_REQUIRED
    assert strict.check_hostname
    loose = TlsSettings(insecure=True).context()
    assert loose.verify_mode == ssl.CERT_REQUIRED
    assert not loose.check_hostname


def test_missing_ca_file_fails_at_construction(tmp_path: Path) -> None:
    """A CA file that does not exist stops the uplink from being built, not the first connect."""
    settings = UplinkSettings(tls=TlsSettings(ca_file=tmp_path / "missing.pem"))
    with pytest.raises(FileNotFoundError):
        Uplink(settings, NoBuffer(), "gw-a", NoHealth())


def test_gateway_id_is_validated() -> None:
    """A gateway id that could not be a topic level is refused."""
    with pytest.raises(ValueError, match="invalid gateway id"):
        Uplink(UplinkSettings(), NoBuffer(), "gw/a", NoHealth())
