"""A region's own certificate authority and a server certificate from it, made with openssl:
for a test OpenID Connect provider served over HTTPS that no system CA vouches for (an
internal Keycloak), so that only `ca_file` can make it trusted."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServerCertificate:
    ca: Path  # the CA's certificate (PEM): what `ca_file` names
    certificate: Path
    key: Path


def server_certificate(directory: Path, ip: str) -> ServerCertificate:
    """A new CA in `directory` and a certificate from it for a server at `ip`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, crt = (
        directory / name for name in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt")
    )

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-new", "-nodes", "-newkey", "rsa:2048", "-sha256", "-days", "2",
            "-subj", "/O=Region/CN=Region internal CA",
            "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    ext = directory / "server.ext"
    ext.write_text(f"subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth\n")
    openssl("req", "-new", "-nodes", "-newkey", "rsa:2048", "-sha256", "-subj", "/CN=idp",
            "-keyout", str(key), "-out", str(csr))  # fmt: skip
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "2", "-sha256", "-extfile", str(ext),
            "-out", str(crt))  # fmt: skip
    ca_key.unlink()
    return ServerCertificate(ca, crt, key)
