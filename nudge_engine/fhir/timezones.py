"""IANA time zone for a US state (Synthea addresses carry the state, not a zone)."""

from __future__ import annotations

_EAST = "America/New_York"
_CENTRAL = "America/Chicago"
_MOUNTAIN = "America/Denver"
_PACIFIC = "America/Los_Angeles"

_STATE_ZONES: dict[str, str] = {
    **dict.fromkeys(
        ["Connecticut", "Delaware", "District of Columbia", "Florida", "Georgia", "Indiana", "Kentucky", "Maine",
         "Maryland", "Massachusetts", "Michigan", "New Hampshire", "New Jersey", "New York", "North Carolina",
         "Ohio", "Pennsylvania", "Rhode Island", "South Carolina", "Vermont", "Virginia", "West Virginia"],
        _EAST,
    ),
    **dict.fromkeys(
        ["Alabama", "Arkansas", "Illinois", "Iowa", "Kansas", "Louisiana", "Minnesota", "Mississippi", "Missouri",
         "Nebraska", "North Dakota", "Oklahoma", "South Dakota", "Tennessee", "Texas", "Wisconsin"],
        _CENTRAL,
    ),
    **dict.fromkeys(["Colorado", "Idaho", "Montana", "New Mexico", "Utah", "Wyoming"], _MOUNTAIN),
    **dict.fromkeys(["California", "Nevada", "Oregon", "Washington"], _PACIFIC),
    "Arizona": "America/Phoenix",
    "Alaska": "America/Anchorage",
    "Hawaii": "Pacific/Honolulu",
}


def timezone_for_state(state: str | None) -> str | None:
    """The main zone of a US state by name or postal code; None when unknown."""
    if not state:
        return None
    return _STATE_ZONES.get(state.strip()) or _STATE_ZONES.get(_ABBREVIATIONS.get(state.strip().upper(), ""))


_ABBREVIATIONS: dict[str, str] = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California", "CO": "Colorado",
    "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia", "FL": "Florida", "GA": "Georgia",
    "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois", "IN": "Indiana", "IA": "Iowa", "KS": "Kansas",
    "KY": "Kentucky", "LA": "Louisiana", "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts",
    "MI": "Michigan", "MN": "Minnesota", "MS": "Mississippi", "MO": "Missouri", "MT": "Montana",
    "NE": "Nebraska", "NV": "Nevada", "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico",
    "NY": "New York", "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma",
    "OR": "Oregon", "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota",
    "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia", "WA": "Washington",
    "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
}
