"""Deterministic, realistic number data for the simulator: countries, operators, MCC/MNC.

Every answer about a number is derived from its digits alone (a BLAKE2b digest, never Python's
``hash()``, which is salted per process), so the same number gets the same operator, porting and
reachability in every run, every simulator and every process. Country, validity, line type and
formats come from ``phonenumbers``; for the countries in :data:`OPERATORS` the serving operator is
picked among real operators with their real MCC/MNC (MNCs are text: leading zeros and three-digit
MNCs matter).

Choices where the reference shows nothing (documented so the client is not coded against them):

- ``imsi`` is the PLMN padded with zeros to 15 digits, as in the reference example
  (``"206010000000000"``): HLR services mask the subscriber part.
- Numbers of countries outside :data:`OPERATORS` get the carrier ``phonenumbers`` knows (or
  ``null``) and ``null`` MCC/MNC/PLMN/IMSI.
- Valid numbers that are not mobile (fixed line, toll free, ...) are valid but unreachable, with no
  operator: an HLR only knows mobile subscribers.
- The reference's own example number, 32456789023, answers exactly like the reference.

Why one module of about 640 lines: 250 of them are data (``OPERATORS``, the operators by country
with their MCC/MNC), and the rest are the functions that turn a number into its answers and the
seeded history into numbers and times, all reading that table; the data and its readers belong
together.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType, carrier, geocoder, timezone


@dataclass(frozen=True)
class Operator:
    """A mobile network: its name as an HLR reports it and its PLMN code."""

    mcc: str
    mnc: str
    name: str

    @property
    def plmn(self) -> str:
        return self.mcc + self.mnc


@dataclass(frozen=True)
class Country:
    """A country the simulator knows well: real operators and mobile prefixes to seed from."""

    region: str
    name: str
    operators: tuple[Operator, ...]
    #: National mobile prefixes (after the country code) seeded numbers start with.
    mobile_prefixes: tuple[str, ...]
    #: Relative share of seeded checks.
    weight: int


def _ops(mcc: str, *entries: tuple[str, str]) -> tuple[Operator, ...]:
    return tuple(Operator(mcc, mnc, name) for mnc, name in entries)


#: Real operators with their real MCC/MNC, per region (ISO 3166 alpha-2).
OPERATORS: dict[str, Country] = {
    c.region: c
    for c in (
        Country(
            "BE",
            "Belgium",
            _ops(
                "206",
                ("01", "Proximus NV van publiek recht"),
                ("10", "Orange Belgium"),
                ("20", "Telenet Group (BASE)"),
            ),
            ("47", "48", "49", "456", "460"),
            20,
        ),
        Country(
            "FR",
            "France",
            _ops(
                "208",
                ("01", "Orange France"),
                ("10", "SFR"),
                ("15", "Free Mobile"),
                ("20", "Bouygues Telecom"),
            ),
            ("6", "75", "76", "77", "78"),
            12,
        ),
        Country(
            "DE",
            "Germany",
            _ops(
                "262",
                ("01", "Telekom Deutschland GmbH"),
                ("02", "Vodafone GmbH"),
                ("03", "Telefónica Germany GmbH & Co. OHG (O2)"),
                ("23", "1&1 Mobilfunk GmbH"),
            ),
            ("151", "152", "157", "160", "170", "176", "179"),
            12,
        ),
        Country(
            "NL",
            "Netherlands",
            _ops(
                "204",
                ("04", "Vodafone Libertel B.V."),
                ("08", "KPN Mobile The Netherlands B.V."),
                ("16", "Odido Netherlands B.V."),
            ),
            ("61", "62", "63", "64", "65", "68"),
            8,
        ),
        Country(
            "GB",
            "United Kingdom",
            _ops(
                "234",
                ("10", "Telefónica UK Limited (O2)"),
                ("15", "Vodafone Limited"),
                ("20", "Hutchison 3G UK Limited (Three)"),
                ("30", "EE Limited"),
            ),
            ("74", "75", "77", "78", "79"),
            10,
        ),
        Country(
            "ES",
            "Spain",
            _ops(
                "214",
                ("01", "Vodafone España, S.A.U."),
                ("03", "Orange Espagne, S.A.U."),
                ("04", "Xfera Móviles, S.A. (Yoigo)"),
                ("07", "Telefónica Móviles España, S.A.U. (Movistar)"),
            ),
            ("6", "71", "72", "73", "74"),
            6,
        ),
        Country(
            "IT",
            "Italy",
            _ops(
                "222",
                ("01", "TIM S.p.A."),
                ("10", "Vodafone Italia S.p.A."),
                ("50", "Iliad Italia S.p.A."),
                ("88", "Wind Tre S.p.A."),
            ),
            ("32", "33", "34", "35", "36", "37", "38", "39"),
            6,
        ),
        Country(
            "US",
            "United States",
            (
                Operator("310", "260", "T-Mobile USA, Inc."),
                Operator("310", "410", "AT&T Mobility"),
                Operator("311", "480", "Verizon Wireless"),
            ),
            ("201", "212", "305", "310", "415", "512", "646", "702", "917"),
            8,
        ),
        Country(
            "CA",
            "Canada",
            _ops(
                "302",
                ("220", "Telus Mobility"),
                ("500", "Vidéotron"),
                ("610", "Bell Mobility"),
                ("720", "Rogers Wireless"),
            ),
            ("416", "438", "514", "604", "613", "647"),
            3,
        ),
        Country(
            "BR",
            "Brazil",
            _ops(
                "724",
                ("02", "TIM Brasil"),
                ("05", "Claro Brasil"),
                ("06", "Vivo (Telefônica Brasil)"),
                ("31", "Oi"),
            ),
            ("119", "219", "319", "419", "619"),
            3,
        ),
        Country(
            "IN",
            "India",
            (
                Operator("404", "10", "Bharti Airtel (Delhi)"),
                Operator("404", "20", "Vodafone Idea (Mumbai)"),
                Operator("405", "874", "Reliance Jio Infocomm (Mumbai)"),
            ),
            ("70", "81", "90", "98", "99"),
            3,
        ),
        Country(
            "NG",
            "Nigeria",
            _ops(
                "621",
                ("20", "Airtel Nigeria"),
                ("30", "MTN Nigeria"),
                ("50", "Globacom"),
                ("60", "9mobile (EMTS)"),
            ),
            ("802", "803", "805", "806", "809", "813"),
            2,
        ),
        Country(
            "ZA",
            "South Africa",
            _ops(
                "655",
                ("01", "Vodacom"),
                ("02", "Telkom Mobile"),
                ("07", "Cell C"),
                ("10", "MTN South Africa"),
            ),
            ("71", "72", "73", "74", "82", "83"),
            2,
        ),
        Country(
            "AU",
            "Australia",
            _ops(
                "505",
                ("01", "Telstra"),
                ("02", "Optus"),
                ("03", "Vodafone Australia (TPG Telecom)"),
            ),
            ("40", "41", "42", "43", "45"),
            2,
        ),
        Country(
            "JP",
            "Japan",
            _ops(
                "440",
                ("10", "NTT DOCOMO"),
                ("11", "Rakuten Mobile"),
                ("20", "SoftBank Corp."),
                ("50", "KDDI (au)"),
            ),
            ("70", "80", "90"),
            2,
        ),
        Country(
            "MX",
            "Mexico",
            _ops(
                "334",
                ("020", "Telcel (Radiomóvil Dipsa)"),
                ("030", "Movistar México (Pegaso PCS)"),
                ("050", "AT&T México"),
            ),
            ("155", "331", "55", "81"),
            2,
        ),
        Country(
            "PL",
            "Poland",
            _ops(
                "260",
                ("01", "Plus (Polkomtel)"),
                ("02", "T-Mobile Polska"),
                ("03", "Orange Polska"),
                ("06", "Play (P4)"),
            ),
            ("50", "51", "53", "60", "66", "69", "72", "79", "88"),
            2,
        ),
        Country(
            "SE",
            "Sweden",
            _ops(
                "240",
                ("01", "Telia Sverige AB"),
                ("02", "Hi3G Access AB (Tre)"),
                ("07", "Tele2 Sverige AB"),
                ("08", "Telenor Sverige AB"),
            ),
            ("70", "72", "73", "76", "79"),
            2,
        ),
        Country(
            "CH",
            "Switzerland",
            _ops("228", ("01", "Swisscom"), ("02", "Sunrise"), ("03", "Salt Mobile")),
            ("76", "77", "78", "79"),
            2,
        ),
        Country(
            "IE",
            "Ireland",
            _ops(
                "272",
                ("01", "Vodafone Ireland"),
                ("03", "Eir (Meteor)"),
                ("05", "Three Ireland"),
            ),
            ("83", "85", "86", "87", "89"),
            1,
        ),
    )
}

_LINE_TYPES: dict[int, str] = {
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
}
_MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})

#: Shares, out of 256, drawn from the digest of the digits.
_PORTED_OUT_OF_256 = 26  # ~10 %
_REACHABLE_OUT_OF_256 = 218  # ~85 %
_MSC_OUT_OF_256 = 128  # half of the reachable ones


@dataclass(frozen=True)
class _Pinned:
    operator_index: int
    ported: bool
    reachable: bool
    msc: str | None


#: Numbers whose answer is fixed: the reference's example answers like the reference.
_PINNED: dict[str, _Pinned] = {"32456789023": _Pinned(0, False, True, None)}


@dataclass(frozen=True)
class NumberProfile:
    """Everything the simulator says about one number, apart from the check's time."""

    digits: str
    parsed: bool
    valid: bool
    country_code: int | None
    country_name: str | None
    region_code: str | None
    line_type: str
    national_number: str | None
    operator_name: str | None
    operator: Operator | None
    original_operator_name: str | None
    ported: bool
    reachable: bool
    msc: str | None


def _digest(digits: str) -> bytes:
    return hashlib.blake2b(digits.encode("ascii"), digest_size=16, person=b"numberyo-sim").digest()


def _country_name(number: phonenumbers.PhoneNumber, region: str | None) -> str | None:
    if region in OPERATORS:
        return OPERATORS[region].name
    name = geocoder.country_name_for_number(number, "en")
    return name or None


@lru_cache(maxsize=8192)
def profile(digits: str) -> NumberProfile:
    """The deterministic profile of a number given as digits without ``+`` (E.164 digits)."""
    h = _digest(digits)
    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return NumberProfile(
            digits=digits,
            parsed=False,
            valid=False,
            country_code=None,
            country_name=None,
            region_code=None,
            line_type="unknown",
            national_number=None,
            operator_name=None,
            operator=None,
            original_operator_name=None,
            ported=False,
            reachable=False,
            msc=None,
        )
    valid = phonenumbers.is_valid_number(number)
    region = phonenumbers.region_code_for_number(number) if valid else None
    if not region or region == "ZZ":
        main = phonenumbers.region_code_for_country_code(number.country_code or 0)
        region = main if main != "ZZ" else None
    number_type = phonenumbers.number_type(number) if valid else PhoneNumberType.UNKNOWN
    nsn = phonenumbers.national_significant_number(number)

    operator: Operator | None = None
    operator_name: str | None = None
    original: str | None = None
    ported = False
    reachable = False
    msc: str | None = None
    if valid and number_type in _MOBILE_TYPES:
        pinned = _PINNED.get(digits)
        reachable = pinned.reachable if pinned else h[2] < _REACHABLE_OUT_OF_256
        country = OPERATORS.get(region or "")
        if country is not None:
            ops = country.operators
            index = pinned.operator_index if pinned else h[4] % len(ops)
            operator = ops[index]
            operator_name = operator.name
            ported = pinned.ported if pinned else h[1] < _PORTED_OUT_OF_256
            if ported:
                original = ops[(index + 1 + h[5] % (len(ops) - 1)) % len(ops)].name
        else:
            operator_name = carrier.name_for_number(number, "en") or None
        if pinned:
            msc = pinned.msc
        elif reachable and h[3] < _MSC_OUT_OF_256:
            msc = f"{number.country_code}{nsn[:3]}{int.from_bytes(h[6:9], 'big') % 1000:06d}"

    return NumberProfile(
        digits=digits,
        parsed=True,
        valid=valid,
        country_code=number.country_code,
        country_name=_country_name(number, region),
        region_code=region,
        line_type=_LINE_TYPES.get(number_type, "unknown"),
        national_number=nsn,
        operator_name=operator_name,
        operator=operator,
        original_operator_name=original,
        ported=ported,
        reachable=reachable,
        msc=msc,
    )


@dataclass(frozen=True)
class NumberFormats:
    """What only Verify tells: formats, time zones, location (kept apart: HLR needs none)."""

    e164: str | None
    national_format: str | None
    international_format: str | None
    timezones: tuple[str, ...]
    location: str | None


@lru_cache(maxsize=8192)
def formats(digits: str) -> NumberFormats:
    """Formats of a number given as E.164 digits; all empty when it cannot be parsed."""
    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return NumberFormats(None, None, None, (), None)
    valid = phonenumbers.is_valid_number(number)
    return NumberFormats(
        e164=phonenumbers.format_number(number, PhoneNumberFormat.E164),
        national_format=phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL),
        international_format=phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL),
        timezones=tuple(z for z in timezone.time_zones_for_number(number) if z != "Etc/Unknown"),
        location=(geocoder.description_for_number(number, "en") or None) if valid else None,
    )


def hlr_result(digits: str, created_at: str) -> dict[str, Any]:
    """One HLR result, keys in the reference's order."""
    p = profile(digits)
    op = p.operator
    return {
        "country_code": p.country_code,
        "country_name": p.country_name,
        "operator_name": p.operator_name,
        "msisdn": digits,
        "ported": p.ported,
        "reachable": p.reachable,
        "valid_number": p.valid,
        "plmn": op.plmn if op else None,
        "mcc": op.mcc if op else None,
        "mnc": op.mnc if op else None,
        "imsi": op.plmn.ljust(15, "0") if op else None,
        "local_format": p.national_number,
        "msc": p.msc,
        "original_operator_name": p.original_operator_name,
        "number_requested": digits,
        "created_at": created_at,
    }


def verify_result(digits: str, created_at: str) -> dict[str, Any]:
    """One Verify result: the three documented fields first, then the ones the reference cuts."""
    p = profile(digits)
    f = formats(digits)
    return {
        "e164_format": f.e164,
        "valid_number": p.valid,
        "number_carrier": p.operator_name,
        "number_requested": digits,
        "national_format": f.national_format,
        "international_format": f.international_format,
        "country_code": p.country_code,
        "country_name": p.country_name,
        "region_code": p.region_code,
        "line_type": p.line_type,
        "location": f.location,
        "timezones": list(f.timezones),
        "created_at": created_at,
    }


#: Share (out of 1000) of seeded numbers that are deliberately invalid (too short).
_INVALID_PER_MILLE = 40
_STEM_TRIES = 400
_STEMS_PER_COUNTRY = 24


@lru_cache(maxsize=1)
def _seed_stems() -> tuple[tuple[tuple[str, ...], ...], tuple[int, ...]]:
    """Valid mobile number stems per known country (all but the last 4 digits), made once.

    Checking validity with ``phonenumbers`` costs ~0.1 ms a number: too slow for 100,000 seeded
    checks, fast enough for a few hundred stems. The last four digits never change validity.
    """
    rng = random.Random(20250330)
    stems: list[tuple[str, ...]] = []
    weights: list[int] = []
    for region, country in OPERATORS.items():
        example = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
        if example is None:
            continue
        cc = str(example.country_code)
        length = len(phonenumbers.national_significant_number(example))
        found: list[str] = []
        for _ in range(_STEM_TRIES):
            prefix = rng.choice(country.mobile_prefixes)
            body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix)))
            candidate = phonenumbers.parse("+" + cc + body)
            if (
                phonenumbers.is_valid_number(candidate)
                and phonenumbers.region_code_for_number(candidate) == region
                and phonenumbers.number_type(candidate) in _MOBILE_TYPES
            ):
                found.append(cc + body[:-4])
                if len(found) == _STEMS_PER_COUNTRY:
                    break
        if found:
            stems.append(tuple(found))
            weights.append(country.weight)
    return tuple(stems), tuple(weights)


def seed_numbers(n: int, rng: random.Random) -> list[str]:
    """``n`` plausible numbers (digits), mostly valid mobiles of known countries, ~4 % invalid."""
    stems, weights = _seed_stems()
    out: list[str] = []
    append = out.append
    draw = rng.random  # ~10x cheaper than randrange(), which matters at 100,000 numbers
    invalid_share = _INVALID_PER_MILLE / 1000
    for pools in rng.choices(stems, weights=weights, k=n):
        number = pools[int(draw() * len(pools))] + f"{int(draw() * 10000):04d}"
        if draw() < invalid_share:
            number = number[:-3]
        append(number)
    return out


#: Shape of a seeded multi-year history (:func:`seed_history_offsets`). Activity grows over the
#: span (an account that gained customers): the newest day is ``_GROWTH`` times busier than the
#: oldest. Weekend days keep ``_WEEKEND_KEEP`` of a weekday's single checks; ``_OFFICE_SHARE`` of
#: them fall within 08:00-18:00 UTC. A share of the history comes from bulk jobs (a list uploaded
#: and checked in one go): ``_BULK_JOB_CHANCE`` of draws start a job of on average
#: ``_BULK_MEAN_SIZE`` checks at ``_BULK_PER_SECOND`` a second, so many checks share a second.
_GROWTH = 4.0
_WEEKEND_KEEP = 0.3
_OFFICE_SHARE = 0.75
_BULK_JOB_CHANCE = 0.03
_BULK_MEAN_SIZE = 40
_BULK_PER_SECOND = 4.0
_DAY = 86_400


def seed_history_times(n: int, start: int, span_s: int, rng: random.Random) -> list[int]:
    """``n`` creation times (Unix seconds) in ``[start, start + span_s)``, sorted.

    Realistic rather than uniform: growing activity, quiet weekends and nights (UTC), and bulk
    jobs (about half the checks) in which several checks are created in the same second (ties on
    ``created_at``, which the list orders by id).
    """
    if span_s < _DAY:
        raise ValueError(f"a spanned history needs at least one day, got {span_s} s")
    out: list[int] = []
    append = out.append
    draw = rng.random
    days = span_s // _DAY
    first_day = start // _DAY
    end = start + span_s - 1
    # Inverse CDF of a linearly growing density a + t on [0, 1] (a = 1 / (growth - 1)).
    a = 1.0 / (_GROWTH - 1.0)
    norm = 2.0 * (a + 0.5)
    while len(out) < n:
        u = draw()
        t = -a + (a * a + norm * u) ** 0.5
        day = min(int(t * days), days - 1)
        # 1970-01-01 was a Thursday: weekday 5 and 6 are Saturday and Sunday.
        if (first_day + day + 3) % 7 >= 5 and draw() > _WEEKEND_KEEP:
            continue
        if draw() < _OFFICE_SHARE:
            second = 8 * 3600 + int(draw() * 10 * 3600)
        else:
            second = int(draw() * _DAY)
        moment = start - start % _DAY + day * _DAY + second
        if not start <= moment <= end:  # the partial first and last days
            continue
        if draw() >= _BULK_JOB_CHANCE:
            append(moment)
            continue
        size = min(n - len(out), 1 + int(rng.expovariate(1.0 / _BULK_MEAN_SIZE)))
        when = float(moment)
        for _ in range(size):
            append(min(int(when), end))
            when += rng.expovariate(_BULK_PER_SECOND)
    out.sort()
    return out
