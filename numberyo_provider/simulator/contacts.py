"""A sample contacts table of messy phone numbers, deterministic, with a known truth.

``numberyo simulate --write-contacts PATH`` writes it for the README's quick start, and
``make demo`` (``scripts/demo.py``) for its pipeline: national and international formats, spaces,
dashes, ``00`` prefixes, duplicates written differently, and values that are no phone number.
The numbers are synthetic (``phonenumbers``' example mobile numbers with other last digits) but
valid, so some may be in service: check them on the simulator, not on the paid API.
"""

from __future__ import annotations

import errno
import os
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import phonenumbers
from phonenumbers import PhoneNumber, PhoneNumberFormat, PhoneNumberType

#: The contacts' default region: national numbers ("0450 ...") are Belgian.
DEFAULT_REGION = "BE"
CONTACT_REGIONS = ("BE", "NL", "FR", "DE", "GB", "ES", "IT", "US", "CH", "IE")
CONTACT_SEED = 20250330
#: Values no phone number can be read from (each is rejected, never sent).
INVALID_VALUES = (
    "n/a",
    "",
    "   ",
    "unknown",
    "12345",
    "+32 12",
    "0450 12",
    "call me",
    "+1 201 555",
    "0000000000",
    "+999 1234 5678",
    "3.24568E+10",
    "+32 450 00 12 34 56 78 90",
    "-",
    "tel:",
)


@dataclass
class Contacts:
    """The generated source rows and what a correct pipeline must make of them."""

    rows: list[tuple[int, str, str | None]]  # (contact_id, name, phone)
    valid_numbers: list[str] = field(default_factory=list)  # distinct, E.164 digits
    invalid_rows: int = 0
    duplicate_rows: int = 0

    def truth(self) -> dict[str, int]:
        return {
            "rows": len(self.rows),
            "invalid_rows": self.invalid_rows,
            "duplicate_rows": self.duplicate_rows,
            "distinct_valid_numbers": len(self.valid_numbers),
        }


def _valid_variants(region: str, count: int, rng: random.Random) -> list[PhoneNumber]:
    """``count`` distinct valid mobile numbers of ``region``: the example number with its last
    digits replaced."""
    example = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
    if example is None:
        raise RuntimeError(f"phonenumbers has no example mobile number for {region}")
    national = str(example.national_number)
    found: dict[str, PhoneNumber] = {}
    for _ in range(count * 50):
        if len(found) == count:
            break
        tail = "".join(rng.choice("0123456789") for _ in range(4))
        candidate = phonenumbers.parse(f"+{example.country_code}{national[:-4]}{tail}")
        if phonenumbers.is_valid_number(candidate) and phonenumbers.number_type(candidate) in (
            PhoneNumberType.MOBILE,
            PhoneNumberType.FIXED_LINE_OR_MOBILE,
        ):
            found.setdefault(phonenumbers.format_number(candidate, 0)[1:], candidate)
    return list(found.values())


def _render(number: PhoneNumber, region: str, rng: random.Random) -> str:
    """One way people write ``number`` in a CRM (every one parses back to the same number)."""
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    intl = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    styles = [
        e164,
        intl,
        intl.replace(" ", "-"),
        "00" + e164[1:],
        "00" + intl[1:],
        f"  {intl}  ",
        intl.replace(" ", "."),
    ]
    if region == DEFAULT_REGION:  # national formats only where the default region says whose
        national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        styles += [national, national.replace(" ", ""), national.replace(" ", "/", 1), e164[1:]]
    if region == "US":
        styles.append(f"+1 ({str(number.national_number)[:3]}) {str(number.national_number)[3:]}")
    return rng.choice(styles)


def make_contacts(rows: int = 300, seed: int = CONTACT_SEED) -> Contacts:
    """About 75% distinct valid numbers, 15% the same numbers written again differently, 10%
    values that are not phone numbers; shuffled, deterministic for a seed."""
    rng = random.Random(seed)
    n_invalid = max(1, rows // 10)
    n_duplicates = max(1, rows * 15 // 100)
    n_valid = rows - n_invalid - n_duplicates
    per_region = -(-n_valid // len(CONTACT_REGIONS))
    pool: list[tuple[str, PhoneNumber]] = []
    for region in CONTACT_REGIONS:
        pool += [(region, n) for n in _valid_variants(region, per_region, rng)]
    rng.shuffle(pool)
    chosen = pool[:n_valid]
    if len(chosen) < n_valid:
        raise RuntimeError("could not generate enough distinct valid numbers")
    phones: list[str | None] = [_render(n, region, rng) for region, n in chosen]
    phones += [_render(n, region, rng) for region, n in rng.choices(chosen, k=n_duplicates)]
    invalid: list[str | None] = [INVALID_VALUES[i % len(INVALID_VALUES)] for i in range(n_invalid)]
    invalid[0] = None  # a NULL too
    phones += invalid
    rng.shuffle(phones)
    digits = sorted({phonenumbers.format_number(n, 0)[1:] for _, n in chosen})
    return Contacts(
        rows=[(i + 1, f"Contact {i + 1:03d}", p) for i, p in enumerate(phones)],
        valid_numbers=digits,
        invalid_rows=n_invalid,
        duplicate_rows=n_duplicates,
    )


def write_contacts(path: Path, contacts: Contacts) -> None:
    """Create the DuckDB file ``path`` holding table ``contacts (contact_id, name, phone)``.

    Written under a temporary name and renamed, so a reader never sees a half-written file; an
    existing ``path`` is never overwritten (it may be someone's data): ``FileExistsError``.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists")
    if not path.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "no such directory", str(path.parent))
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        con = duckdb.connect(str(tmp))
        try:
            con.execute(
                "CREATE TABLE contacts "
                "(contact_id INTEGER PRIMARY KEY, name VARCHAR, phone VARCHAR)"
            )
            con.executemany("INSERT INTO contacts VALUES (?, ?, ?)", contacts.rows)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        # link + unlink, not replace: a file created meanwhile at ``path`` is not clobbered.
        os.link(tmp, path)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
