"""Where the datasets and the ledger go when the deployment file does not say: with the buckets.

BigQuery loads from Cloud Storage only when the dataset is in the bucket's location (or, for a
regional bucket, also in the multi-region that contains it), and a ledger far from the service
is slow; a default far from both (``US``, ``nam5``) would be wrong without a word. So a location
is derived only where the answer is certain: every bucket in one place that BigQuery and
Firestore both know by that name (the ``US`` and ``EU`` multi-regions, or one region).
Anything else (buckets in several places, a dual-region, ``ASIA``) makes the field required.
"""

from __future__ import annotations

import re

# Firestore's multi-region that matches each Cloud Storage and BigQuery multi-region.
FIRESTORE_MULTI_REGIONS = {"US": "nam5", "EU": "eur3"}
REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")


def shared_location(bucket_locations: list[str]) -> str | None:
    """The buckets' one location, as BigQuery names it (US, EU or a region), else None."""
    found = {location.upper() for location in bucket_locations}
    if len(found) != 1:
        return None
    [location] = found
    if location in FIRESTORE_MULTI_REGIONS:
        return location
    return location.lower() if REGION.fullmatch(location.lower()) else None


def firestore_location(bigquery_location: str) -> str:
    """Firestore's name for a location derived by ``shared_location``."""
    return FIRESTORE_MULTI_REGIONS.get(bigquery_location, bigquery_location)
