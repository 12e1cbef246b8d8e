"""The Binance record types: what each staging row holds and how its stable id is made.

This table is the contract between ingestion (which writes `staging.raw_binance_data` rows) and the
ETL (which reads them). `raw_payload` is always ONE provider row exactly as returned, plus, where
the row alone does not say it, a `_context` object added by ingestion (e.g. the symbol or the
isolated pair a request was for) — never any other change.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RecordType:
    name: str
    endpoint: str
    # How `source_raw_id` is built from the row (and `_context`): stable, unique per type.
    source_raw_id: str
    # The canonical accounts the rows move money in (CONTRACT.md account types).
    accounts: tuple[str, ...]


RECORD_TYPES: dict[str, RecordType] = {
    record.name: record
    for record in (
        RecordType("spot_trade", "GET /api/v3/myTrades", "{symbol}:{id}", ("spot",)),
        RecordType("deposit", "GET /sapi/v1/capital/deposit/hisrec", "{id}", ("spot", "funding")),
        RecordType(
            "withdrawal", "GET /sapi/v1/capital/withdraw/history", "{id}", ("spot", "funding")
        ),
        RecordType(
            "convert", "GET /sapi/v1/convert/tradeFlow", "{orderId}", ("spot", "funding", "earn")
        ),
        RecordType("dust", "GET /sapi/v1/asset/dribblet", "{transId}", ("spot",)),
        RecordType("margin_dust", "GET /sapi/v1/margin/dribblet", "{transId}", ("cross_margin",)),
        RecordType(
            "asset_dividend", "GET /sapi/v1/asset/assetDividend", "{tranId}:{asset}", ("spot",)
        ),
        RecordType(
            "universal_transfer",
            "GET /sapi/v1/asset/transfer (one call per type)",
            "{type}:{tranId}",
            ("spot", "funding", "cross_margin", "isolated_margin", "usdm_futures", "coinm_futures"),
        ),
        RecordType("fiat_order", "GET /sapi/v1/fiat/orders", "{orderNo}", ("funding",)),
        RecordType("fiat_payment", "GET /sapi/v1/fiat/payments", "{orderNo}", ("spot",)),
        RecordType(
            "earn_flexible_subscription",
            "GET /sapi/v1/simple-earn/flexible/history/subscriptionRecord",
            "{purchaseId}",
            ("earn", "spot", "funding"),
        ),
        RecordType(
            "earn_flexible_redemption",
            "GET /sapi/v1/simple-earn/flexible/history/redemptionRecord",
            "{redeemId}",
            ("earn", "spot", "funding"),
        ),
        RecordType(
            "earn_flexible_reward",
            "GET /sapi/v1/simple-earn/flexible/history/rewardsRecord",
            "{projectId}:{type}:{time}:{asset}",
            ("earn",),
        ),
        RecordType(
            "earn_locked_subscription",
            "GET /sapi/v1/simple-earn/locked/history/subscriptionRecord",
            "{purchaseId}",
            ("earn", "spot", "funding"),
        ),
        RecordType(
            "earn_locked_redemption",
            "GET /sapi/v1/simple-earn/locked/history/redemptionRecord",
            "{redeemId}",
            ("earn", "spot", "funding"),
        ),
        RecordType(
            "earn_locked_reward",
            "GET /sapi/v1/simple-earn/locked/history/rewardsRecord",
            "{positionId}:{time}:{asset}",
            ("earn", "spot"),
        ),
        RecordType(
            "margin_trade",
            "GET /sapi/v1/margin/myTrades",
            "{symbol}:{isIsolated}:{id}",
            ("cross_margin", "isolated_margin"),
        ),
        RecordType(
            "margin_borrow_repay",
            "GET /sapi/v1/margin/borrow-repay",
            "{type}:{txId}",
            ("cross_margin", "isolated_margin"),
        ),
        RecordType(
            "margin_interest",
            "GET /sapi/v1/margin/interestHistory",
            "{txId}",
            ("cross_margin", "isolated_margin"),
        ),
        RecordType(
            "usdm_income", "GET /fapi/v1/income", "{incomeType}:{tranId}", ("usdm_futures",)
        ),
        RecordType(
            "coinm_income", "GET /dapi/v1/income", "{incomeType}:{tranId}", ("coinm_futures",)
        ),
        RecordType(
            "sub_account_transfer",
            "GET /sapi/v1/sub-account/universalTransfer",
            "{tranId}",
            ("spot", "cross_margin", "isolated_margin", "usdm_futures", "coinm_futures"),
        ),
    )
}

# Staging snapshot rows (`staging.raw_binance_position_snapshot.account_type`): one per account
# read, `balances` = the provider's balance list as returned; `sub_account_id` = the sub-account
# email (null for the master); isolated margin keeps the pair in each balance row's `symbol`.
SNAPSHOT_ACCOUNT_TYPES = (
    "spot",
    "funding",
    "cross_margin",
    "isolated_margin",
    "usdm_futures",
    "coinm_futures",
    "earn",
    # Binance's own end-of-day snapshots (GET /sapi/v1/accountSnapshot), kept apart: cross-check
    # and seed of past days only.
    "account_snapshot_spot",
    "account_snapshot_margin",
    "account_snapshot_futures",
)
