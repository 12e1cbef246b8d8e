"""Value types every layer shares: exact amounts that travel as JSON strings."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import PlainSerializer, WithJsonSchema

# A quantity, price or fee: Decimal in Python, a string in JSON (never a float), no exponent.
Amount = Annotated[
    Decimal,
    PlainSerializer(
        lambda value: format(value.normalize(), "f") if value == value else "NaN",
        return_type=str,
        when_used="json",
    ),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^-?[0-9]+(\.[0-9]+)?$",
            "description": "An exact decimal, as a string.",
        }
    ),
]
