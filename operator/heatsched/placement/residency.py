"""Parse the residency a pod is allowed to run in, and fail closed on anything doubtful.

Why a module of its own: residency is the one rule heatsched must never get wrong (data sovereignty), and
the same annotation is read by the admission webhook, the scheduler extender, `explain` and the twin. One
strict parser means one meaning everywhere.

Syntax of the `heatsched.io/residency` annotation (pod, or namespace default)::

    residency := token ( "," token )*        spaces (U+0020) are allowed around each token
    token     := CC | "EU"
    CC        := an officially assigned ISO 3166-1 alpha-2 code, upper case (ISO_ALPHA2, 249 codes)
    "EU"      := the 27 member states of the European Union (EU_MEMBERS)

Examples: ``FR``, ``FR,DE``, ``FR, DE``, ``EU``, ``EU,CH``.

Rules, all failing closed with a ResidencyError that says what is allowed:
- upper case only: ``fr`` is rejected ("'fr' must be upper case: 'FR'"), never guessed;
- look-alikes are rejected with a hint: ``UK`` (use ``GB``), ``EL`` (use ``GR``);
- user-assigned codes (AA, QM-QZ, XA-XZ, ZZ, e.g. ``XK``) and unassigned ones (``XX``) are rejected;
- empty value, empty token (``FR,,DE``, ``FR,``), other separators (``FR;DE``, ``FR DE``), tabs, newlines,
  non-ASCII characters and values longer than 256 characters are rejected;
- duplicates (``FR,FR``, ``EU,FR``) are accepted: a set of countries has no order and no multiplicity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

RESIDENCY_ANNOTATION = "heatsched.io/residency"
MAX_LENGTH = 256
EU_GROUP = "EU"

# Officially assigned ISO 3166-1 alpha-2 codes (249), as in the IANA tz database's iso3166.tab.
ISO_ALPHA2: frozenset[str] = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV
    BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES
    ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE
    IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY
    MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU
    NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM
    SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE
    VG VI VN VU WF WS YE YT ZA ZM ZW
    """.split()  # noqa: SIM905 - 249 codes read (and diff) best as a table, like iso3166.tab
)

# The 27 member states of the European Union (since 2020-02-01).
EU_MEMBERS: frozenset[str] = frozenset(
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()  # noqa: SIM905 - a table
)

# Codes people write that are not ISO 3166-1 alpha-2 codes of the country they mean.
LOOKALIKES: Mapping[str, str] = {"UK": "GB", "EL": "GR"}

ALLOWED = (
    "allowed: comma-separated ISO 3166-1 alpha-2 country codes in upper case (e.g. 'FR', 'FR,DE') "
    "or 'EU' for the 27 EU member states"
)


class ResidencyError(ValueError):
    """A residency value that cannot be trusted. The message says what is wrong and what is allowed."""


def parse_residency(value: str) -> frozenset[str]:
    """Return the set of allowed countries for a residency value, or raise ResidencyError."""
    if not isinstance(value, str):
        raise ResidencyError(f"residency must be a string, not {type(value).__name__}; {ALLOWED}")
    if len(value) > MAX_LENGTH:
        raise ResidencyError(f"residency is {len(value)} characters long, over {MAX_LENGTH}; {ALLOWED}")
    if not value.strip(" "):
        raise ResidencyError(f"residency is empty; {ALLOWED}")
    countries: set[str] = set()
    for raw in value.split(","):
        token = raw.strip(" ")
        problem = _token_problem(token)
        if problem:
            raise ResidencyError(f"invalid residency {_short(value)}: {problem}; {ALLOWED}")
        countries.update(EU_MEMBERS if token == EU_GROUP else (token,))
    return frozenset(countries)


def _token_problem(token: str) -> str | None:
    if not token:
        return "empty entry between commas"
    if not token.isascii():
        return f"{token!r} has non-ASCII characters"
    upper = token.upper()
    if upper in LOOKALIKES:
        return f"{token!r} is not an ISO 3166-1 code: use {LOOKALIKES[upper]!r}"
    if token != upper and (upper in ISO_ALPHA2 or upper == EU_GROUP):
        return f"{token!r} must be upper case: {upper!r}"
    if not token.isprintable():
        return f"{token!r} has a tab, line break or other control character"
    if any(sep in token for sep in ";: /|"):
        return f"{token!r} is not one code: separate codes with commas"
    if len(token) != 2 or not token.isalpha():
        return f"{token!r} is not an ISO 3166-1 alpha-2 code (two letters)"
    if token != upper:
        return f"{token!r} must be upper case"
    if _user_assigned(token):
        return f"{token!r} is a user-assigned code, not an officially assigned ISO 3166-1 code"
    if token not in ISO_ALPHA2 and token != EU_GROUP:
        return f"{token!r} is not an officially assigned ISO 3166-1 alpha-2 code"
    return None


def _user_assigned(code: str) -> bool:
    """AA, QM..QZ, XA..XZ and ZZ are reserved for private use by ISO 3166-1."""
    return code in ("AA", "ZZ") or code[0] == "X" or (code[0] == "Q" and code[1] >= "M")


def _short(value: str, limit: int = 64) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


def effective_residency(
    pod_annotations: Mapping[str, str] | None,
    namespace_annotations: Mapping[str, str] | None,
) -> frozenset[str] | None:
    """Residency that applies to a pod: its own, within its namespace's (a ceiling), else the namespace's.

    None means unrestricted. A present but invalid annotation raises ResidencyError (it never falls
    through to the namespace default or to "unrestricted"), and so does a pod residency that is not a subset
    of its namespace's (within_ceiling).
    """
    values = [a[RESIDENCY_ANNOTATION] if a and RESIDENCY_ANNOTATION in a else None
              for a in (pod_annotations, namespace_annotations)]
    pod, namespace = (parse_residency(v) if v is not None else None for v in values)
    return within_ceiling(pod, namespace)


def within_ceiling(pod: frozenset[str] | None, namespace: frozenset[str] | None) -> frozenset[str] | None:
    """The effective residency: pod ∩ namespace, where the pod's own set must be a subset of the namespace's.

    A namespace's residency is a ceiling: a tenant can narrow it on a pod (namespace EU, pod FR) but never
    widen it (namespace FR, pod US or EU): that raises ResidencyError naming the countries outside it. No
    namespace residency: the pod's own; no pod residency: the namespace's.
    """
    if pod is None or namespace is None:
        return pod if pod is not None else namespace
    outside = pod - namespace
    if outside:
        raise ResidencyError(
            f"pod residency {format_residency(pod)} is not within its namespace's residency "
            f"{format_residency(namespace)} ({format_residency(outside)} outside it): a namespace's residency is "
            "a ceiling; ask an admin to widen the namespace, or narrow the pod"
        )
    return pod & namespace


def format_residency(countries: Iterable[str]) -> str:
    """Short, stable text for a country set: the EU members collapse to 'EU', the rest sorted."""
    codes = set(countries)
    head: list[str] = []
    if EU_MEMBERS <= codes:
        codes -= EU_MEMBERS
        head.append(EU_GROUP)
    return ",".join(head + sorted(codes))
