"""Coinfrs' own balance snapshots of every Binance account, and Binance's daily accountSnapshot."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from shared.db.models.staging import RawBinancePositionSnapshot
from shared.errors import ProviderRefused, ProviderUnavailable
from shared.sources.binance.client import PROVIDER, Client, Reply
from shared.sources.common.ingestion import SessionFactory, to_datetime

log = logging.getLogger(__name__)

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Balances:
    """One balance read: the account type, its path, weight, and where the list is in the reply."""

    account_type: str
    path: str
    weight: int
    rows: Callable[[Any], list[Any]]
    method: str = "GET"
    params: dict[str, Any] = field(default_factory=dict)
    # The product a user may never have opened (Binance then answers an error, not an empty
    # account): margin, isolated_margin, usdm, coinm; None for the accounts every user has.
    product: str | None = None


def _key(name: str) -> Callable[[Any], list[Any]]:
    return lambda reply: list((reply or {}).get(name) or [])


READS: tuple[Balances, ...] = (
    Balances("spot", "/api/v3/account", 20, _key("balances"), params={"omitZeroBalances": True}),
    Balances("funding", "/sapi/v1/asset/get-funding-asset", 1, lambda r: list(r or []), "POST"),
    Balances("cross_margin", "/sapi/v1/margin/account", 10, _key("userAssets"), product="margin"),
    Balances(
        "isolated_margin",
        "/sapi/v1/margin/isolated/account",
        10,
        _key("assets"),
        product="isolated_margin",
    ),
    Balances("usdm_futures", "/fapi/v3/balance", 5, lambda r: list(r or []), product="usdm"),
    Balances("coinm_futures", "/dapi/v1/balance", 1, lambda r: list(r or []), product="coinm"),
)


def _nested(outer: str) -> Callable[[Any], list[Any]]:
    return lambda reply: list(((reply or {}).get(outer) or {}).get("assets") or [])


# A sub-account's balances beyond spot, read with the master key (reference §3.12).
SUB_READS: tuple[Balances, ...] = (
    Balances(
        "cross_margin",
        "/sapi/v1/sub-account/margin/account",
        10,
        _key("marginUserAssetVoList"),
        product="margin",
    ),
    Balances(
        "usdm_futures",
        "/sapi/v2/sub-account/futures/account",
        1,
        _nested("futureAccountResp"),
        params={"futuresType": 1},
        product="usdm",
    ),
    Balances(
        "coinm_futures",
        "/sapi/v2/sub-account/futures/account",
        1,
        _nested("deliveryAccountResp"),
        params={"futuresType": 2},
        product="coinm",
    ),
)
EARN_PATHS = ("/sapi/v1/simple-earn/flexible/position", "/sapi/v1/simple-earn/locked/position")
# accountSnapshot type -> (our account type, where its balance list is in `data`)
ACCOUNT_SNAPSHOTS = {
    "SPOT": ("account_snapshot_spot", "balances"),
    "MARGIN": ("account_snapshot_margin", "userAssets"),
    "FUTURES": ("account_snapshot_futures", "assets"),
}
ACCOUNT_SNAPSHOT_PRODUCTS = {"MARGIN": "margin", "FUTURES": "usdm"}
EARN_PAGE = 100


@dataclass
class SnapshotResult:
    """What a snapshot pass learned: Binance's time, the assets held, pairs and sub-accounts."""

    now: datetime | None = None
    rows: int = 0
    account_snapshots: int = 0
    assets: set[str] = field(default_factory=set)
    cross_assets: set[str] = field(default_factory=set)
    isolated_pairs: list[str] = field(default_factory=list)
    sub_accounts: list[str] = field(default_factory=list)
    # Products the user (sub_account None) or a sub-account never opened: {product,
    # account_type, sub_account, provider_code, path, reason}.
    not_opened: list[dict[str, Any]] = field(default_factory=list)

    def closed(self, product: str, sub_account: str | None = None) -> bool:
        """Whether Binance said `product` is not opened (for the master by default)."""
        return any(
            (entry["product"], entry["sub_account"]) == (product, sub_account)
            for entry in self.not_opened
        )


def _as_of(reply: Reply) -> datetime:
    # CONTRACT.md: as_of is the provider's time of the reply; the Date header is that time.
    if reply.date is None:
        raise ProviderUnavailable(PROVIDER, "Binance answered a balance read without a Date")
    return reply.date


def take_snapshots(
    client: Client, factory: SessionFactory, data_source_id: uuid.UUID
) -> SnapshotResult:
    """Read the balances of every account the key can see and stage them, one row per account."""
    result = SnapshotResult()
    rows: list[RawBinancePositionSnapshot] = []

    def keep(account_type: str, reply: Reply, balances: list[Any], sub: str | None = None) -> None:
        as_of = _as_of(reply)
        result.now = result.now or as_of
        rows.append(
            RawBinancePositionSnapshot(
                data_source_id=data_source_id,
                account_type=account_type,
                sub_account_id=sub,
                snapshot_timestamp=as_of,
                balances=balances,
            )
        )

    def read_product(read: Balances, sub: str | None = None) -> Reply | None:
        """The read's reply, or None (recorded) when Binance says the product is not opened."""
        params = {**read.params, **({"email": sub} if sub else {})}
        try:
            return client.request(read.path, params, method=read.method, weight=read.weight)
        except (ProviderUnavailable, ProviderRefused) as error:
            code = client.product_not_opened(error) if read.product else None
            if code is None:
                raise
        who = f"sub-account {sub}" if sub else "the account"
        reason = f"{read.product} not opened for {who}: Binance answered {code} on {read.path}" + (
            " (-2015 while the key still reads: the product is not opened, or the key "
            "predates it and cannot see it)"
            if code == -2015
            else ""
        )
        log.warning(
            "binance product not opened",
            extra={
                "provider": PROVIDER,
                "product": read.product,
                "sub_account": sub,
                "provider_code": code,
                "path": read.path,
            },
        )
        result.not_opened.append(
            {
                "product": read.product,
                "account_type": read.account_type,
                "sub_account": sub,
                "provider_code": code,
                "path": read.path,
                "reason": reason,
            }
        )
        return None

    for read in READS:
        if read.product == "isolated_margin" and result.closed("margin"):
            # Isolated margin lives inside the margin account: not opened either.
            continue
        maybe = read_product(read)
        if maybe is None:
            continue
        reply = maybe
        balances = read.rows(reply.data)
        keep(read.account_type, reply, balances)
        for row in balances:
            if read.account_type == "isolated_margin":
                result.isolated_pairs.append(row["symbol"])
                for side in ("baseAsset", "quoteAsset"):
                    result.assets.add(row[side]["asset"])
            elif "asset" in row:
                result.assets.add(row["asset"])
                if read.account_type == "cross_margin":
                    result.cross_assets.add(row["asset"])

    # Flexible and locked positions together: locked rows are the ones with a positionId.
    earn: list[Any] = []
    earn_reply: Reply | None = None
    for path in EARN_PATHS:
        current = 1
        while True:
            reply = client.request(path, {"current": current, "size": EARN_PAGE}, weight=150)
            earn_reply = earn_reply or reply
            page = _key("rows")(reply.data)
            earn.extend(page)
            if len(page) < EARN_PAGE:
                break
            current += 1
    assert earn_reply is not None
    keep("earn", earn_reply, earn)
    result.assets.update(row["asset"] for row in earn if "asset" in row)

    listed = client.request("/sapi/v1/sub-account/list", {"limit": 200}, weight=1)
    for sub in _key("subAccounts")(listed.data):
        email = sub["email"]
        result.sub_accounts.append(email)
        reply = client.request("/sapi/v3/sub-account/assets", {"email": email}, weight=60, uid=True)
        keep("spot", reply, _key("balances")(reply.data), email)
        for read in SUB_READS:
            sub_reply = read_product(read, email)
            if sub_reply is not None:
                keep(read.account_type, sub_reply, read.rows(sub_reply.data), email)

    with factory() as session, session.begin():
        session.add_all(rows)
    result.rows = len(rows)
    return result


def take_account_snapshots(
    client: Client,
    factory: SessionFactory,
    data_source_id: uuid.UUID,
    now_ms: int,
    closed: frozenset[str] | set[str] = frozenset(),
) -> int:
    """Binance's end-of-day snapshots for the month it still serves, each day stored once;
    none of a product in `closed` (not opened: MARGIN for margin, FUTURES for usdm)."""
    stored = 0
    for kind, (account_type, list_name) in ACCOUNT_SNAPSHOTS.items():
        if ACCOUNT_SNAPSHOT_PRODUCTS.get(kind) in closed:
            continue
        params = {"type": kind, "startTime": now_ms - 30 * DAY_MS + 60_000, "endTime": now_ms}
        reply = client.request("/sapi/v1/accountSnapshot", {**params, "limit": 30}, weight=2400)
        vos = list((reply.data or {}).get("snapshotVos") or [])
        with factory() as session, session.begin():
            seen = set(
                session.scalars(
                    select(RawBinancePositionSnapshot.snapshot_timestamp).where(
                        RawBinancePositionSnapshot.data_source_id == data_source_id,
                        RawBinancePositionSnapshot.account_type == account_type,
                    )
                )
            )
            for vo in vos:
                at = to_datetime(int(vo["updateTime"]))
                if at in seen:
                    continue
                seen.add(at)
                session.add(
                    RawBinancePositionSnapshot(
                        data_source_id=data_source_id,
                        account_type=account_type,
                        sub_account_id=None,
                        snapshot_timestamp=at,
                        balances=list((vo.get("data") or {}).get(list_name) or []),
                    )
                )
                stored += 1
    log.info("binance account snapshots stored", extra={"provider": PROVIDER, "stored": stored})
    return stored
