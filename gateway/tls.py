"""TLS to the broker, the same for a gateway's uplink and the cloud's ingest: settings in, an SSL context out."""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import BaseModel, ConfigDict, model_validator


class TlsSettings(BaseModel):
    """CA bundle, optional client certificate, and a test-rig-only insecure switch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # Skips hostname verification (the chain is still verified); for test rigs with IP-only certs.
    insecure: bool = False

    @model_validator(mode="after")
    def _pair(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self

    def context(self) -> ssl.SSLContext:
        """Return an SSL context verifying the chain and hostname (unless insecure), with the client cert if set."""
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.cert_file is not None and self.key_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        if self.insecure:
            context.check_hostname = False
        return context
