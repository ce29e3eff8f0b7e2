"""Residency parsing: the accepted syntax, and a clear, fail-closed error for everything else."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from heatsched.placement.residency import (
    EU_MEMBERS,
    ISO_ALPHA2,
    RESIDENCY_ANNOTATION,
    ResidencyError,
    effective_residency,
    format_residency,
    parse_residency,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("FR", {"FR"}),
        ("FR,DE", {"FR", "DE"}),
        ("FR, DE", {"FR", "DE"}),
        (" FR ,DE ", {"FR", "DE"}),
        ("EU", set(EU_MEMBERS)),
        ("EU,CH", set(EU_MEMBERS) | {"CH"}),
        ("FR,FR", {"FR"}),  # duplicates are harmless
        ("EU,FR", set(EU_MEMBERS)),
        ("GB", {"GB"}),
    ],
)
def test_valid_residency_expands_to_countries(value: str, expected: set[str]) -> None:
    assert parse_residency(value) == frozenset(expected)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "residency is empty"),
        ("   ", "residency is empty"),
        ("fr", "'fr' must be upper case: 'FR'"),
        ("Fr", "'Fr' must be upper case: 'FR'"),
        ("eu", "'eu' must be upper case: 'EU'"),
        ("France", "'France' is not an ISO 3166-1 alpha-2 code"),
        ("FR;DE", "separate codes with commas"),
        ("FR DE", "separate codes with commas"),
        ("XX", "'XX' is a user-assigned code"),
        ("XK", "'XK' is a user-assigned code"),
        ("QZ", "'QZ' is a user-assigned code"),
        ("AB", "'AB' is not an officially assigned ISO 3166-1 alpha-2 code"),
        ("UK", "use 'GB'"),
        ("uk", "use 'GB'"),
        ("EL", "use 'GR'"),
        ("FR,,DE", "empty entry between commas"),
        ("FR,", "empty entry between commas"),
        (",FR", "empty entry between commas"),
        ("FR,DÉ", "non-ASCII"),
        ("ＦＲ", "non-ASCII"),  # full-width letters
        ("FR\n", "line break"),
        ("FR,\tDE", "line break"),
        ("F1", "not an ISO 3166-1 alpha-2 code"),
        ("FR," * 100, "over 256"),
    ],
)
def test_invalid_residency_is_rejected_with_a_helpful_message(value: str, message: str) -> None:
    with pytest.raises(ResidencyError) as err:
        parse_residency(value)
    assert message in str(err.value)
    if message != "residency is empty":
        assert "allowed: comma-separated ISO 3166-1 alpha-2" in str(err.value)


@pytest.mark.parametrize("value", [None, 33, ["FR"], b"FR"])
def test_non_string_residency_is_rejected(value: object) -> None:
    with pytest.raises(ResidencyError, match="must be a string"):
        parse_residency(value)  # type: ignore[arg-type]


def test_long_value_is_truncated_in_the_message() -> None:
    value = "FR," * 50 + "fr"
    with pytest.raises(ResidencyError) as err:
        parse_residency(value)
    assert len(str(err.value)) < 400


def _tz_iso3166() -> set[str]:
    """Independent copy of the assigned codes: the IANA tz database ships iso3166.tab."""
    for path in (resources.files("tzdata.zoneinfo") / "iso3166.tab", Path("/usr/share/zoneinfo/iso3166.tab")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, ModuleNotFoundError):
            continue
        return {line.split("\t")[0] for line in text.splitlines() if line and not line.startswith("#")}
    pytest.skip("no iso3166.tab on this machine")


def test_iso_alpha2_is_the_249_assigned_codes() -> None:
    assert len(ISO_ALPHA2) == 249
    assert ISO_ALPHA2 == _tz_iso3166()


def test_every_assigned_code_parses_and_no_other_pair_of_letters_does() -> None:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    accepted = set()
    for a in letters:
        for b in letters:
            try:
                accepted |= parse_residency(a + b)
            except ResidencyError:
                pass
    assert accepted == set(ISO_ALPHA2)  # EU expands to members, which are all assigned codes


def test_eu_is_the_27_member_states() -> None:
    assert len(EU_MEMBERS) == 27
    assert EU_MEMBERS <= ISO_ALPHA2
    assert {"FR", "DE", "GR", "HR"} <= EU_MEMBERS
    assert not {"GB", "CH", "NO"} & EU_MEMBERS


@pytest.mark.parametrize(
    ("pod", "namespace", "expected"),
    [
        ({RESIDENCY_ANNOTATION: "FR"}, {RESIDENCY_ANNOTATION: "EU"}, {"FR"}),  # the pod narrows its namespace
        ({RESIDENCY_ANNOTATION: "FR,DE"}, {RESIDENCY_ANNOTATION: "FR,DE,CH"}, {"FR", "DE"}),
        ({}, {RESIDENCY_ANNOTATION: "FR"}, {"FR"}),  # namespace default
        (None, {RESIDENCY_ANNOTATION: "FR"}, {"FR"}),
        ({"other": "x"}, {}, None),  # unrestricted
        (None, None, None),
    ],
)
def test_effective_residency_is_the_pods_within_its_namespace_else_the_namespaces(pod, namespace, expected) -> None:
    result = effective_residency(pod, namespace)
    assert result == (frozenset(expected) if expected is not None else None)


@pytest.mark.parametrize(("pod", "namespace", "outside"), [("US", "FR", "(US outside"), ("FR,DE", "FR", "(DE outside"),
                                                        ("EU", "FR", "(AT,BE,")])
def test_a_namespace_residency_is_a_ceiling_a_pod_cannot_widen(pod, namespace, outside) -> None:
    with pytest.raises(ResidencyError) as err:
        effective_residency({RESIDENCY_ANNOTATION: pod}, {RESIDENCY_ANNOTATION: namespace})
    message = str(err.value)
    assert f"not within its namespace's residency {namespace}" in message and "ceiling" in message
    assert outside in message


def test_invalid_pod_annotation_does_not_fall_back_to_namespace_default() -> None:
    with pytest.raises(ResidencyError, match="upper case"):
        effective_residency({RESIDENCY_ANNOTATION: "fr"}, {RESIDENCY_ANNOTATION: "FR"})


def test_empty_pod_annotation_fails_closed() -> None:
    with pytest.raises(ResidencyError, match="empty"):
        effective_residency({RESIDENCY_ANNOTATION: ""}, None)


@pytest.mark.parametrize(
    ("countries", "text"),
    [({"FR"}, "FR"), ({"FR", "DE"}, "DE,FR"), (EU_MEMBERS, "EU"), (EU_MEMBERS | {"CH", "AD"}, "EU,AD,CH")],
)
def test_format_residency_is_short_and_stable(countries, text) -> None:
    assert format_residency(countries) == text
    assert parse_residency(text) == frozenset(countries)
