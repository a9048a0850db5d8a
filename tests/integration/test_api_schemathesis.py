"""schemathesis against the API's own OpenAPI document: no 5xx, responses match the schema.

Run on PostgreSQL (which refuses what SQLite takes: NUL in text, ids beyond 32 bits), as
every role, straight into the WSGI app (no server process):

- every operation gets generated requests that fit its schema and requests that do not
  (wrong types, out-of-range numbers, missing fields), as admin, IT support and counsellor;
- then chains of calls that follow the document's links (a new loan's id into its steps, a
  new device's id into its commands, ...), so that handlers see real objects, not only 404s.

The summary line says how many requests were sent; the run takes about two minutes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis import checks
from schemathesis.generation import GenerationMode
from support.fleet import Fleet, make_fleet
from support.postgres import create_database, drop_database

from server.entrypoints.app import create_app

pytestmark = pytest.mark.integration

# No server errors, answers as documented. (Positive-data checks, "every schema-valid request
# is accepted", are left out: the document describes some query values, such as the
# comma-separated `state`, only loosely.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
ROLES = ("admin", "it_support", "counsellor")
EXAMPLES = 15  # per operation, role and mode: 52 × 3 × 2 × 15 ≈ 4,700 requests
STATEFUL_EXAMPLES = 50  # chains per role and run
STATEFUL_STEPS = 10  # calls per chain at most
STATEFUL_REQUESTS = 400  # per role at least (a run that meets changed state ends early)
# (unit, device to reserve) of the seeded loans; the demo puts tab-00n in unit n % 3.
UNIT_DEVICES = [
    ("paihde", "tab-003"),
    ("aikuissosiaalityo", "tab-001"),
    ("aikuissosiaalityo", None),
    ("mielenterveys", "tab-002"),
]


@pytest.fixture(scope="module")
def fuzz_fleet(pg_base_url: str) -> Iterator[Fleet]:
    url = create_database(pg_base_url)
    fleet = make_fleet(url)
    # Something for the links and the generated ids to reach: an agreement, loans in each
    # unit (requested, reserved, on loan), a webhook.
    client = create_app(fleet.services).test_client()
    admin, it = fleet.headers("admin"), fleet.headers("it_support")
    client.post("/api/v1/agreements", json={"version": "1", "text": "x"}, headers=admin)
    for number, (unit, device) in enumerate(UNIT_DEVICES, start=1):
        new = {"unit": unit, "client_ref": f"ASK-{number}"}
        client.post("/api/v1/loans", json=new, headers=it)
        if device:
            client.post(f"/api/v1/loans/{number}/assign", json={"device_id": device}, headers=it)
    handover = {"agreement_version": "1", "agreement_accepted": True}
    client.post("/api/v1/loans/2/handover", json=handover, headers=it)
    client.post("/api/v1/webhooks", json={"url": "https://hooks.example/x"}, headers=it)
    try:
        yield fleet
    finally:
        fleet.services.close()
        drop_database(url)


@pytest.fixture(scope="module")
def api_schema(fuzz_fleet: Fleet) -> schemathesis.BaseSchema:
    app = create_app(fuzz_fleet.services)
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


def _strategy(operation: Any) -> st.SearchStrategy[Any]:
    """Requests that fit the operation's schema, and (where there is something to break)
    requests that do not."""
    modes = [operation.as_strategy(GenerationMode.POSITIVE)]
    try:
        modes.append(operation.as_strategy(GenerationMode.NEGATIVE))
    except Exception:  # nothing in the operation can be made invalid
        pass
    return st.one_of(modes)


def _fuzz(strategy: st.SearchStrategy[Any], headers: dict[str, str], sent: list[int]) -> Any:
    """A Hypothesis test that sends the strategy's requests with the role's token."""

    @given(case=strategy)
    @settings(max_examples=EXAMPLES * 2, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        sent[0] += 1
        case.call_and_validate(headers=headers, checks=CHECKS)

    return check


def test_api_conforms_to_its_openapi_document(
    api_schema: schemathesis.BaseSchema, fuzz_fleet: Fleet
) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 40
    started, sent = time.monotonic(), [0]
    failures: list[str] = []
    for operation in operations:
        strategy = _strategy(operation)
        for role in ROLES:
            try:
                _fuzz(strategy, fuzz_fleet.headers(role), sent)()
            except (Exception, BaseExceptionGroup) as exc:  # every finding, then fail once
                failures.append(f"{operation.label} as {role}: {str(exc)[:1500]}")
    print(f"\nschemathesis: {sent[0]} requests in {time.monotonic() - started:.0f} s")
    assert sent[0] > 3000
    assert not failures, "\n\n".join(failures)


def _chains(
    base: type[Any], headers: dict[str, str], sent: list[int], found: list[str]
) -> type[Any]:
    """The document's state machine, calling as one role and noting every failed check.

    Failures are noted rather than raised: state shared between chains (a webhook a chain
    deleted is gone for the next one) would make Hypothesis' replay of a failing chain differ
    from the first run and hide the finding behind a "flaky" error.
    """

    class Chains(base):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": headers}

        def validate_response(
            self, response: Any, case: schemathesis.Case, *args: Any, **kwargs: Any
        ) -> None:
            sent[0] += 1
            try:
                case.validate_response(response, checks=CHECKS, headers=headers)
            except (Exception, BaseExceptionGroup) as exc:
                found.append(f"{case.operation.label}: {str(exc)[:1500]}")

    return Chains


def test_api_survives_chains_of_linked_calls(
    api_schema: schemathesis.BaseSchema, fuzz_fleet: Fleet
) -> None:
    base = api_schema.as_state_machine()
    started, sent = time.monotonic(), [0]
    found: list[str] = []
    for role in ROLES:
        machine = _chains(base, fuzz_fleet.headers(role), sent, found)
        goal = sent[0] + STATEFUL_REQUESTS
        for _attempt in range(5):
            try:
                machine.run(
                    settings=settings(
                        max_examples=STATEFUL_EXAMPLES,
                        stateful_step_count=STATEFUL_STEPS,
                        deadline=None,
                        suppress_health_check=list(HealthCheck),
                    )
                )
            except FlakyStrategyDefinition:
                pass  # a chain met state that earlier chains changed: the run ended early
            if sent[0] >= goal:
                break
    print(f"\nschemathesis stateful: {sent[0]} requests in {time.monotonic() - started:.0f} s")
    assert sent[0] >= len(ROLES) * STATEFUL_REQUESTS
    assert not found, "\n\n".join(found[:20])
