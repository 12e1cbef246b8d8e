"""Lots, cost-basis methods, pricing and PnL: pure functions over Decimal."""
