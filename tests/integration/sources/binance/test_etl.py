"""The Binance ETL on PostgreSQL: staging rows of every type → movements and positions."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import text

from shared.config import get_settings
from shared.sources.binance.etl import run_etl
from shared.sources.binance.records import RECORD_TYPES

DAY = datetime(2024, 3, 5, tzinfo=UTC)


def ms(hour: int, minute: int = 0) -> int:
    return int((DAY + timedelta(hours=hour, minutes=minute)).timestamp()) * 1000


# One realistic day: each row is (record_type, source_raw_id, payload).
HISTORY = [
    ("spot_trade", "BTCUSDT:1", {
        "symbol": "BTCUSDT", "id": 1, "orderId": 10, "orderListId": -1, "price": "40000",
        "qty": "0.01", "quoteQty": "400", "commission": "0.00001", "commissionAsset": "BTC",
        "time": ms(1), "isBuyer": True, "isMaker": False, "isBestMatch": True}),
    ("universal_transfer", "MAIN_UMFUTURE:501", {
        "asset": "USDT", "amount": "100", "type": "MAIN_UMFUTURE", "status": "CONFIRMED",
        "tranId": 501, "timestamp": ms(2)}),
    ("usdm_income", "TRANSFER:501", {
        "symbol": "", "incomeType": "TRANSFER", "income": "100", "asset": "USDT", "info": "",
        "time": ms(2), "tranId": 501, "tradeId": ""}),
    ("usdm_income", "COMMISSION:77", {
        "symbol": "BTCUSDT", "incomeType": "COMMISSION", "income": "-0.5", "asset": "USDT",
        "info": "", "time": ms(3), "tranId": 77, "tradeId": "5"}),
    ("usdm_income", "REALIZED_PNL:78", {
        "symbol": "BTCUSDT", "incomeType": "REALIZED_PNL", "income": "10", "asset": "USDT",
        "info": "", "time": ms(4), "tranId": 78, "tradeId": "6"}),
    ("universal_transfer", "MAIN_FUNDING:502", {
        "asset": "USDT", "amount": "50", "type": "MAIN_FUNDING", "status": "CONFIRMED",
        "tranId": 502, "timestamp": ms(5)}),
    ("withdrawal", "w1", {
        "id": "w1", "amount": "20", "transactionFee": "1", "coin": "USDT", "status": 6,
        "address": "0x1", "txId": "0x2", "applyTime": "2024-03-05 06:00:00", "network": "ETH",
        "transferType": 0, "walletType": 1, "completeTime": "2024-03-05 06:05:00"}),
    ("earn_flexible_subscription", "9001", {
        "amount": "80", "asset": "USDT", "time": ms(7), "purchaseId": 9001,
        "productId": "USDT001", "type": "NORMAL", "sourceAccount": "ALL",
        "amtFromSpot": "60", "amtFromFunding": "20", "status": "SUCCESS"}),
    ("earn_flexible_reward", "USDT001:REALTIME:1709600000000:USDT", {
        "asset": "USDT", "rewards": "0.1", "projectId": "USDT001", "type": "REALTIME",
        "time": ms(8)}),
    ("universal_transfer", "MAIN_MARGIN:503", {
        "asset": "USDT", "amount": "200", "type": "MAIN_MARGIN", "status": "CONFIRMED",
        "tranId": 503, "timestamp": ms(9)}),
    ("margin_borrow_repay", "BORROW:601", {
        "type": "MANUAL", "isolatedSymbol": "", "amount": "100", "asset": "USDT",
        "interest": "0", "principal": "100", "status": "CONFIRMED", "timestamp": ms(10),
        "txId": 601, "_context": {"type": "BORROW"}}),
    ("margin_trade", "BTCUSDT:FALSE:2", {
        "commission": "0.2", "commissionAsset": "USDT", "id": 2, "isBestMatch": True,
        "isBuyer": True, "isMaker": False, "orderId": 11, "price": "40000", "qty": "0.005",
        "symbol": "BTCUSDT", "isIsolated": False, "time": ms(11)}),
    ("margin_interest", "602", {
        "txId": 602, "interestAccuredTime": ms(12), "asset": "USDT", "rawAsset": "USDT",
        "principal": "100", "interest": "0.01", "interestRate": "0.0001", "type": "PERIODIC",
        "isolatedSymbol": ""}),
    ("deposit", "d1", {
        "id": "d1", "amount": "1", "coin": "ETH", "network": "ETH", "status": 1, "address": "0x",
        "txId": "0x3", "insertTime": ms(13), "completeTime": ms(13), "transferType": 0,
        "walletType": 0}),
    ("deposit", "d2", {
        "id": "d2", "amount": "5", "coin": "ETH", "network": "ETH", "status": 0, "address": "0x",
        "txId": "0x4", "insertTime": ms(14), "completeTime": ms(14), "transferType": 0,
        "walletType": 0}),
]  # fmt: skip

# The other record types, one realistic row each, dated after the closing snapshot.
OTHERS = [
    ("convert", "c1", {
        "quoteId": "q", "orderId": 940708407462087195, "orderStatus": "SUCCESS",
        "fromAsset": "USDT", "fromAmount": "20", "toAsset": "BNB", "toAmount": "0.06154036",
        "ratio": "0.003", "inverseRatio": "325", "createTime": ms(30)}),
    ("dust", "45178372831", {
        "operateTime": ms(30), "totalTransferedAmount": "0.00044", "totalServiceChargeAmount":
        "0.000009", "transId": 45178372831, "userAssetDribbletDetails": [{
            "transId": 4359321, "serviceChargeAmount": "0.000009", "amount": "0.0009",
            "operateTime": ms(30), "transferedAmount": "0.00044", "fromAsset": "ATOM"}]}),
    ("margin_dust", "45178372832", {
        "operateTime": ms(30), "transId": 45178372832, "userAssetDribbletDetails": [{
            "transId": 1, "serviceChargeAmount": "0.000001", "amount": "0.01",
            "operateTime": ms(30), "transferedAmount": "0.00005", "fromAsset": "DOGE"}]}),
    ("asset_dividend", "2968885920:BHFT", {
        "id": 1, "amount": "10", "asset": "BHFT", "divTime": ms(30), "enInfo": "BHFT distribution",
        "tranId": 2968885920, "direction": 1}),
    ("fiat_order", "f1", {
        "orderNo": "f1", "fiatCurrency": "EUR", "indicatedAmount": "10", "amount": "9.9",
        "totalFee": "0.1", "method": "BankAccount", "status": "Successful", "createTime": ms(30),
        "updateTime": ms(30), "_context": {"transactionType": 0}}),
    ("fiat_payment", "p1", {
        "orderNo": "p1", "sourceAmount": "20", "fiatCurrency": "EUR", "obtainAmount": "4.462",
        "cryptoCurrency": "LUNA", "totalFee": "0.2", "price": "4.4", "status": "Completed",
        "createTime": ms(30), "updateTime": ms(30), "_context": {"transactionType": 0}}),
    ("earn_flexible_redemption", "40607", {
        "amount": "1", "asset": "BUSD", "time": ms(30), "projectId": "BUSD001", "redeemId": 40607,
        "destAccount": "SPOT", "status": "PAID"}),
    ("earn_locked_subscription", "8001", {
        "positionId": "1", "purchaseId": 8001, "time": ms(30), "asset": "AXS", "amount": "5",
        "lockPeriod": "30", "type": "NORMAL", "sourceAccount": "SPOT", "amtFromSpot": "5",
        "amtFromFunding": "0", "status": "SUCCESS"}),
    ("earn_locked_redemption", "8002", {
        "positionId": "1", "redeemId": 8002, "time": ms(30), "asset": "AXS", "lockPeriod": "30",
        "amount": "5", "originalAmount": "5", "type": "MATURE", "isComplete": True}),
    ("earn_locked_reward", "1:1709600000000:AXS", {
        "positionId": "1", "time": ms(30), "asset": "AXS", "lockPeriod": "30", "amount": "0.01",
        "type": "Locked Rewards"}),
    ("coinm_income", "FUNDING_FEE:abc", {
        "symbol": "BTCUSD_PERP", "incomeType": "FUNDING_FEE", "income": "-0.00000012",
        "asset": "BTC", "info": "", "time": ms(30), "tranId": "abc", "tradeId": ""}),
    ("sub_account_transfer", "7001", {
        "tranId": 7001, "fromEmail": "master@x.io", "toEmail": "sub@x.io", "asset": "USDT",
        "amount": "3", "createTimeStamp": ms(30), "fromAccountType": "SPOT",
        "toAccountType": "SPOT", "status": "SUCCESS", "_context": {"master_email": "master@x.io"}}),
]  # fmt: skip

BROKEN = [
    (
        "spot_trade",
        "BTCUSDT:3",
        {
            "symbol": "BTCUSDT",
            "id": 3,
            "orderId": 12,
            "price": "40000",
            "qty": "abc",
            "quoteQty": "400",
            "commission": "0",
            "commissionAsset": "BTC",
            "time": ms(15),
            "isBuyer": True,
        },
    ),
    ("options_trade", "o1", {"id": 1}),
]


def _insert_raw(engine, data_source_id, rows) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO staging.raw_binance_data "
                "(data_source_id, record_type, source_raw_id, raw_payload) "
                "VALUES (:ds, :rt, :sid, CAST(:payload AS jsonb))"
            ),
            [
                {"ds": data_source_id, "rt": rt, "sid": sid, "payload": json.dumps(payload)}
                for rt, sid, payload in rows
            ],
        )


def _insert_snapshot(engine, data_source_id, account_type, at, balances, sub=None) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO staging.raw_binance_position_snapshot "
                "(data_source_id, account_type, sub_account_id, snapshot_timestamp, balances) "
                "VALUES (:ds, :at, :sub, :ts, CAST(:b AS jsonb))"
            ),
            {
                "ds": data_source_id,
                "at": account_type,
                "sub": sub,
                "ts": at,
                "b": json.dumps(balances),
            },
        )


OPEN = DAY + timedelta(minutes=5)  # closes 2024-03-04 with the 6 h grace
CLOSE = DAY + timedelta(days=1, minutes=5)  # closes 2024-03-05

OPENING = {
    "spot": [
        {"asset": "USDT", "free": "1000", "locked": "0"},
        {"asset": "BTC", "free": "0", "locked": "0"},
    ],
    "funding": [{"asset": "USDT", "free": "0", "locked": "0", "freeze": "0", "withdrawing": "0"}],
    "usdm_futures": [{"accountAlias": "a", "asset": "USDT", "balance": "0"}],
    "cross_margin": [
        {"asset": "USDT", "borrowed": "0", "free": "0", "interest": "0", "locked": "0",
         "netAsset": "0"},
        {"asset": "BTC", "borrowed": "0", "free": "0", "interest": "0", "locked": "0",
         "netAsset": "0"},
    ],
    "earn": [{"asset": "USDT", "totalAmount": "0"}],
}  # fmt: skip
CLOSING = {
    "spot": [
        {"asset": "USDT", "free": "180", "locked": "10"},
        {"asset": "BTC", "free": "0.00999", "locked": "0"},
        {"asset": "ETH", "free": "1", "locked": "0"},
        {"asset": "LDUSDT", "free": "80.1", "locked": "0"},
    ],
    "funding": [{"asset": "USDT", "free": "9", "locked": "0", "freeze": "0", "withdrawing": "0"}],
    "usdm_futures": [{"accountAlias": "a", "asset": "USDT", "balance": "109.5"}],
    "cross_margin": [
        {"asset": "USDT", "borrowed": "100", "free": "99.8", "interest": "0.01", "locked": "0",
         "netAsset": "-0.21"},
        {"asset": "BTC", "borrowed": "0", "free": "0.005", "interest": "0", "locked": "0",
         "netAsset": "0.005"},
    ],
    "earn": [{"asset": "USDT", "totalAmount": "80.1", "productId": "USDT001"}],
}  # fmt: skip


@pytest.fixture
def loaded(engine, make_data_source):
    data_source_id = make_data_source()
    _insert_raw(engine, data_source_id, HISTORY + OTHERS + BROKEN)
    for balances, at in ((OPENING, OPEN), (CLOSING, CLOSE)):
        for account_type, rows in balances.items():
            _insert_snapshot(engine, data_source_id, account_type, at, rows)
    return data_source_id


def _ledger(engine, data_source_id) -> list[tuple]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                text(
                    "SELECT t.record_type, t.source_raw_id, t.sequence, t.type::text, "
                    "t.occurred_at, t.external_id, a.type, a.sub_account, a.key, m.asset, "
                    "m.provider_asset, m.amount, m.kind::text FROM canonical.transactions t "
                    "JOIN canonical.movements m ON m.transaction_id = t.id "
                    "JOIN canonical.accounts a ON a.id = m.account_id "
                    "WHERE t.data_source_id = :ds ORDER BY 1, 2, 3, 7, 10, 13"
                ),
                {"ds": data_source_id},
            )
        ]


def _statuses(engine, data_source_id) -> dict[str, tuple]:
    with engine.connect() as connection:
        return {
            sid: (status, error)
            for sid, status, error in connection.execute(
                text(
                    "SELECT source_raw_id, processing_status::text, processing_error "
                    "FROM staging.raw_binance_data WHERE data_source_id = :ds"
                ),
                {"ds": data_source_id},
            )
        }


def test_every_record_type_is_mapped_and_failures_are_recorded(engine, loaded):
    report = run_etl(engine, get_settings(), loaded, batch_size=7)
    total = len(HISTORY + OTHERS + BROKEN)
    assert (report.processed, report.skipped, report.failed) == (total - 3, 1, 2)
    assert {rt for rt, _, _ in HISTORY + OTHERS} == set(RECORD_TYPES)
    statuses = _statuses(engine, loaded)
    assert statuses["d2"] == ("skipped", "status 0 (pending) moves no balance")
    assert statuses["BTCUSDT:3"][0] == "failed" and "qty" in statuses["BTCUSDT:3"][1]
    assert statuses["o1"] == ("failed", "unknown record type 'options_trade'")
    assert {sid for sid, reason in report.failures} == {"BTCUSDT:3", "o1"}
    done = {sid for sid, (status, _) in statuses.items() if status == "processed"}
    ledger = _ledger(engine, loaded)
    assert {row[1] for row in ledger} == done
    assert report.transactions == len(done)
    assert report.movements == len(ledger)
    withdrawal = [row for row in ledger if row[1] == "w1"]
    assert [(r[6], r[9], r[11], r[12]) for r in withdrawal] == [
        ("funding", "USDT", D("-1"), "fee"),
        ("funding", "USDT", D("-20"), "principal"),
    ]
    assert withdrawal[0][4] == datetime(2024, 3, 5, 6, tzinfo=UTC)
    # A transfer to futures books the spot leg here; the futures leg is the income TRANSFER row.
    assert [(r[6], r[11]) for r in ledger if r[1] == "MAIN_UMFUTURE:501"] == [("spot", D(-100))]
    assert [(r[6], r[11]) for r in ledger if r[1] == "TRANSFER:501"] == [("usdm_futures", D(100))]


def test_second_run_changes_nothing(engine, loaded):
    settings = get_settings()
    run_etl(engine, settings, loaded)
    before = (_ledger(engine, loaded), _statuses(engine, loaded), _positions(engine, loaded))
    again = run_etl(engine, settings, loaded)
    assert (again.processed, again.skipped, again.failed, again.transactions) == (0, 0, 0, 0)
    assert (again.movements, again.snapshots) == (0, 0)
    assert (
        _ledger(engine, loaded),
        _statuses(engine, loaded),
        _positions(engine, loaded),
    ) == before


def _positions(engine, data_source_id) -> list[tuple]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                text(
                    "SELECT a.type, a.sub_account, a.key, p.asset, p.quantity, p.as_of, "
                    "p.closes_day, p.source FROM canonical.position_snapshots p "
                    "JOIN canonical.accounts a ON a.id = p.account_id "
                    "WHERE p.data_source_id = :ds ORDER BY 1, 4, 6"
                ),
                {"ds": data_source_id},
            )
        ]


def test_snapshots_are_normalised_with_closes_day_per_grace(engine, loaded):
    report = run_etl(engine, get_settings(), loaded)
    positions = _positions(engine, loaded)
    assert report.snapshots == len(positions) == 7 + 8
    assert {p[6] for p in positions if p[5] == OPEN} == {date(2024, 3, 4)}
    assert {p[6] for p in positions if p[5] == CLOSE} == {date(2024, 3, 5)}
    assert {p[7] for p in positions} == {"own"}
    # LD receipts in spot are the earn position, not spot; explicit zeros are kept.
    assert not any(p[3] == "LDUSDT" for p in positions)
    assert ("spot", None, None, "BTC", D(0), OPEN, date(2024, 3, 4), "own") in positions


def test_movements_sum_to_the_balance_change_of_every_account_and_asset(engine, loaded):
    run_etl(engine, get_settings(), loaded)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                """
                SELECT a.type, p.asset, o.quantity, p.quantity,
                       coalesce((SELECT sum(m.amount) FROM canonical.movements m
                                 WHERE m.account_id = p.account_id AND m.asset = p.asset
                                   AND m.occurred_at > :open
                                   AND m.occurred_at <= p.as_of), 0)
                FROM canonical.position_snapshots p
                JOIN canonical.accounts a ON a.id = p.account_id
                LEFT JOIN canonical.position_snapshots o
                  ON o.account_id = p.account_id AND o.asset = p.asset AND o.as_of = :open
                WHERE p.data_source_id = :ds AND p.as_of = :close
                """
            ),
            {"ds": loaded, "open": OPEN, "close": CLOSE},
        ).all()
    assert len(rows) == 8
    for account_type, asset, opening, closing, moved in rows:
        opening = opening or D(0)  # ETH first appears in the closing snapshot
        assert opening + moved == closing, (account_type, asset, opening, moved, closing)
