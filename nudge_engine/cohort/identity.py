"""Obviously fake identifiers, Synthea style: "Maude482 Wunsch504", 555 phone numbers, 999 SSNs.

US numbers use the 555 exchange, UK numbers Ofcom's drama range (07700 900xxx); SSNs start with
999, which is never issued; MRNs say SYN. Nothing here can be a real person's identifier.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from nudge_engine.cohort.localtime import ZONE_NAMES
from nudge_engine.cohort.population import Population
from nudge_engine.domain.context import PatientIdentifiers

FEMALE = ("Maude", "Olivia", "Amara", "Lucia", "Grace", "Hannah", "Priya", "Mei", "Rosa", "Chloe", "Zoe",
          "Fatima", "Ingrid", "Naomi", "Beatriz", "Yuki", "Clara", "Leah", "Sofia", "Aisha", "Ruth", "Mabel")
MALE = ("Andrew", "Jorge", "Kwame", "Liam", "Omar", "Hiro", "Mateo", "Noah", "Ravi", "Elias", "Felix",
        "Tomas", "Darius", "Ezra", "Samuel", "Ivan", "Bruno", "Caleb", "Dmitri", "Arjun", "Otis", "Wendell")
LAST = ("Wunsch", "Vela", "Nguyen", "Okafor", "Schmitt", "Kowalski", "Haddad", "Lindqvist", "Moreau", "Tanaka",
        "Castillo", "Brennan", "Abernathy", "Runolfsson", "Kshlerin", "Mraz", "Goyette", "Hettinger", "Ziemann",
        "Bartell", "Osinski", "Rempel", "Pacocha", "Feeney", "Quigley", "Stroman", "Hoeger", "Bergstrom")
STREETS = ("Hills Branch", "Olson Landing", "Kub Gateway", "Kling Way", "Larkin Mill", "Greenholt Ramp",
           "Fadel Passage", "Bogan Fork", "Kihn Crossroad", "Dach Trace", "Schumm Ferry", "Wiza Throughway")
# (city, region, postal prefix) per zone in localtime.ZONES order.
PLACES: tuple[tuple[tuple[str, str, str], ...], ...] = (
    (("Boston", "MA", "021"), ("Atlanta", "GA", "303"), ("Columbus", "OH", "432"), ("Miami", "FL", "331")),
    (("Chicago", "IL", "606"), ("Dallas", "TX", "752"), ("Omaha", "NE", "681"), ("Nashville", "TN", "372")),
    (("Denver", "CO", "802"), ("Boise", "ID", "837"), ("Albuquerque", "NM", "871")),
    (("Phoenix", "AZ", "850"), ("Tucson", "AZ", "857")),
    (("Visalia", "CA", "932"), ("Long Beach", "CA", "908"), ("Portland", "OR", "972"), ("Seattle", "WA", "981")),
    (("Anchorage", "AK", "995"),),
    (("Honolulu", "HI", "968"),),
    (("London", "England", "N1"), ("Leeds", "England", "LS6")),
    (("Berlin", "Berlin", "104"),),
    (("Sydney", "NSW", "20"),),
)
UK = ZONE_NAMES.index("Europe/London")


def birth_date(as_of_day: date, age: int, days_back: int) -> date:
    """A birth date that makes the patient exactly ``age`` on ``as_of_day`` (``days_back`` < 365)."""
    try:
        anniversary = as_of_day.replace(year=as_of_day.year - age)
    except ValueError:  # 29 February
        anniversary = as_of_day.replace(year=as_of_day.year - age, day=28)
    return anniversary - timedelta(days=days_back)


def draw_identifiers(
    rng: np.random.Generator, pop: Population, as_of_day: date, count: int
) -> list[PatientIdentifiers]:
    size = pop.size
    ids = rng.integers(0, 2**63, size=(size, 2), dtype=np.int64)
    first = rng.integers(0, len(FEMALE), size=size)
    last = rng.integers(0, len(LAST), size=size)
    digits = rng.integers(10, 1000, size=(size, 2))
    place = rng.integers(0, 12, size=size)
    house = rng.integers(1, 9999, size=size)
    street = rng.integers(0, len(STREETS), size=size)
    phone = rng.integers(0, 10_000_000, size=size)
    record = rng.integers(0, 10**9, size=size)
    back = rng.integers(0, 365, size=size)
    out: list[PatientIdentifiers] = []
    rows = zip(
        ids[:count].tolist(), pop.female[:count].tolist(), first.tolist(), last.tolist(), digits.tolist(),
        pop.zone[:count].tolist(), place.tolist(), house.tolist(), street.tolist(), phone.tolist(),
        record.tolist(), pop.age[:count].tolist(), back.tolist(), strict=False,
    )
    for (hi, lo), female, f, la, (d1, d2), zone, pl, h, st, ph, rec, age, b in rows:
        key = f"{hi:016x}{lo:016x}"
        given = (FEMALE if female else MALE)[f]
        places = PLACES[zone]
        city, region, postal = places[pl % len(places)]
        telecom = f"+44 7700 900{ph % 1000:03d}" if zone == UK else f"555-{ph // 10000 % 1000:03d}-{ph % 10000:04d}"
        out.append(
            PatientIdentifiers(
                source_id=f"{key[:8]}-{key[8:12]}-4{key[13:16]}-a{key[17:20]}-{key[20:32]}",
                names=(f"{given}{d1} {LAST[la]}{d2}",),
                birth_date=birth_date(as_of_day, age, b),
                telecom=(telecom,),
                addresses=(f"{h} {STREETS[st]} Unit {h % 97}, {city}, {region} {postal}{h % 100:02d}",),
                record_numbers=(f"MRN-SYN-{rec:09d}", f"999-{rec % 100:02d}-{rec // 100 % 10000:04d}"),
            )
        )
    return out
