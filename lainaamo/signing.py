"""Ed25519 signatures on commands, shared by the server (signs) and the agent (verifies).

A broker ACL mistake must not let anyone wipe the fleet: the server signs each command with
its private key and the agent runs a destructive command only with a valid signature by a key
it knows. What is signed is `canonical()`: the command bound to ONE device and its expiry, so a
captured signature cannot be moved to another device, another command or a later time.
See docs/protocol.md §10.1.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from lainaamo.errors import ConfigError
from lainaamo.protocol import Command, format_ts

PURPOSE = "lainaamo-cmd-v1"  # domain separation: a command signature signs nothing else
DESTRUCTIVE = frozenset({"wipe", "release"})  # never run without a valid signature
SIGNATURE_LEN = 86  # base64url of 64 bytes, unpadded
KID_LEN = 16


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64decode(text: str) -> bytes:
    """Standard or URL-safe base64, padded or not; ValueError if it is neither."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not base64: {exc}") from None


def canonical(
    device_id: str, cmd_id: str, name: str, args: Mapping[str, Any], expires_at: datetime
) -> bytes:
    """The bytes signed for a command: UTF-8 JSON, sorted keys, no spaces."""
    return json.dumps(
        {
            "purpose": PURPOSE,
            "device_id": device_id,
            "cmd_id": cmd_id,
            "name": name,
            "args": dict(args),
            "expires_at": format_ts(expires_at),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def canonical_of(cmd: Command) -> bytes:
    return canonical(cmd.device_id, cmd.cmd_id, cmd.name, cmd.args, cmd.expires_at)


def key_id(public_raw: bytes) -> str:
    """A short public identifier of a key: base64url of the first 12 bytes of its SHA-256."""
    return b64url(hashlib.sha256(public_raw).digest()[:12])


def public_key_b64(public_raw: bytes) -> str:
    """How a public key is written in settings and the enrollment response."""
    return base64.b64encode(public_raw).decode()


class Rejected(Exception):
    """A command whose signature does not allow running it; str() is the ack's detail."""


@dataclass(frozen=True)
class Verifier:
    """The server's public keys the agent trusts, by key id (several during a rotation)."""

    keys: Mapping[str, Ed25519PublicKey]

    @classmethod
    def from_setting(cls, value: str) -> Verifier:
        """From `command_public_key`: comma-separated base64 Ed25519 public keys (or empty)."""
        keys: dict[str, Ed25519PublicKey] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                raw = b64decode(part)
                keys[key_id(raw)] = Ed25519PublicKey.from_public_bytes(raw)
            except ValueError as exc:
                raise ConfigError(f"command_public_key: not an Ed25519 public key: {exc}") from None
        return cls(keys)

    def check(self, cmd: Command) -> None:
        """Raise Rejected unless the command may run.

        A destructive command needs a valid signature by a known key. Any other command runs
        unsigned; if it is signed and the agent knows keys, the signature must be valid."""
        destructive = cmd.name in DESTRUCTIVE
        if cmd.sig is None:
            if destructive:
                raise Rejected(f"unsigned {cmd.name}: refused")
            return
        if not self.keys:
            if destructive:
                raise Rejected(f"{cmd.name} refused: this agent has no server public key")
            return
        key = self.keys.get(cmd.kid or "")
        if key is None:
            raise Rejected(f"signed by an unknown key {cmd.kid!r}")
        try:
            key.verify(b64decode(cmd.sig), canonical_of(cmd))
        except (InvalidSignature, ValueError):
            raise Rejected("bad signature (wrong key, device, command or expiry)") from None
