"""What reconciling a Binance data source needs to know: which accounts each stream moves."""

from __future__ import annotations

from shared.sources.binance.records import RECORD_TYPES

# A stream whose history Binance cannot return leaves these account types unprovable that day.
STREAM_ACCOUNT_TYPES: dict[str, tuple[str, ...]] = {
    name: record.accounts for name, record in RECORD_TYPES.items()
}
