"""Pure Binance mappers: one raw provider row (records.py) → canonical transaction drafts.

Booking conventions (each chosen so that Σ movements = Δ balance per account and asset holds
against the snapshot quantities of `etl.read_snapshot`):
- Fees are their own movements (kind `fee`) in the asset they were charged in; at most one
  principal and one fee movement per (account, asset) in a transaction.
- Margin accounts are booked in NET terms (snapshot quantity = `netAsset` = free + locked -
  borrowed - interest): a borrow or repay changes free and the liability by the same amount, so
  its movement is 0 (kept, so the event shows with its account and asset); accrued interest is a
  debit when `interestHistory` reports it (the liability grows), in `asset` (BNB for *_CONVERTED).
- Futures wallets are booked only from the futures income ledger (/fapi|dapi/v1/income), whose
  TRANSFER rows are the futures leg of every transfer; universal and sub-account transfers book
  only their non-futures leg. So no futures balance ever counts a transfer twice, and a
  transfer type ingestion forgot shows up as a mismatch on the other wallet, not here.
- Simple Earn receipts (`LD<asset>`, e.g. LDUSDT) are the earn position: booked as `<asset>` in
  the `earn` account with `provider_asset` kept; spot snapshots leave them out.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from shared.sources.common.etl import (
    AccountRef,
    MappingError,
    MovementDraft,
    Skip,
    TransactionDraft,
    collapse,
    dec,
    ms_time,
    opt_dec,
    req,
    utc_text_time,
)

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
PRINCIPAL = "principal"
FEE = "fee"

# Real coins whose ticker starts with "LD" (rotki keeps the same exception list).
REAL_LD_ASSETS = frozenset({"LDO", "LDN"})
# Longest first: the quote suffix that splits a symbol when ingestion gave no base/quote.
QUOTE_ASSETS = tuple(
    sorted(
        [
            "USDT",
            "FDUSD",
            "USDC",
            "BUSD",
            "TUSD",
            "USDP",
            "DAI",
            "USD1",
            "AEUR",
            "EURI",
            "BTC",
            "ETH",
            "BNB",
            "XRP",
            "TRX",
            "DOGE",
            "SOL",
            "DOT",
            "EUR",
            "GBP",
            "TRY",
            "BRL",
            "AUD",
            "JPY",
            "RUB",
            "UAH",
            "NGN",
            "ZAR",
            "IDRT",
            "BIDR",
            "ARS",
            "PLN",
            "RON",
            "MXN",
            "COP",
            "CZK",
        ],
        key=len,
        reverse=True,
    )
)


# --- shared pieces ----------------------------------------------------------------------------


def _context(payload: dict[str, Any]) -> dict[str, Any]:
    context = payload.get("_context")
    return context if isinstance(context, dict) else {}


def _sub(payload: dict[str, Any]) -> str | None:
    return _context(payload).get("sub_account") or None


def is_earn_receipt(asset: str) -> bool:
    return asset.startswith("LD") and len(asset) > 2 and asset not in REAL_LD_ASSETS


def canonical_asset(asset: str) -> tuple[str, str | None]:
    """(canonical symbol, provider symbol when it differs)."""
    if is_earn_receipt(asset):
        return asset[2:], asset
    return asset, None


# canonical_asset per symbol seen: a few hundred symbols, millions of movements.
_CANONICAL: dict[str, tuple[str, str | None]] = {}


def move(account: AccountRef, asset: Any, amount: Decimal, kind: str = PRINCIPAL) -> MovementDraft:
    if not isinstance(asset, str) or not asset:
        raise MappingError(f"asset {asset!r} is not a symbol")
    known = _CANONICAL.get(asset)
    if known is None:
        known = canonical_asset(asset)
        if len(_CANONICAL) < 10_000:
            _CANONICAL[asset] = known
    symbol, provider = known
    if provider is not None:
        # An LD receipt is the earn position, wherever the row says it sat.
        account = AccountRef("earn", account.sub_account)
    return MovementDraft(account, symbol, amount, kind, provider)


def _one(
    kind: str, when: Any, external_id: Any, movements: tuple[MovementDraft, ...] | list
) -> list[TransactionDraft]:
    return [
        TransactionDraft(
            kind, when, None if external_id is None else str(external_id), collapse(movements)
        )
    ]


def split_symbol(payload: dict[str, Any]) -> tuple[str, str]:
    """(base, quote) of the row's pair: from `_context` when ingestion gave it, else by suffix."""
    context = _context(payload)
    base, quote = context.get("baseAsset"), context.get("quoteAsset")
    if base and quote:
        return base, quote
    symbol = req(payload, "symbol")
    for candidate in QUOTE_ASSETS:
        if symbol.endswith(candidate) and len(symbol) > len(candidate):
            return symbol[: -len(candidate)], candidate
    raise MappingError(f"cannot split symbol {symbol!r} into base and quote")


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.upper() in ("TRUE", "FALSE"):
        return value.upper() == "TRUE"
    raise MappingError(f"field {name!r} is not a boolean: {value!r}")


def _trade_legs(
    payload: dict[str, Any], account: AccountRef, quote_qty: Decimal
) -> tuple[MovementDraft, ...]:
    base, quote = split_symbol(payload)
    qty = dec(payload, "qty")
    sign = 1 if _flag(req(payload, "isBuyer"), "isBuyer") else -1
    legs = [move(account, base, sign * qty), move(account, quote, -sign * quote_qty)]
    commission = dec(payload, "commission")
    if commission:
        legs.append(move(account, req(payload, "commissionAsset"), -commission, FEE))
    return collapse(legs)


# --- spot, wallet -----------------------------------------------------------------------------


def map_spot_trade(payload: dict[str, Any]) -> list[TransactionDraft]:
    account = AccountRef("spot", _sub(payload))
    legs = _trade_legs(payload, account, dec(payload, "quoteQty"))
    return _one("trade", ms_time(payload, "time"), payload.get("id"), legs)


_WALLET_TYPES = {0: "spot", 1: "funding", "0": "spot", "1": "funding"}
_DEPOSIT_CREDITED = {1, 6}  # 1 success, 6 credited but locked: both count toward the balance
_DEPOSIT_STATUS = {0: "pending", 2: "rejected", 7: "wrong deposit", 8: "waiting user confirmation"}


def _wallet(payload: dict[str, Any]) -> str:
    # Rows from before the Funding wallet existed carry no walletType: they were spot.
    value = payload.get("walletType", 0)
    try:
        return _WALLET_TYPES[value]
    except (KeyError, TypeError):
        raise MappingError(f"unknown walletType {value!r}") from None


def _int_status(payload: dict[str, Any]) -> int:
    value = payload.get("status")
    if value is None or isinstance(value, bool):
        raise MappingError("missing field 'status'")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise MappingError(f"status {value!r} is not an integer") from None


def map_deposit(payload: dict[str, Any]) -> list[TransactionDraft]:
    status = _int_status(payload)
    if status not in _DEPOSIT_CREDITED:
        if status in _DEPOSIT_STATUS:
            raise Skip(f"status {status} ({_DEPOSIT_STATUS[status]}) moves no balance")
        raise MappingError(f"unknown deposit status {status}")
    account = AccountRef(_wallet(payload), _sub(payload))
    legs = (move(account, req(payload, "coin"), dec(payload, "amount")),)
    # A completed deposit (1) is credited when it completes: one pending over a daily balance read
    # is not in that read, so booking it at insertTime would break two days. A credited-but-
    # locked one (6) counts toward the balance from when Binance inserted it.
    credited = "completeTime" if status == 1 and payload.get("completeTime") else "insertTime"
    return _one("deposit", ms_time(payload, credited), payload.get("id"), legs)


_WITHDRAWAL_STATUS = {
    0: "email sent",
    1: "cancelled",
    2: "awaiting approval",
    3: "rejected",
    4: "processing",
    5: "failure",
}


def map_withdrawal(payload: dict[str, Any]) -> list[TransactionDraft]:
    status = _int_status(payload)
    if status != 6:
        if status in _WITHDRAWAL_STATUS:
            raise Skip(
                f"status {status} ({_WITHDRAWAL_STATUS[status]}) is not a completed withdrawal"
            )
        raise MappingError(f"unknown withdrawal status {status}")
    account = AccountRef(_wallet(payload), _sub(payload))
    coin = req(payload, "coin")
    # `amount` is what left for the address (net); the fee comes on top: debit = amount + fee.
    legs = [move(account, coin, -dec(payload, "amount"))]
    fee = opt_dec(payload, "transactionFee", ZERO)
    if fee:
        legs.append(move(account, coin, -fee, FEE))
    return _one("withdrawal", utc_text_time(payload, "applyTime"), payload.get("id"), legs)


_CONVERT_WALLETS = {
    "SPOT": "spot",
    "MAIN": "spot",
    "FUNDING": "funding",
    "FUND": "funding",
    "EARN": "earn",
    0: "spot",
    1: "funding",
    "0": "spot",
    "1": "funding",
}


def map_convert(payload: dict[str, Any]) -> list[TransactionDraft]:
    status = req(payload, "orderStatus")
    if status != "SUCCESS":
        raise Skip(f"orderStatus {status}")
    wallet = payload.get("walletType")
    wallet = "SPOT" if wallet is None else wallet
    key = wallet.upper() if isinstance(wallet, str) else wallet
    if key not in _CONVERT_WALLETS:
        raise MappingError(f"unknown convert walletType {wallet!r}")
    account = AccountRef(_CONVERT_WALLETS[key], _sub(payload))
    legs = (
        move(account, req(payload, "fromAsset"), -dec(payload, "fromAmount")),
        move(account, req(payload, "toAsset"), dec(payload, "toAmount")),
    )
    return _one(
        "conversion", ms_time(payload, "createTime"), payload.get("orderId"), collapse(legs)
    )


def _dust(payload: dict[str, Any], account: AccountRef) -> list[TransactionDraft]:
    details = req(payload, "userAssetDribbletDetails")
    if not isinstance(details, list) or not details:
        raise MappingError("userAssetDribbletDetails is empty")
    legs: list[MovementDraft] = []
    credits: list[MovementDraft] = []
    for detail in details:
        target = detail.get("targetAsset") or "BNB"
        legs.append(move(account, req(detail, "fromAsset"), -dec(detail, "amount")))
        # transferedAmount is the BNB produced before the service charge (ccxt PR #10272): the
        # wallet receives transferedAmount - serviceChargeAmount.
        credits.append(move(account, target, dec(detail, "transferedAmount")))
        charge = opt_dec(detail, "serviceChargeAmount", ZERO)
        if charge:
            credits.append(move(account, target, -charge, FEE))
    return _one(
        "dust_conversion",
        ms_time(payload, "operateTime"),
        payload.get("transId"),
        collapse(legs + credits),
    )


def map_dust(payload: dict[str, Any]) -> list[TransactionDraft]:
    return _dust(payload, AccountRef("spot", _sub(payload)))


def map_margin_dust(payload: dict[str, Any]) -> list[TransactionDraft]:
    return _dust(payload, AccountRef("cross_margin", _sub(payload)))


def map_asset_dividend(payload: dict[str, Any]) -> list[TransactionDraft]:
    direction = payload.get("direction", 1)
    if direction not in (1, -1, "1", "-1"):
        raise MappingError(f"unknown direction {direction!r}")
    amount = dec(payload, "amount")
    if int(direction) == -1:
        amount = -amount
    legs = (move(AccountRef("spot", _sub(payload)), req(payload, "asset"), amount),)
    return _one("distribution", ms_time(payload, "divTime"), payload.get("tranId"), legs)


# --- transfers --------------------------------------------------------------------------------

# Universal-transfer wallet names → canonical account types; None = a wallet Coinfrs does not
# hold (options, portfolio margin, P2P, mining): its leg is not booked.
_WALLETS: dict[str, str | None] = {
    "MAIN": "spot",
    "FUNDING": "funding",
    "MARGIN": "cross_margin",
    "ISOLATEDMARGIN": "isolated_margin",
    "UMFUTURE": "usdm_futures",
    "CMFUTURE": "coinm_futures",
    "OPTION": None,
    "PORTFOLIO_MARGIN": None,
    "C2C": None,
    "MINING": None,
}
# The futures ledger (income TRANSFER rows) books these legs; see the module docstring.
FUTURES_ACCOUNTS = frozenset({"usdm_futures", "coinm_futures"})


def _split_transfer_type(kind: str) -> tuple[str, str]:
    for source in sorted(_WALLETS, key=len, reverse=True):
        if kind.startswith(source + "_") and kind[len(source) + 1 :] in _WALLETS:
            return source, kind[len(source) + 1 :]
    raise MappingError(f"unknown transfer type {kind!r}")


_TRANSFER_DONE = {"CONFIRMED", "SUCCESS"}
_TRANSFER_NOT_DONE = {"FAILED", "PENDING", "FAILURE", "PROCESS"}


def _transfer_status(payload: dict[str, Any]) -> None:
    status = req(payload, "status")
    if status in _TRANSFER_NOT_DONE:
        raise Skip(f"status {status}")
    if status not in _TRANSFER_DONE:
        raise MappingError(f"unknown transfer status {status!r}")


def _transfer_legs(
    legs: list[tuple[str | None, str | None, str | None, Decimal]],
    asset: str,
    *,
    sub_account_futures: bool = False,
) -> list[MovementDraft]:
    """The legs the transfer ledger books. A futures wallet's legs come from its own income feed
    (TRANSFER rows), except a sub-account's seen from the master (`sub_account_futures`): the
    master key has no income feed for a sub-account's futures (reference §3.12)."""
    booked = []
    for kind, sub_account, key, amount in legs:
        if kind is None:
            continue
        if kind in FUTURES_ACCOUNTS and not (sub_account_futures and sub_account is not None):
            continue
        if kind == "isolated_margin" and not key:
            raise MappingError("isolated-margin leg without its symbol")
        booked.append(move(AccountRef(kind, sub_account, key), asset, amount))
    if not booked:
        raise Skip("no leg in a wallet the transfer ledger books (futures legs come from income)")
    return booked


def map_universal_transfer(payload: dict[str, Any]) -> list[TransactionDraft]:
    _transfer_status(payload)
    context = _context(payload)
    kind = req(payload, "type")
    source, target = _split_transfer_type(kind)
    amount = dec(payload, "amount")
    sub = _sub(payload)
    from_symbol = payload.get("fromSymbol") or context.get("fromSymbol") or context.get("symbol")
    to_symbol = payload.get("toSymbol") or context.get("toSymbol") or context.get("symbol")
    legs = _transfer_legs(
        [
            (_WALLETS[source], sub, from_symbol if source == "ISOLATEDMARGIN" else None, -amount),
            (_WALLETS[target], sub, to_symbol if target == "ISOLATEDMARGIN" else None, amount),
        ],
        req(payload, "asset"),
    )
    return _one("transfer", ms_time(payload, "timestamp"), payload.get("tranId"), legs)


_SUB_ACCOUNT_TYPES = {
    "SPOT": "spot",
    "MARGIN": "cross_margin",
    "ISOLATED_MARGIN": "isolated_margin",
    "USDT_FUTURE": "usdm_futures",
    "COIN_FUTURE": "coinm_futures",
}


def map_sub_account_transfer(payload: dict[str, Any]) -> list[TransactionDraft]:
    _transfer_status(payload)
    context = _context(payload)
    master = context.get("master_email")
    subs = set(context["sub_accounts"]) if "sub_accounts" in context else None

    def side(email_field: str, type_field: str, symbol_field: str, amount: Decimal) -> tuple:
        email = req(payload, email_field)
        kind = req(payload, type_field)
        if kind not in _SUB_ACCOUNT_TYPES:
            raise MappingError(f"unknown {type_field} {kind!r}")
        # The master's own accounts carry no sub-account email (CONTRACT.md `account`); the
        # ingestion names the sub-accounts, every other email is the master's.
        if subs is not None:
            sub_account = email if email in subs else None
        else:
            sub_account = None if master and email == master else email
        symbol = payload.get(symbol_field) or context.get(symbol_field) or context.get("symbol")
        return (
            _SUB_ACCOUNT_TYPES[kind],
            sub_account,
            symbol if kind == "ISOLATED_MARGIN" else None,
            amount,
        )

    amount = dec(payload, "amount")
    legs = _transfer_legs(
        [
            side("fromEmail", "fromAccountType", "fromSymbol", -amount),
            side("toEmail", "toAccountType", "toSymbol", amount),
        ],
        req(payload, "asset"),
        sub_account_futures=True,
    )
    return _one("transfer", ms_time(payload, "createTimeStamp"), payload.get("tranId"), legs)


# --- fiat -------------------------------------------------------------------------------------

_FIAT_ORDER_DONE = {"Successful", "Finished"}
_FIAT_ORDER_NOT_DONE = {
    "Processing",
    "Failed",
    "Refunding",
    "Refunded",
    "Refund Failed",
    "Order Partial credit Stopped",
    "Expired",
}


def _direction(payload: dict[str, Any]) -> int:
    # 0 deposit/buy, 1 withdraw/sell: a request parameter, so ingestion records it in _context.
    context = _context(payload)
    value = context.get("transactionType", context.get("transaction_type"))
    if value not in (0, 1, "0", "1"):
        raise MappingError(f"_context.transactionType {value!r} is not 0 or 1")
    return int(value)


def map_fiat_order(payload: dict[str, Any]) -> list[TransactionDraft]:
    status = req(payload, "status")
    if status in _FIAT_ORDER_NOT_DONE:
        raise Skip(f"status {status}")
    if status not in _FIAT_ORDER_DONE:
        raise MappingError(f"unknown fiat order status {status!r}")
    account = AccountRef("funding", _sub(payload))
    currency = req(payload, "fiatCurrency")
    amount = dec(payload, "amount")  # after the fee
    fee = opt_dec(payload, "totalFee", ZERO)
    if _direction(payload) == 0:
        # Deposit: the wallet gets `amount`; the fee was taken out of the gross sent.
        legs = [move(account, currency, amount + fee)]
        kind = "fiat_deposit"
    else:
        # Withdrawal: `amount` reaches the bank, the fee is debited on top.
        legs = [move(account, currency, -amount)]
        kind = "fiat_withdrawal"
    if fee:
        legs.append(move(account, currency, -fee, FEE))
    return _one(kind, ms_time(payload, "createTime"), payload.get("orderNo"), legs)


def map_fiat_payment(payload: dict[str, Any]) -> list[TransactionDraft]:
    status = req(payload, "status")
    if status in ("Processing", "Failed", "Refunded"):
        raise Skip(f"status {status}")
    if status != "Completed":
        raise MappingError(f"unknown fiat payment status {status!r}")
    account = AccountRef("spot", _sub(payload))
    crypto = req(payload, "cryptoCurrency")
    # The fiat side is a card or bank outside Binance: only the crypto leg touches a wallet.
    if _direction(payload) == 0:
        legs = (move(account, crypto, dec(payload, "obtainAmount")),)
    else:
        legs = (move(account, crypto, -dec(payload, "sourceAmount")),)
    return _one("trade", ms_time(payload, "createTime"), payload.get("orderNo"), legs)


# --- Simple Earn ------------------------------------------------------------------------------

_EARN_DONE = {"SUCCESS", "PURCHASED", "PAID", "CONFIRMED", "COMPLETED", "REDEEMED"}
_EARN_NOT_DONE = {"FAILED", "PENDING", "PROCESSING", "CANCELLED", "REDEEMING"}
_EARN_DESTINATIONS = {"SPOT": "spot", "FUND": "funding", "FUNDING": "funding"}


def _earn_status(payload: dict[str, Any]) -> None:
    status = payload.get("status")
    if status is None:
        return
    if status in _EARN_NOT_DONE:
        raise Skip(f"status {status}")
    if status not in _EARN_DONE:
        raise MappingError(f"unknown earn status {status!r}")


def map_earn_subscription(payload: dict[str, Any]) -> list[TransactionDraft]:
    _earn_status(payload)
    sub = _sub(payload)
    asset = req(payload, "asset")
    amount = dec(payload, "amount")
    from_spot = opt_dec(payload, "amtFromSpot")
    from_funding = opt_dec(payload, "amtFromFunding")
    if from_spot is None and from_funding is None:
        source = str(payload.get("sourceAccount") or "SPOT").upper()
        if source not in _EARN_DESTINATIONS:
            raise MappingError(f"sourceAccount {source!r} needs amtFromSpot/amtFromFunding")
        from_spot, from_funding = (amount, ZERO) if source == "SPOT" else (ZERO, amount)
    from_spot, from_funding = from_spot or ZERO, from_funding or ZERO
    if from_spot + from_funding != amount:
        raise MappingError(
            f"amtFromSpot {from_spot} + amtFromFunding {from_funding} != amount {amount}"
        )
    legs = [move(AccountRef("earn", sub), asset, amount)]
    if from_spot:
        legs.append(move(AccountRef("spot", sub), asset, -from_spot))
    if from_funding:
        legs.append(move(AccountRef("funding", sub), asset, -from_funding))
    return _one("transfer", ms_time(payload, "time"), payload.get("purchaseId"), legs)


def _destination(payload: dict[str, Any]) -> str:
    value = payload.get("destAccount") or payload.get("redeemTo") or "SPOT"
    try:
        return _EARN_DESTINATIONS[str(value).upper()]
    except KeyError:
        raise MappingError(f"unknown destAccount {value!r}") from None


def map_earn_flexible_redemption(payload: dict[str, Any]) -> list[TransactionDraft]:
    _earn_status(payload)
    sub = _sub(payload)
    asset = req(payload, "asset")
    amount = dec(payload, "amount")
    legs = (
        move(AccountRef("earn", sub), asset, -amount),
        move(AccountRef(_destination(payload), sub), asset, amount),
    )
    return _one("transfer", ms_time(payload, "time"), payload.get("redeemId"), legs)


def map_earn_locked_redemption(payload: dict[str, Any]) -> list[TransactionDraft]:
    _earn_status(payload)
    if payload.get("isComplete") is False:
        raise Skip("redemption not complete (isComplete false)")
    sub = _sub(payload)
    asset = req(payload, "asset")
    amount = dec(payload, "amount")
    # An early redemption leaves with `originalAmount` and delivers `amount` (lossAmount less).
    principal = opt_dec(payload, "originalAmount", amount)
    legs = (
        move(AccountRef("earn", sub), asset, -principal),
        move(AccountRef(_destination(payload), sub), asset, amount),
    )
    return _one("transfer", ms_time(payload, "time"), payload.get("redeemId"), legs)


def map_earn_flexible_reward(payload: dict[str, Any]) -> list[TransactionDraft]:
    # Flexible rewards compound into the position (they show in totalAmount).
    legs = (
        move(AccountRef("earn", _sub(payload)), req(payload, "asset"), dec(payload, "rewards")),
    )
    return _one("reward", ms_time(payload, "time"), payload.get("projectId"), legs)


def map_earn_locked_reward(payload: dict[str, Any]) -> list[TransactionDraft]:
    # Locked-product rewards are paid out daily to spot, not into the locked position.
    legs = (move(AccountRef("spot", _sub(payload)), req(payload, "asset"), dec(payload, "amount")),)
    return _one("reward", ms_time(payload, "time"), payload.get("positionId"), legs)


# --- margin -----------------------------------------------------------------------------------


def _margin_account(payload: dict[str, Any], isolated_symbol: Any) -> AccountRef:
    if isolated_symbol:
        return AccountRef("isolated_margin", _sub(payload), str(isolated_symbol))
    return AccountRef("cross_margin", _sub(payload))


def map_margin_trade(payload: dict[str, Any]) -> list[TransactionDraft]:
    isolated = payload.get("isIsolated", _context(payload).get("isIsolated", False))
    symbol = req(payload, "symbol")
    account = _margin_account(payload, symbol if _flag(isolated, "isIsolated") else None)
    # Margin fills carry no quoteQty: price x qty is exact in Decimal.
    quote_qty = dec(payload, "price") * dec(payload, "qty")
    legs = _trade_legs(payload, account, quote_qty)
    return _one("trade", ms_time(payload, "time"), payload.get("id"), legs)


_BORROW_REPAY_DONE = {"CONFIRMED"}


def map_margin_borrow_repay(payload: dict[str, Any]) -> list[TransactionDraft]:
    status = req(payload, "status")
    if status in ("PENDING", "FAILED"):
        raise Skip(f"status {status}")
    if status not in _BORROW_REPAY_DONE:
        raise MappingError(f"unknown borrow/repay status {status!r}")
    # BORROW/REPAY is the query's `type`; the row's own `type` says AUTO/MANUAL/BNB_AUTO_REPAY.
    context = _context(payload)
    direction = context.get("type") or context.get("borrow_repay") or payload.get("type")
    if direction not in ("BORROW", "REPAY"):
        raise MappingError(f"_context.type {direction!r} is not BORROW or REPAY")
    account = _margin_account(payload, payload.get("isolatedSymbol"))
    dec(payload, "amount")  # validated: the row must be readable even though it nets to zero
    # Net booking: free and the liability move together, netAsset does not change.
    legs = (move(account, req(payload, "asset"), ZERO),)
    return _one(direction.lower(), ms_time(payload, "timestamp"), payload.get("txId"), legs)


_INTEREST_TYPES = {
    "PERIODIC",
    "ON_BORROW",
    "PERIODIC_CONVERTED",
    "ON_BORROW_CONVERTED",
    "PORTFOLIO",
}


def map_margin_interest(payload: dict[str, Any]) -> list[TransactionDraft]:
    kind = payload.get("type")
    if kind is not None and kind not in _INTEREST_TYPES:
        raise MappingError(f"unknown interest type {kind!r}")
    account = _margin_account(payload, payload.get("isolatedSymbol"))
    # `asset` is what was charged (BNB for *_CONVERTED), `rawAsset` what was borrowed.
    legs = (move(account, req(payload, "asset"), -dec(payload, "interest")),)
    return _one("interest", ms_time(payload, "interestAccuredTime"), payload.get("txId"), legs)


# --- futures income ---------------------------------------------------------------------------

# incomeType → (transaction type, movement kind); anything else is `other` with a warning.
INCOME_TYPES: dict[str, tuple[str, str]] = {
    "REALIZED_PNL": ("realized_pnl", PRINCIPAL),
    "FUNDING_FEE": ("funding_fee", PRINCIPAL),
    "COMMISSION": ("fee", FEE),
    "INSURANCE_CLEAR": ("fee", FEE),
    "POSITION_LIMIT_INCREASE_FEE": ("fee", FEE),
    "OPTIONS_PREMIUM_FEE": ("fee", FEE),
    "TRANSFER": ("transfer", PRINCIPAL),
    "INTERNAL_TRANSFER": ("transfer", PRINCIPAL),
    "CROSS_COLLATERAL_TRANSFER": ("transfer", PRINCIPAL),
    "STRATEGY_UMFUTURES_TRANSFER": ("transfer", PRINCIPAL),
    "COIN_SWAP_DEPOSIT": ("transfer", PRINCIPAL),
    "COIN_SWAP_WITHDRAW": ("transfer", PRINCIPAL),
    "WELCOME_BONUS": ("reward", PRINCIPAL),
    "CONTEST_REWARD": ("reward", PRINCIPAL),
    "REFERRAL_KICKBACK": ("reward", PRINCIPAL),
    "COMMISSION_REBATE": ("reward", PRINCIPAL),
    "API_REBATE": ("reward", PRINCIPAL),
    "FEE_RETURN": ("reward", PRINCIPAL),
    "BFUSD_REWARD": ("reward", PRINCIPAL),
    "DELIVERED_SETTELMENT": ("realized_pnl", PRINCIPAL),
    "OPTIONS_SETTLE_PROFIT": ("realized_pnl", PRINCIPAL),
    "AUTO_EXCHANGE": ("conversion", PRINCIPAL),
}


def _income(payload: dict[str, Any], account_type: str) -> list[TransactionDraft]:
    income_type = req(payload, "incomeType")
    kind, movement_kind = INCOME_TYPES.get(income_type, ("other", PRINCIPAL))
    if kind == "other":
        logger.warning(
            "unknown futures income type booked as other",
            extra={"income_type": income_type, "account_type": account_type},
        )
    account = AccountRef(account_type, _sub(payload))
    legs = (move(account, req(payload, "asset"), dec(payload, "income"), movement_kind),)
    return _one(kind, ms_time(payload, "time"), payload.get("tranId"), legs)


def map_usdm_income(payload: dict[str, Any]) -> list[TransactionDraft]:
    return _income(payload, "usdm_futures")


def map_coinm_income(payload: dict[str, Any]) -> list[TransactionDraft]:
    return _income(payload, "coinm_futures")


MAPPERS = {
    "spot_trade": map_spot_trade,
    "deposit": map_deposit,
    "withdrawal": map_withdrawal,
    "convert": map_convert,
    "dust": map_dust,
    "margin_dust": map_margin_dust,
    "asset_dividend": map_asset_dividend,
    "universal_transfer": map_universal_transfer,
    "fiat_order": map_fiat_order,
    "fiat_payment": map_fiat_payment,
    "earn_flexible_subscription": map_earn_subscription,
    "earn_flexible_redemption": map_earn_flexible_redemption,
    "earn_flexible_reward": map_earn_flexible_reward,
    "earn_locked_subscription": map_earn_subscription,
    "earn_locked_redemption": map_earn_locked_redemption,
    "earn_locked_reward": map_earn_locked_reward,
    "margin_trade": map_margin_trade,
    "margin_borrow_repay": map_margin_borrow_repay,
    "margin_interest": map_margin_interest,
    "usdm_income": map_usdm_income,
    "coinm_income": map_coinm_income,
    "sub_account_transfer": map_sub_account_transfer,
}
