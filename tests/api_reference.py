"""The API reference's documented examples, written once for every test that checks against them
(``../shared/reference/numberyo-api-reference.txt``): the contract, independent of our code."""

from __future__ import annotations

from typing import Any

#: The documented HLR result example, key order as the reference shows it.
HLR_RESULT: dict[str, Any] = {
    "country_code": 32,
    "country_name": "Belgium",
    "operator_name": "Proximus NV van publiek recht",
    "msisdn": "32456789023",
    "ported": False,
    "reachable": True,
    "valid_number": True,
    "plmn": "20601",
    "mcc": "206",
    "mnc": "01",
    "imsi": "206010000000000",
    "local_format": "456789023",
    "msc": None,
    "original_operator_name": None,
    "number_requested": "32456789023",
    "created_at": "2025-03-30T12:41:00.000000Z",
}
HLR_KEYS: list[str] = list(HLR_RESULT)
#: The three documented Verify fields (the example is cut short with "...").
VERIFY_KEYS: list[str] = ["e164_format", "valid_number", "number_carrier"]
#: The documented answer of ``POST /api/checks`` (201) for an HLR check.
CREATE_201: dict[str, Any] = {
    "status": True,
    "message": "Check successfully created.",
    "check": {
        "id": 123,
        "type": "HLR",
        "source": "API",
        "user_cost": "1.00",
        "created_at": "2025-03-30T14:10:23Z",
    },
    "results": {"type": "HLR", "results": [HLR_RESULT]},
}
