"""Words that mark a field as an identifier or free text (HIPAA Safe Harbor categories and kin).

A key is refused in audit details, and its value is dropped from log lines, when any of its
underscore-separated words is listed here (``home_address``, ``patient_name``), or when the whole
key is one of :data:`IDENTIFIER_KEYS`.
"""

from __future__ import annotations

IDENTIFIER_WORDS = frozenset(
    {
        "name", "names", "given", "family", "maiden", "initials", "address", "addresses", "street", "line",
        "city", "county", "zip", "postal", "postcode", "geo", "gps", "latitude", "longitude", "phone",
        "telecom", "fax", "mobile", "email", "mail", "ssn", "mrn", "birth", "birthdate", "dob", "born",
        "death", "deceased", "identifier", "identifiers", "passport", "licence", "license", "insurance",
        "beneficiary", "account", "certificate", "vehicle", "plate", "serial", "device", "url",
        "uri", "ip", "biometric", "fingerprint", "photo", "image", "face", "comment", "comments", "note",
        "notes", "text", "free", "description", "message", "body", "title", "external",
        "source", "password", "secret", "token", "query", "path",
    }
)  # fmt: skip
IDENTIFIER_KEYS = frozenset({"patient_id", "source_id", "external_id", "record_numbers", "birth_date"})


def is_identifier_key(key: str) -> bool:
    """Whether a field called ``key`` may hold an identifier or free text."""
    lowered = key.lower()
    return lowered in IDENTIFIER_KEYS or any(word in IDENTIFIER_WORDS for word in lowered.replace("-", "_").split("_"))
