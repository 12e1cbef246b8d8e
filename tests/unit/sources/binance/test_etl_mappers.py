"""The Binance mappers on realistic provider rows: exact amounts, signs, accounts, kinds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from shared.sources.binance.etl import read_snapshot
from shared.sources.binance.mappers import MAPPERS
from shared.sources.common.etl import AccountRef, MappingError, Skip

SPOT = AccountRef("spot")
FUNDING = AccountRef("funding")
EARN = AccountRef("earn")
CROSS = AccountRef("cross_margin")
T0 = 1_700_000_000_123
WHEN = datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)


def legs(record_type: str, payload: dict) -> set[tuple]:
    (draft,) = MAPPERS[record_type](payload)
    return {(m.account, m.asset, m.amount, m.kind) for m in draft.movements}


def one(record_type: str, payload: dict):
    (draft,) = MAPPERS[record_type](payload)
    return draft


def spot_trade(**changes) -> dict:
    row = {
        "symbol": "BTCUSDT", "id": 28457, "orderId": 100234, "orderListId": -1,
        "price": "35000.10", "qty": "0.00120000", "quoteQty": "42.000120",
        "commission": "0.00000120", "commissionAsset": "BTC", "time": T0,
        "isBuyer": True, "isMaker": False, "isBestMatch": True,
    }  # fmt: skip
    return row | changes


def test_spot_buy_credits_base_debits_quote_and_books_the_commission_as_a_fee():
    draft = one("spot_trade", spot_trade())
    assert draft.type == "trade" and draft.occurred_at == WHEN and draft.external_id == "28457"
    assert legs("spot_trade", spot_trade()) == {
        (SPOT, "BTC", D("0.00120000"), "principal"),
        (SPOT, "USDT", D("-42.000120"), "principal"),
        (SPOT, "BTC", D("-0.00000120"), "fee"),
    }


def test_spot_sell_with_bnb_commission():
    row = spot_trade(isBuyer=False, commission="0.0001", commissionAsset="BNB")
    assert legs("spot_trade", row) == {
        (SPOT, "BTC", D("-0.00120000"), "principal"),
        (SPOT, "USDT", D("42.000120"), "principal"),
        (SPOT, "BNB", D("-0.0001"), "fee"),
    }


def test_spot_trade_uses_base_and_quote_from_context_and_the_sub_account():
    row = spot_trade(
        symbol="ABCDEF", _context={"baseAsset": "ABC", "quoteAsset": "DEF", "sub_account": "s@x.io"}
    )
    accounts = {(m.account, m.asset) for m in one("spot_trade", row).movements}
    assert (AccountRef("spot", "s@x.io"), "ABC") in accounts
    assert (AccountRef("spot", "s@x.io"), "DEF") in accounts


def test_spot_trade_zero_commission_has_no_fee_movement():
    assert all(
        m.kind == "principal" for m in one("spot_trade", spot_trade(commission="0")).movements
    )


def deposit(**changes) -> dict:
    row = {
        "id": "769800519366885376", "amount": "0.50000000", "coin": "ETH", "network": "ETH",
        "status": 1, "address": "0xabc", "addressTag": "", "txId": "0x01", "insertTime": T0,
        "completeTime": T0 + 60_000, "transferType": 0, "confirmTimes": "12/12",
        "unlockConfirm": 0, "walletType": 0,
    }  # fmt: skip
    return row | changes


@pytest.mark.parametrize(("status", "wallet", "account"), [(1, 0, SPOT), (6, 1, FUNDING)])
def test_deposit_credits_the_wallet_of_walletType(status, wallet, account):
    row = deposit(status=status, walletType=wallet)
    assert legs("deposit", row) == {(account, "ETH", D("0.5"), "principal")}
    # Completed (1): credited when it completed. Credited-but-locked (6): from its insertion.
    credited = WHEN + timedelta(minutes=1) if status == 1 else WHEN
    assert one("deposit", row).occurred_at == credited


@pytest.mark.parametrize("status", [0, 2, 7, 8])
def test_deposit_not_credited_is_skipped_with_its_status(status):
    with pytest.raises(Skip, match=f"status {status}"):
        MAPPERS["deposit"](deposit(status=status))


def withdrawal(**changes) -> dict:
    row = {
        "id": "b6ae22b3aa844210a7041aee7589627c", "amount": "8.91000000",
        "transactionFee": "0.004", "coin": "USDT", "status": 6, "address": "0x94df",
        "txId": "0xb5ef", "applyTime": "2019-10-12 11:12:02", "network": "ETH",
        "transferType": 0, "info": "", "confirmNo": 3, "walletType": 1,
        "txKey": "", "completeTime": "2019-10-12 11:15:02",
    }  # fmt: skip
    return row | changes


def test_withdrawal_debits_amount_and_fee_as_two_movements():
    draft = one("withdrawal", withdrawal())
    assert draft.occurred_at == datetime(2019, 10, 12, 11, 12, 2, tzinfo=UTC)
    assert legs("withdrawal", withdrawal()) == {
        (FUNDING, "USDT", D("-8.91"), "principal"),
        (FUNDING, "USDT", D("-0.004"), "fee"),
    }


@pytest.mark.parametrize("status", [0, 1, 2, 3, 4, 5])
def test_withdrawal_not_completed_is_skipped(status):
    with pytest.raises(Skip):
        MAPPERS["withdrawal"](withdrawal(status=status))


def test_convert_success_in_funding_wallet_and_others_skipped():
    row = {
        "quoteId": "f3b91c525b2644c7bc1e1cd31b6e1aa6", "orderId": 940708407462087195,
        "orderStatus": "SUCCESS", "fromAsset": "USDT", "fromAmount": "20", "toAsset": "BNB",
        "toAmount": "0.06154036", "ratio": "0.00307702", "inverseRatio": "324.99",
        "createTime": T0, "walletType": "FUNDING",
    }  # fmt: skip
    assert legs("convert", row) == {
        (FUNDING, "USDT", D("-20"), "principal"),
        (FUNDING, "BNB", D("0.06154036"), "principal"),
    }
    assert {m.account for m in one("convert", row | {"walletType": None}).movements} == {SPOT}
    no_wallet = {k: v for k, v in row.items() if k != "walletType"}
    assert {m.account for m in one("convert", no_wallet).movements} == {SPOT}
    with pytest.raises(Skip, match="PROCESS"):
        MAPPERS["convert"](row | {"orderStatus": "PROCESS"})


def test_dust_debits_each_asset_and_credits_bnb_net_of_the_service_charge():
    row = {
        "operateTime": T0, "totalTransferedAmount": "0.00132256",
        "totalServiceChargeAmount": "0.00002699", "transId": 45178372831,
        "userAssetDribbletDetails": [
            {"transId": 4359321, "serviceChargeAmount": "0.000009", "amount": "0.0009",
             "operateTime": T0, "transferedAmount": "0.000441", "fromAsset": "USDT"},
            {"transId": 4359321, "serviceChargeAmount": "0.00001799", "amount": "0.0009",
             "operateTime": T0, "transferedAmount": "0.00088156", "fromAsset": "ETH"},
        ],
    }  # fmt: skip
    moved = legs("dust", row)
    assert moved == {
        (SPOT, "USDT", D("-0.0009"), "principal"),
        (SPOT, "ETH", D("-0.0009"), "principal"),
        (SPOT, "BNB", D("0.00132256"), "principal"),
        (SPOT, "BNB", D("-0.00002699"), "fee"),
    }
    assert sum(m[2] for m in moved if m[1] == "BNB") == D("0.00129557")
    assert {m[0] for m in legs("margin_dust", row)} == {CROSS}


@pytest.mark.parametrize(("direction", "sign"), [(1, 1), (-1, -1)])
def test_asset_dividend_direction(direction, sign):
    row = {
        "id": 1637366104, "amount": "10.00000000", "asset": "BHFT", "divTime": T0,
        "enInfo": "BHFT distribution", "tranId": 2968885920, "direction": direction,
    }  # fmt: skip
    draft = one("asset_dividend", row)
    assert draft.type == "distribution"
    assert legs("asset_dividend", row) == {(SPOT, "BHFT", sign * D(10), "principal")}


def transfer(kind: str, **changes) -> dict:
    row = {"asset": "USDT", "amount": "100.5", "type": kind, "status": "CONFIRMED",
           "tranId": 11415955596, "timestamp": T0}  # fmt: skip
    return row | changes


def test_universal_transfer_between_booked_wallets_is_one_transaction_two_movements():
    draft = one("universal_transfer", transfer("MAIN_FUNDING"))
    assert draft.type == "transfer"
    assert legs("universal_transfer", transfer("MAIN_FUNDING")) == {
        (SPOT, "USDT", D("-100.5"), "principal"),
        (FUNDING, "USDT", D("100.5"), "principal"),
    }
    assert legs("universal_transfer", transfer("MARGIN_MAIN")) == {
        (CROSS, "USDT", D("-100.5"), "principal"),
        (SPOT, "USDT", D("100.5"), "principal"),
    }


def test_universal_transfer_to_futures_books_only_the_non_futures_leg():
    # The futures leg is the TRANSFER row of the futures income ledger.
    assert legs("universal_transfer", transfer("MAIN_UMFUTURE")) == {
        (SPOT, "USDT", D("-100.5"), "principal")
    }
    with pytest.raises(Skip):
        MAPPERS["universal_transfer"](transfer("UMFUTURE_OPTION"))


def test_universal_transfer_isolated_leg_keyed_by_symbol():
    row = transfer("MARGIN_ISOLATEDMARGIN", _context={"toSymbol": "BTCUSDT"})
    assert legs("universal_transfer", row) == {
        (CROSS, "USDT", D("-100.5"), "principal"),
        (AccountRef("isolated_margin", None, "BTCUSDT"), "USDT", D("100.5"), "principal"),
    }
    with pytest.raises(MappingError, match="symbol"):
        MAPPERS["universal_transfer"](transfer("MARGIN_ISOLATEDMARGIN"))


def test_universal_transfer_failed_is_skipped_and_unknown_type_fails():
    with pytest.raises(Skip, match="FAILED"):
        MAPPERS["universal_transfer"](transfer("MAIN_FUNDING", status="FAILED"))
    with pytest.raises(MappingError, match="unknown transfer type"):
        MAPPERS["universal_transfer"](transfer("MAIN_MOON"))


def test_sub_account_transfer_books_each_side_under_its_email():
    row = {
        "tranId": 11798835829, "fromEmail": "master@x.io", "toEmail": "sub1@x.io",
        "asset": "BTC", "amount": "0.1", "createTimeStamp": T0, "fromAccountType": "SPOT",
        "toAccountType": "MARGIN", "status": "SUCCESS", "clientTranId": "",
        "_context": {"master_email": "master@x.io"},
    }  # fmt: skip
    assert legs("sub_account_transfer", row) == {
        (SPOT, "BTC", D("-0.1"), "principal"),
        (AccountRef("cross_margin", "sub1@x.io"), "BTC", D("0.1"), "principal"),
    }


def test_fiat_order_deposit_and_withdrawal_with_fee():
    row = {
        "orderNo": "7d76d611-0568-4f43-afb6-24cac7767365", "fiatCurrency": "EUR",
        "indicatedAmount": "10.00", "amount": "9.90", "totalFee": "0.10", "method": "BankAccount",
        "status": "Successful", "createTime": T0, "updateTime": T0,
    }  # fmt: skip
    deposit_row = row | {"_context": {"transactionType": 0}}
    assert one("fiat_order", deposit_row).type == "fiat_deposit"
    moved = legs("fiat_order", deposit_row)
    assert moved == {(FUNDING, "EUR", D("10.00"), "principal"), (FUNDING, "EUR", D("-0.10"), "fee")}
    assert sum(m[2] for m in moved) == D("9.90")
    withdraw_row = row | {"_context": {"transactionType": 1}}
    assert one("fiat_order", withdraw_row).type == "fiat_withdrawal"
    assert legs("fiat_order", withdraw_row) == {
        (FUNDING, "EUR", D("-9.90"), "principal"),
        (FUNDING, "EUR", D("-0.10"), "fee"),
    }
    with pytest.raises(Skip):
        MAPPERS["fiat_order"](deposit_row | {"status": "Failed"})
    with pytest.raises(MappingError, match="transactionType"):
        MAPPERS["fiat_order"](row)


def test_fiat_payment_buy_credits_spot_only():
    row = {
        "orderNo": "353fca443f06466db0c4dc89f94f027a", "sourceAmount": "20.0",
        "fiatCurrency": "EUR", "obtainAmount": "4.462", "cryptoCurrency": "LUNA",
        "totalFee": "0.2", "price": "4.437472", "status": "Completed", "createTime": T0,
        "updateTime": T0, "_context": {"transactionType": 0},
    }  # fmt: skip
    assert legs("fiat_payment", row) == {(SPOT, "LUNA", D("4.462"), "principal")}


def test_earn_subscription_debits_spot_and_funding_and_credits_earn():
    row = {
        "amount": "100.5", "asset": "USDT", "time": T0, "purchaseId": 26055,
        "productId": "USDT001", "type": "AUTO", "sourceAccount": "ALL",
        "amtFromSpot": "60.5", "amtFromFunding": "40", "status": "SUCCESS",
    }  # fmt: skip
    assert legs("earn_flexible_subscription", row) == {
        (EARN, "USDT", D("100.5"), "principal"),
        (SPOT, "USDT", D("-60.5"), "principal"),
        (FUNDING, "USDT", D("-40"), "principal"),
    }
    with pytest.raises(MappingError, match="amtFromSpot"):
        MAPPERS["earn_flexible_subscription"](row | {"amtFromFunding": "39"})


def test_earn_redemption_and_rewards():
    redemption = {"amount": "10.54", "asset": "USDT", "time": T0, "projectId": "USDT001",
                  "redeemId": 40607, "destAccount": "FUND", "status": "PAID"}  # fmt: skip
    assert legs("earn_flexible_redemption", redemption) == {
        (EARN, "USDT", D("-10.54"), "principal"),
        (FUNDING, "USDT", D("10.54"), "principal"),
    }
    reward = {"asset": "BUSD", "rewards": "0.00006408", "projectId": "USDT001",
              "type": "BONUS", "time": T0}  # fmt: skip
    assert one("earn_flexible_reward", reward).type == "reward"
    assert legs("earn_flexible_reward", reward) == {(EARN, "BUSD", D("0.00006408"), "principal")}
    locked = {"positionId": "123123", "time": T0, "asset": "AXS", "lockPeriod": "30",
              "amount": "1.23223", "type": "Locked Rewards"}  # fmt: skip
    assert legs("earn_locked_reward", locked) == {(SPOT, "AXS", D("1.23223"), "principal")}


def test_ld_receipt_assets_are_the_earn_position():
    row = transfer("MAIN_FUNDING", asset="LDUSDT")
    moved = one("universal_transfer", row).movements
    # Moving a receipt between wallets leaves the earn position as it was.
    assert [(m.account, m.asset, m.amount, m.provider_asset) for m in moved] == [
        (EARN, "USDT", D(0), "LDUSDT")
    ]
    dividend = {"amount": "1.5", "asset": "LDBTC", "divTime": T0, "tranId": 1, "direction": 1}
    assert legs("asset_dividend", dividend) == {(EARN, "BTC", D("1.5"), "principal")}
    assert {
        m.asset for m in one("universal_transfer", transfer("MAIN_FUNDING", asset="LDO")).movements
    } == {"LDO"}


def test_margin_trade_isolated_keyed_by_symbol_with_quote_from_price_times_qty():
    row = {
        "commission": "0.00006000", "commissionAsset": "BTC", "id": 34, "isBestMatch": True,
        "isBuyer": True, "isMaker": False, "orderId": 39324, "price": "0.02000000",
        "qty": "3.00000000", "symbol": "BNBBTC", "isIsolated": True, "time": T0,
    }  # fmt: skip
    pair = AccountRef("isolated_margin", None, "BNBBTC")
    assert legs("margin_trade", row) == {
        (pair, "BNB", D("3"), "principal"),
        (pair, "BTC", D("-0.06"), "principal"),
        (pair, "BTC", D("-0.00006"), "fee"),
    }
    assert {m.account for m in one("margin_trade", row | {"isIsolated": False}).movements} == {
        CROSS
    }


def test_margin_borrow_nets_to_zero_and_interest_debits_charged_asset():
    borrow = {"type": "MANUAL", "isolatedSymbol": "", "amount": "14.00000000", "asset": "BNB",
              "interest": "0.01866667", "principal": "13.98133333", "status": "CONFIRMED",
              "timestamp": T0, "txId": 2970933056, "_context": {"type": "BORROW"}}  # fmt: skip
    draft = one("margin_borrow_repay", borrow)
    assert draft.type == "borrow"
    assert legs("margin_borrow_repay", borrow) == {(CROSS, "BNB", D(0), "principal")}
    assert one("margin_borrow_repay", borrow | {"_context": {"type": "REPAY"}}).type == "repay"
    with pytest.raises(Skip):
        MAPPERS["margin_borrow_repay"](borrow | {"status": "FAILED"})
    with pytest.raises(MappingError, match="BORROW or REPAY"):
        MAPPERS["margin_borrow_repay"](borrow | {"_context": {}})
    interest = {"txId": 1352286576452864727, "interestAccuredTime": T0, "asset": "BNB",
                "rawAsset": "USDT", "principal": "45.3313", "interest": "0.00024995",
                "interestRate": "0.00013233", "type": "PERIODIC_CONVERTED",
                "isolatedSymbol": "BNBUSDT"}  # fmt: skip
    assert legs("margin_interest", interest) == {
        (AccountRef("isolated_margin", None, "BNBUSDT"), "BNB", D("-0.00024995"), "principal")
    }


@pytest.mark.parametrize(
    ("income_type", "kind", "movement_kind"),
    [
        ("REALIZED_PNL", "realized_pnl", "principal"),
        ("FUNDING_FEE", "funding_fee", "principal"),
        ("COMMISSION", "fee", "fee"),
        ("TRANSFER", "transfer", "principal"),
        ("SOMETHING_NEW", "other", "principal"),
    ],
)
def test_futures_income_types(income_type, kind, movement_kind):
    row = {"symbol": "BTCUSDT", "incomeType": income_type, "income": "-0.37500000",
           "asset": "USDT", "info": "", "time": T0, "tranId": 9689322392}  # fmt: skip
    draft = one("usdm_income", row)
    assert draft.type == kind
    assert legs("usdm_income", row) == {
        (AccountRef("usdm_futures"), "USDT", D("-0.375"), movement_kind)
    }
    coin = one("coinm_income", row | {"asset": "BTC", "tranId": "abc"})
    assert coin.movements[0].account == AccountRef("coinm_futures")


@pytest.mark.parametrize(
    ("record_type", "payload", "reason"),
    [
        ("spot_trade", spot_trade(qty="abc"), "not a decimal"),
        ("spot_trade", spot_trade(qty=0.1), "not a decimal string"),
        ("spot_trade", {k: v for k, v in spot_trade().items() if k != "quoteQty"}, "quoteQty"),
        ("spot_trade", spot_trade(symbol="XYZ"), "cannot split"),
        ("deposit", deposit(amount="NaN"), "not finite"),
        ("deposit", deposit(status=99), "unknown deposit status"),
        ("deposit", deposit(walletType=5), "walletType"),
        ("withdrawal", withdrawal(applyTime="yesterday"), "UTC date-time"),
    ],
)
def test_malformed_rows_raise_a_mapping_error_naming_the_problem(record_type, payload, reason):
    with pytest.raises(MappingError, match=reason):
        MAPPERS[record_type](payload)


def test_snapshot_quantities_per_account_type():
    assert {(p.asset, p.quantity) for p in read_snapshot("spot", None, [
        {"asset": "BTC", "free": "1.5", "locked": "0.5"},
        {"asset": "ETH", "free": "0", "locked": "0"},
        {"asset": "LDUSDT", "free": "10", "locked": "0"},
    ])} == {("BTC", D(2)), ("ETH", D(0))}  # fmt: skip
    assert read_snapshot("funding", "s@x.io", [
        {"asset": "USDT", "free": "1", "locked": "2", "freeze": "3", "withdrawing": "4",
         "btcValuation": "0"}
    ])[0].quantity == D(10)  # fmt: skip
    (cross,) = read_snapshot("cross_margin", None, [
        {"asset": "BTC", "borrowed": "0.1", "free": "1", "interest": "0.01", "locked": "0",
         "netAsset": "0.89"}
    ])  # fmt: skip
    assert (cross.account, cross.quantity) == (CROSS, D("0.89"))
    isolated = read_snapshot("isolated_margin", None, [
        {"symbol": "BTCUSDT", "baseAsset": {"asset": "BTC", "netAsset": "0.5"},
         "quoteAsset": {"asset": "USDT", "netAsset": "-100"}}
    ])  # fmt: skip
    assert {(p.account.key, p.asset, p.quantity) for p in isolated} == {
        ("BTCUSDT", "BTC", D("0.5")), ("BTCUSDT", "USDT", D(-100))
    }  # fmt: skip
    assert read_snapshot("usdm_futures", None, [
        {"accountAlias": "x", "asset": "USDT", "balance": "122.6", "crossUnPnl": "5"}
    ])[0].quantity == D("122.6")  # fmt: skip
    earn = read_snapshot("earn", None, [
        {"asset": "USDT", "totalAmount": "75.5", "productId": "USDT001"},
        {"asset": "USDT", "amount": "24.5", "positionId": 1},
    ])  # fmt: skip
    assert [(p.account, p.asset, p.quantity) for p in earn] == [(EARN, "USDT", D(100))]
    assert read_snapshot("account_snapshot_futures", None, [
        {"asset": "USDT", "marginBalance": "118", "walletBalance": "120"}
    ])[0].quantity == D(120)  # fmt: skip
    with pytest.raises(MappingError):
        read_snapshot("options", None, [])
