"""`lainaamo agent enroll`: spend an enrollment token and keep the configuration it returns.

The agent posts the token and its device id to the server's `POST /api/v1/enroll` (plain
`urllib`, no server code) and writes the answer to `<agent_state_dir>/enrollment.json`
(mode 0600: from the security release on it holds the device's MQTT password).
`lainaamo agent` then reads it: values from enrollment.json fill the device id and the MQTT
settings that were left at their defaults; settings given explicitly (file or environment)
win.
"""

from __future__ import annotations

import json
import os
import re
import socket
import urllib.error
import urllib.request
from dataclasses import fields
from pathlib import Path
from typing import Any

from lainaamo.config import Settings
from lainaamo.errors import LainaamoError
from lainaamo.protocol.topics import DEVICE_ID_RE

FILE_NAME = "enrollment.json"
TIMEOUT_S = 15.0
# enrollment.json key in "mqtt" -> setting it fills in.
_MQTT_SETTINGS = {
    "host": "mqtt_host",
    "port": "mqtt_port",
    "protocol": "mqtt_protocol",
    "tls": "mqtt_tls",
    "topic_prefix": "topic_prefix",
}


class EnrollmentFailed(LainaamoError):
    """The server could not be reached or refused the enrollment; the message says which."""


def default_device_id() -> str:
    """This machine's host name made into a valid device id (the platforms expose no hardware
    id yet); a name too short to be one gets the start of /etc/machine-id appended."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname().split(".")[0]).strip("-._")
    if len(name) < 3:
        try:
            machine = Path("/etc/machine-id").read_text().strip()[:8]
        except OSError:
            machine = ""
        name = f"{name or 'tablet'}-{machine}" if machine else ""
    name = name[:64]
    if not DEVICE_ID_RE.match(name):
        raise EnrollmentFailed("cannot make a device id of the host name; give --device-id")
    return name


def request_enrollment(
    server: str,
    token: str,
    device_id: str,
    *,
    serial: str | None = None,
    model: str | None = None,
    timeout: float = TIMEOUT_S,
) -> dict[str, Any]:
    """POST the token to the server; the configuration it returns, or EnrollmentFailed."""
    if not server.startswith(("http://", "https://")):
        raise EnrollmentFailed(f"--server must be an http:// or https:// URL, not {server!r}")
    url = server.rstrip("/") + "/api/v1/enroll"
    payload = {"token": token, "device_id": device_id, "serial": serial, "model": model}
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = json.loads(response.read().decode())
    except urllib.error.HTTPError as exc:
        raise EnrollmentFailed(f"the server refused the enrollment: {_message(exc)}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EnrollmentFailed(f"cannot reach the server at {server}: {reason}") from None
    except ValueError:
        raise EnrollmentFailed(f"{url} did not answer with JSON; is it a Lainaamo?") from None
    if not isinstance(body, dict) or body.get("device_id") != device_id:
        raise EnrollmentFailed("the server's answer is not an enrollment configuration")
    return body


def _message(exc: urllib.error.HTTPError) -> str:
    # Closed here: the error holds the response's socket, which would otherwise stay open
    # until the garbage collector finds it (the error lives on as the next one's context).
    with exc:
        try:
            error = json.loads(exc.read().decode())["error"]
            return f"{error['message']} (HTTP {exc.code})"
        except (ValueError, KeyError, TypeError):
            return f"HTTP {exc.code} {exc.reason}"


def write_config(state_dir: str | Path, config: dict[str, Any]) -> Path:
    """Write enrollment.json readable by its owner only, replacing any earlier one."""
    directory = Path(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / FILE_NAME
    temporary = directory / (FILE_NAME + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, json.dumps(config, indent=2).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, target)
    return target


def load_config(state_dir: str | Path) -> dict[str, Any] | None:
    """The saved enrollment, or None if the agent has not enrolled."""
    path = Path(state_dir) / FILE_NAME
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise EnrollmentFailed(f"cannot read {path}: {exc}") from None
    if not isinstance(config, dict):
        raise EnrollmentFailed(f"{path} is not an enrollment configuration")
    return config


def with_enrollment(settings: Settings) -> Settings:
    """Settings completed from enrollment.json; explicitly given settings win."""
    config = load_config(settings.agent_state_dir)
    if config is None:
        return settings
    defaults: dict[str, Any] = {f.name: f.default for f in fields(Settings)}
    changes: dict[str, Any] = {}
    if not settings.device_id and isinstance(config.get("device_id"), str):
        changes["device_id"] = config["device_id"]
    found = config.get("mqtt")
    mqtt: dict[str, Any] = found if isinstance(found, dict) else {}
    for key, name in _MQTT_SETTINGS.items():
        if key in mqtt and mqtt[key] is not None and getattr(settings, name) == defaults[name]:
            changes[name] = type(defaults[name])(mqtt[key])
    if mqtt.get("password") and not settings.mqtt_password:
        changes["mqtt_password"] = str(mqtt["password"])
    trusted = config.get("command_public_key")
    if isinstance(trusted, str) and trusted and not settings.command_public_key:
        changes["command_public_key"] = trusted
    return settings.replace(**changes) if changes else settings


def enroll(
    settings: Settings,
    server: str,
    token: str,
    device_id: str | None = None,
    *,
    serial: str | None = None,
    model: str | None = None,
) -> tuple[dict[str, Any], Path]:
    """Enroll this machine and save the configuration; returns it and where it was written."""
    device_id = device_id or default_device_id()
    if not DEVICE_ID_RE.match(device_id):
        raise EnrollmentFailed(f"device id {device_id!r} is not valid (3-64 of A-Z a-z 0-9 _ . -)")
    config = request_enrollment(server, token, device_id, serial=serial, model=model)
    config["server"] = server.rstrip("/")
    return config, write_config(settings.agent_state_dir, config)
