"""Message dataclasses of MQTT contract v1, and their parsing and encoding.

`parse()` is the only way raw MQTT payloads enter Lainaamo: it checks the size, the JSON,
the schema (the files under `schemas/`), that the payload names the device of its topic and
that a tablet's text holds no personal identity code (`personal_data.py`), and returns a
frozen dataclass. Anything else raises ProtocolError with a bounded reason.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Literal

import fastjsonschema

from lainaamo.errors import ProtocolError
from lainaamo.protocol.personal_data import refuse_personal_data
from lainaamo.protocol.topics import Kind

SCHEMA_VERSION = 1
MAX_PAYLOAD_BYTES = 16 * 1024
# Session messages carry complete SDPs (every ICE candidate inline): allow more.
MAX_SESSION_PAYLOAD_BYTES = 64 * 1024

PresenceState = Literal["online", "offline"]
# A policy key as a device names it in a status report's `enforcement` (status.json).
POLICY_KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
MAX_ENFORCEMENT_KEYS = 32  # per list: unsupported, failed
MAX_REASON_CHARS = 120


def format_ts(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and a 'Z', as every message carries it."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def _parse_ts(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("timestamp has no time zone")
    return moment.astimezone(UTC)


@dataclass(frozen=True, kw_only=True)
class Envelope:
    """Fields every message carries."""

    device_id: str
    ts: datetime
    boot: int
    seq: int
    v: int = SCHEMA_VERSION

    @property
    def position(self) -> tuple[int, int]:
        """Where this message stands in its sender's stream: later messages compare greater."""
        return (self.boot, self.seq)


@dataclass(frozen=True, kw_only=True)
class Presence(Envelope):
    state: PresenceState
    reason: str | None = None
    agent_version: str | None = None
    status_interval_s: int | None = None

    kind = Kind.PRESENCE


@dataclass(frozen=True)
class EnforcementReport:
    """What a device enforces of the policy it applied (docs/protocol.md §6.2, §9): every key of
    that policy is enforced unless it is listed as `unsupported` (the device cannot) or in
    `failed` (it tried; the value says why)."""

    unsupported: tuple[str, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        both = set(self.unsupported) & self.failed.keys()
        if both:
            raise ValueError(f"keys {sorted(both)} are both unsupported and failed")

    @property
    def complete(self) -> bool:
        """Whether the device enforces every key of the policy."""
        return not self.unsupported and not self.failed

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EnforcementReport:
        """From the `enforcement` object of a status report (as its schema checked it)."""
        return cls(tuple(data.get("unsupported", ())), dict(data.get("failed", {})))

    def to_json(self) -> dict[str, Any]:
        """The `enforcement` object of a status report."""
        return {"unsupported": list(self.unsupported), "failed": dict(self.failed)}


@dataclass(frozen=True)
class OutboxReport:
    """A device's outbox when it made a status report (docs/protocol.md §6.2, §11): messages
    waiting for the server's receipt, how long the oldest has waited, and how many it sent
    again, and dropped from a full outbox, since its previous status report."""

    depth: int = 0
    oldest_s: int = 0
    resent: int = 0
    dropped: int = 0

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OutboxReport:
        return cls(
            int(data["depth"]), int(data["oldest_s"]), int(data["resent"]), int(data["dropped"])
        )


@dataclass(frozen=True, kw_only=True)
class StatusReport(Envelope):
    battery_pct: int
    charging: bool
    storage_free_mb: int
    os_version: str
    agent_version: str
    network: str
    uptime_s: int
    locked: bool
    kiosk: bool
    desired_version: int
    storage_total_mb: int | None = None
    signal_pct: int | None = None
    reason: str | None = None
    # Of the policy of `desired_version`; None: the device does not say (an older agent).
    enforcement: EnforcementReport | None = None
    # None: the device does not say (an agent from before receipts, 2026-12).
    outbox: OutboxReport | None = None

    kind = Kind.STATUS


@dataclass(frozen=True, kw_only=True)
class DesiredState(Envelope):
    version: int
    policy: dict[str, Any] = field(default_factory=dict)

    kind = Kind.DESIRED


@dataclass(frozen=True, kw_only=True)
class Command(Envelope):
    cmd_id: str
    name: str
    expires_at: datetime
    args: dict[str, Any] = field(default_factory=dict)
    sig: str | None = None  # Ed25519 signature, base64url (lainaamo.signing, protocol.md §10.1)
    kid: str | None = None  # which server key made `sig`

    kind = Kind.CMD


@dataclass(frozen=True, kw_only=True)
class CommandAck(Envelope):
    cmd_id: str
    status: str
    detail: str | None = None

    kind = Kind.CMD_ACK


@dataclass(frozen=True, kw_only=True)
class SessionSignal(Envelope):
    """A remote-support step relayed by the server to the device (see docs/protocol.md §17)."""

    session_id: str
    type: str  # request | offer | candidate | hangup
    caller: str | None = None
    purpose: str | None = None
    mode: str | None = None
    consent_timeout_s: int | None = None
    max_duration_s: int | None = None
    ice_servers: list[dict[str, Any]] | None = None
    sdp: str | None = None
    candidate: str | None = None
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None
    reason: str | None = None

    kind = Kind.SESSION


@dataclass(frozen=True, kw_only=True)
class SessionEvent(Envelope):
    """What happened to a remote-support session on the device."""

    session_id: str
    type: str  # consent | answer | connected | ended
    consent: str | None = None
    control: bool | None = None
    sdp: str | None = None
    connection_type: str | None = None
    reason: str | None = None
    detail: str | None = None

    kind = Kind.SESSION_EVT


Range = tuple[int, int, int]  # (boot, first seq, last seq), inclusive
MAX_RECEIPT_RANGES = 512


@dataclass(frozen=True, kw_only=True)
class Receipt(Envelope):
    """Which of a device's messages the server has committed (docs/protocol.md §11.1): the
    device may forget every message of its outbox whose (boot, seq) one of the ranges holds."""

    committed: tuple[Range, ...]

    kind = Kind.RECEIPT

    def covers(self, boot: int, seq: int) -> bool:
        return any(b == boot and first <= seq <= last for b, first, last in self.committed)


def ranges_of(positions: Iterable[tuple[int, int]]) -> list[Range]:
    """Positions folded into the fewest inclusive ranges, in order: [(3, 1), (3, 2), (3, 4)]
    gives [(3, 1, 2), (3, 4, 4)]."""
    found: list[Range] = []
    for boot, seq in sorted(set(positions)):
        if found and found[-1][0] == boot and found[-1][2] == seq - 1:
            found[-1] = (boot, found[-1][1], seq)
        else:
            found.append((boot, seq, seq))
    return found


USAGE_CATEGORIES = ("chat", "appointment", "digipath", "group", "other")


@dataclass(frozen=True, kw_only=True)
class UsageReport(Envelope):
    """Totals of one local day on the device (docs/protocol.md §18): never a timeline."""

    day: str  # YYYY-MM-DD, the device's local calendar date
    active_s: int
    launches: dict[str, int]
    support_s: int
    final: bool
    # Seconds in each remote-group occurrence that day, by occurrence id (§18); None: none
    # joined (left out on the wire, as an agent before groups sends it).
    groups: dict[str, int] | None = None

    kind = Kind.USAGE


Message = (
    Presence
    | StatusReport
    | DesiredState
    | Command
    | CommandAck
    | SessionSignal
    | SessionEvent
    | UsageReport
    | Receipt
)

_CLASSES: dict[Kind, type[Envelope]] = {
    Kind.PRESENCE: Presence,
    Kind.STATUS: StatusReport,
    Kind.DESIRED: DesiredState,
    Kind.CMD: Command,
    Kind.CMD_ACK: CommandAck,
    Kind.SESSION: SessionSignal,
    Kind.SESSION_EVT: SessionEvent,
    Kind.USAGE: UsageReport,
    Kind.RECEIPT: Receipt,
}
_TIME_FIELDS = ("ts", "expires_at")


def load_schema(kind: Kind) -> dict[str, Any]:
    """The JSON Schema of one message kind, as shipped in the package."""
    text = (
        resources.files("lainaamo.protocol")
        .joinpath(f"schemas/{kind.schema_name}.json")
        .read_text()
    )
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _validator(kind: Kind) -> Any:
    return fastjsonschema.compile(load_schema(kind))


def _number(text: str) -> int | float:
    """A JSON number with a fraction or exponent. JSON Schema counts 1.0 as an integer, so
    integral values become ints here: every consumer (PostgreSQL's integer columns among them)
    then gets the int the schema promised. Values no float can hold are refused."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return int(value) if value.is_integer() else value


def _not_json(text: str) -> Any:
    """NaN and Infinity, which Python's json reads but JSON does not have."""
    raise ValueError(f"{text} is not JSON")


def parse(kind: Kind, topic_device_id: str, payload: bytes) -> Message:
    """Validate one payload received on `kind`'s topic of `topic_device_id`."""
    limit = (
        MAX_SESSION_PAYLOAD_BYTES if kind in (Kind.SESSION, Kind.SESSION_EVT) else MAX_PAYLOAD_BYTES
    )
    if len(payload) > limit:
        raise ProtocolError("oversized", f"{len(payload)} bytes > {limit}")
    try:
        data = json.loads(payload, parse_float=_number, parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad UTF-8 and bad JSON, and also what json.loads raises itself for
        # JSON it reads but Python refuses to hold: an integer literal of more than 4,300
        # digits (sys.set_int_max_str_digits) is a 5 KB payload that must not stop a consumer.
        raise ProtocolError("malformed", f"not JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise ProtocolError("malformed", "payload is not a JSON object")
    try:
        _validator(kind)(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise ProtocolError("invalid", exc.message[:200]) from None
    if data["device_id"] != topic_device_id:
        raise ProtocolError(
            "mismatched", f"payload device {data['device_id']!r} on topic of {topic_device_id!r}"
        )
    _convert_fields(kind, data)
    message: Message = _build(_CLASSES[kind], data)  # type: ignore[assignment]
    return message


def _convert_fields(kind: Kind, data: dict[str, Any]) -> None:
    """Turn a valid payload's timestamps and nested objects into their types, in place."""
    try:
        for name in _TIME_FIELDS:
            if name in data:
                data[name] = _parse_ts(data[name])
    except (ValueError, OverflowError) as exc:
        # OverflowError: year 1 or 9999 with an offset that moves it out of the calendar in UTC.
        raise ProtocolError("invalid", f"bad timestamp: {exc}") from None
    refuse_personal_data(kind, data)  # no identity code in what a tablet sends (issue 14)
    if kind is Kind.STATUS and "enforcement" in data:
        try:
            data["enforcement"] = EnforcementReport.from_json(data["enforcement"])
        except ValueError as exc:
            raise ProtocolError("invalid", f"enforcement: {exc}") from None
    if kind is Kind.STATUS and "outbox" in data:
        data["outbox"] = OutboxReport.from_json(data["outbox"])
    if kind is Kind.RECEIPT:
        committed = tuple((b, first, last) for b, first, last in data["committed"])
        if any(b < 1 or first > last for b, first, last in committed):
            raise ProtocolError("invalid", "a committed range needs boot >= 1 and first <= last")
        data["committed"] = committed


def _shape(cls: type[Envelope]) -> tuple[frozenset[str], dict[str, Any], dict[str, Any]]:
    """A message class's required fields, plain defaults and default factories."""
    required: set[str] = set()
    defaults: dict[str, Any] = {}
    factories: dict[str, Any] = {}
    for f in fields(cls):
        if f.default is not MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not MISSING:
            factories[f.name] = f.default_factory
        else:
            required.add(f.name)
    return frozenset(required), defaults, factories


def _build(cls: type[Envelope], data: dict[str, Any]) -> Envelope:
    """`cls(**data)` for data its schema has checked, at a fraction of the cost.

    A frozen dataclass's __init__ sets every field through object.__setattr__ (5 µs for a
    status report, a sizeable part of the ingest's time per message). The schema allows no
    other keys, so filling a new instance's __dict__ with the defaults and the payload makes
    the same object: equal, hashable and still frozen. Anything unusual takes __init__.
    """
    required, defaults, factories = _SHAPES[cls]
    if factories or not required <= data.keys() or not data.keys() <= required | defaults.keys():
        return cls(**data)
    message = object.__new__(cls)
    message.__dict__.update(defaults)
    message.__dict__.update(data)
    return message


_SHAPES = {cls: _shape(cls) for cls in _CLASSES.values()}
_FIELD_NAMES = {cls: tuple(f.name for f in fields(cls)) for cls in _CLASSES.values()}
_NESTED = (EnforcementReport, OutboxReport)  # parts of a message that are dataclasses too


def encode(message: Message) -> bytes:
    """Serialise a message to its JSON payload (None-valued optional fields are left out)."""
    # The fields in their declared order, read from the instance (not asdict(), whose deep
    # copy was most of the cost); a nested part (a status report's enforcement) is converted.
    own = vars(message)
    data: dict[str, Any] = {}
    for name in _FIELD_NAMES[type(message)]:
        value = own[name]
        if value is not None:
            data[name] = asdict(value) if isinstance(value, _NESTED) else value
    for name in _TIME_FIELDS:
        if name in data:
            data[name] = format_ts(data[name])
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
