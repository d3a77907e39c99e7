"""Explicit data contracts: the Parquet ``cases`` dataset and the request record.

Read Parquet with ``CASE_SCHEMA``: inferring the schema from the first file
silently drops columns added later.
"""

from __future__ import annotations

import pyarrow as pa

# 2: the code-status columns (hscode.code_status, derived against the current tariff edition);
# files written at 1 read them as null until ``restatus_cases`` derives them
SCHEMA_VERSION = 2


CASE_SCHEMA = pa.schema(
    [
        pa.field(
            "case_key", pa.string(), nullable=False
        ),  # portal RRDC_NO, or "source:id" for imports
        pa.field("source", pa.string(), nullable=False),  # "clip" or "import:<file stem>"
        pa.field("series", pa.string()),  # ordinary | council | committee (portal only)
        pa.field("reference_no", pa.string()),
        pa.field("decision_date", pa.date32()),
        pa.field("decision_year", pa.int32()),  # partition key (0 when unknown)
        pa.field("office", pa.string()),
        pa.field("hs_raw", pa.string()),
        pa.field("hs10", pa.string()),  # null when hs_raw is unclear or holds several codes
        pa.field("hs6", pa.string()),
        pa.field("hs4", pa.string()),
        pa.field("hs2", pa.string()),
        pa.field("multi_code", pa.bool_(), nullable=False),
        pa.field("title", pa.string(), nullable=False),  # cleaned product name (model input)
        pa.field("title_raw", pa.string()),
        pa.field("description", pa.string()),  # cleaned description (model input)
        pa.field("description_raw", pa.string()),
        pa.field("decision_reason", pa.string()),  # states the answer: NEVER a model input
        pa.field("image_hashes", pa.list_(pa.string())),  # sha256 of images in the image store
        pa.field("image_count", pa.int32()),  # as declared by the portal
        pa.field("fetched_at", pa.timestamp("us", tz="UTC")),
        pa.field("raw_ref", pa.string()),  # sha256 of the raw detail (or list) response
        pa.field("schema_version", pa.int32(), nullable=False),
        # derived, not observed: the decided code against the current tariff edition
        pa.field("code_status", pa.string()),  # current | remapped | split | moved | unknown
        pa.field("code_candidates", pa.list_(pa.string())),  # current codes right for the case
        pa.field("code_edition", pa.string()),  # the edition it was derived against
    ]
)
# columns derived from the others (and the tariff), not part of a case's content
DERIVED_COLUMNS = ("code_status", "code_candidates", "code_edition")

CASE_COLUMNS = tuple(CASE_SCHEMA.names)
