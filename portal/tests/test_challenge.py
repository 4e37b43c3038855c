"""The proof-of-work challenge of anonymous portal reports."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from portal import challenge
from portal.challenge import ChallengeFailed


@pytest.fixture(autouse=True)
def low_difficulty(settings):
    settings.LANGUAGE_CODE = "en"
    settings.CIVICGRID = {
        **settings.CIVICGRID,
        "PORTAL_CHALLENGE_BITS": 8,
        "PORTAL_CHALLENGE_TTL": 600,
    }


def solved() -> tuple[str, str]:
    issued = challenge.issue()
    return issued.token, challenge.solve(issued.token, issued.bits)


def wrong_counter(token: str, bits: int) -> str:
    counter = 0
    while challenge.solves(token, str(counter), bits):
        counter += 1
    return str(counter)


def test_a_solved_challenge_is_accepted_once():
    token, counter = solved()
    challenge.verify(token, counter)
    with pytest.raises(ChallengeFailed, match="already used"):
        challenge.verify(token, counter)


@pytest.mark.parametrize(
    ("token", "counter"),
    [("", ""), ("", "12"), ("x", ""), ("   ", " ")],
)
def test_a_missing_challenge_is_refused(token, counter):
    with pytest.raises(ChallengeFailed, match="missing"):
        challenge.verify(token, counter)


def test_a_wrong_solution_is_refused_and_does_not_use_up_the_challenge():
    issued = challenge.issue()
    with pytest.raises(ChallengeFailed, match="failed"):
        challenge.verify(issued.token, wrong_counter(issued.token, issued.bits))
    challenge.verify(issued.token, challenge.solve(issued.token, issued.bits))


@pytest.mark.parametrize("counter", ["-1", "1e5", "12a", "١٢", "1" * 17])
def test_a_counter_that_is_not_a_plain_number_is_refused(counter):
    issued = challenge.issue()
    with pytest.raises(ChallengeFailed, match="not valid"):
        challenge.verify(issued.token, counter)


def test_a_forged_challenge_is_refused():
    # Made up by the client with an easy difficulty, signed with the wrong key.
    forged = signing.dumps({"n": "abc", "b": 0}, salt=challenge.SALT, key="not-the-secret-key")
    with pytest.raises(ChallengeFailed, match="not valid"):
        challenge.verify(forged, "0")
    # An issued challenge with one character changed.
    token, counter = solved()
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(ChallengeFailed, match="not valid"):
        challenge.verify(altered, counter)
    with pytest.raises(ChallengeFailed, match="not valid"):
        challenge.verify("x" * 400, "1")


def test_an_expired_challenge_is_refused():
    token, counter = solved()
    with (
        time_machine.travel(timezone.now() + timedelta(seconds=601)),
        pytest.raises(ChallengeFailed, match="expired"),
    ):
        challenge.verify(token, counter)


def test_a_challenge_easier_than_the_configured_difficulty_is_refused(settings):
    token, counter = solved()
    settings.CIVICGRID = {**settings.CIVICGRID, "PORTAL_CHALLENGE_BITS": 12}
    while challenge.solves(token, counter, 12):  # make sure it only solves the easier one
        token, counter = solved()
    with pytest.raises(ChallengeFailed, match="failed"):
        challenge.verify(token, counter)


def test_leading_zero_bits_are_counted_from_the_first_byte():
    assert challenge.leading_zero_bits(bytes([0, 0, 0x80] + [0] * 29)) == 16
    assert challenge.leading_zero_bits(bytes([0, 0x01] + [0xFF] * 30)) == 15
    assert challenge.leading_zero_bits(bytes(32)) == 256


def test_the_form_script_gets_fresh_challenges(client):
    first = client.get(reverse("portal:challenge"))
    second = client.get(reverse("portal:challenge"))
    assert first.status_code == 200 and "no-cache" in first["Cache-Control"]
    a, b = json.loads(first.content), json.loads(second.content)
    assert a["bits"] == 8 and a["ttl"] == 600
    assert a["challenge"] != b["challenge"]
    challenge.verify(a["challenge"], challenge.solve(a["challenge"], a["bits"]))
