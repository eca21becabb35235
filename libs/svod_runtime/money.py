"""google.type.Money <-> Decimal, exactly (no floats for money)."""

from __future__ import annotations

from decimal import Decimal

from google.type import money_pb2

NANO = Decimal("0.000000001")


def money_to_decimal(money: money_pb2.Money) -> Decimal:
    return Decimal(money.units) + Decimal(money.nanos) * NANO


def decimal_to_money(amount: Decimal, currency: str) -> money_pb2.Money:
    quantized = amount.quantize(NANO)
    units = int(quantized)
    nanos = int((quantized - units) / NANO)
    return money_pb2.Money(currency_code=currency, units=units, nanos=nanos)
