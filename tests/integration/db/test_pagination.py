"""Keyset pagination over a real table: complete, no overlap, stable, tamper-proof cursors."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.models import RawBinanceData
from shared.errors import ValidationFailed
from shared.http.pagination import decode_cursor, encode_cursor, paginate


@pytest.fixture
def seven_rows(engine, make_data_source):
    source = make_data_source()
    with engine.begin() as connection:
        connection.execute(
            RawBinanceData.__table__.insert(),
            [
                {
                    "data_source_id": source,
                    "record_type": "deposit",
                    "source_raw_id": f"d-{i}",
                    "raw_payload": {"i": i},
                }
                for i in range(7)
            ],
        )
    return source


@pytest.mark.parametrize("descending", [False, True])
def test_pages_cover_every_row_once(engine, seven_rows, descending):
    statement = select(RawBinanceData).where(RawBinanceData.data_source_id == seven_rows)
    keys = [RawBinanceData.created_at, RawBinanceData.id]
    seen, cursor, sizes = [], None, []
    with Session(engine) as session:
        while True:
            page = paginate(session, statement, keys, 3, cursor, descending=descending)
            seen += [row.source_raw_id for row in page.items]
            sizes.append(len(page.items))
            cursor = page.next_cursor
            if cursor is None:
                break
    assert sizes == [3, 3, 1]
    assert sorted(seen) == [f"d-{i}" for i in range(7)]


def test_an_exact_multiple_ends_without_an_empty_page(engine, seven_rows):
    statement = select(RawBinanceData).where(RawBinanceData.data_source_id == seven_rows)
    with Session(engine) as session:
        page = paginate(session, statement, [RawBinanceData.id], 7, None)
    assert len(page.items) == 7 and page.next_cursor is None


@pytest.mark.parametrize(
    "cursor", ["not-base64!", encode_cursor(["x", "y"]), encode_cursor([1, 2, 3]), "e30"]
)
def test_tampered_cursors_are_validation_errors(cursor):
    with pytest.raises(ValidationFailed, match="cursor is not valid"):
        decode_cursor(cursor, [uuid.UUID, uuid.UUID])


def test_a_cursor_round_trips_its_typed_keys():
    key = uuid.uuid4()
    assert decode_cursor(encode_cursor([key, 5]), [uuid.UUID, int]) == (key, 5)
