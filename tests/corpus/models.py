"""pydantic models as loop state: one mutated in place, a list of them."""

from __future__ import annotations

from pydantic import BaseModel, Field

from corpus import exact
from corpus._log import record
from resumable import aiter_checkpointed, resumable


class Order(BaseModel):
    id: int
    customer: str
    cents: int
    tags: list[str] = Field(default_factory=list)


class Report(BaseModel):
    orders: int = 0
    revenue_cents: int = 0
    customers: set[str] = Field(default_factory=set)
    largest: Order | None = None
    flagged: list[int] = Field(default_factory=list)


def raw_orders(n: int) -> list[dict[str, object]]:
    return [
        {
            "id": i,
            "customer": f"c{(i // 2) % 3}",
            "cents": 500 + (i * 7919) % 9000,
            "tags": ["gift"] if i % 4 == 0 else [],
        }
        for i in range(n)
    ]


@exact(redis=True)
@resumable
async def order_report(log: str) -> dict[str, object]:
    """A model mutated in the body: counters, a set field, a nested model, a
    list field appended to."""
    report = Report()
    async for raw in aiter_checkpointed(raw_orders(11)):
        order = Order.model_validate(raw)
        record(log, f"order:{order.id}")
        report.orders += 1
        report.revenue_cents += order.cents
        report.customers.add(order.customer)
        if report.largest is None or order.cents > report.largest.cents:
            report.largest = order
        if "gift" in order.tags:
            report.flagged.append(order.id)
    return report.model_dump(mode="json") | {"customers": sorted(report.customers)}


class Invoice(BaseModel):
    order_id: int
    net_cents: int
    vat_cents: int
    lines: list[str]


@exact()
@resumable
async def build_invoices(log: str) -> list[dict[str, object]]:
    """A list of new models appended per item; the last one is edited when
    the next order is for the same customer (an append, then a mutation of
    an item already checkpointed)."""
    invoices: list[Invoice] = []
    last_customer = None
    async for raw in aiter_checkpointed(raw_orders(10)):
        order = Order.model_validate(raw)
        record(log, f"invoice:{order.id}")
        vat = order.cents * 20 // 100
        if invoices and order.customer == last_customer:
            invoices[-1].lines.append(f"order {order.id}")
            invoices[-1].net_cents += order.cents
            invoices[-1].vat_cents += vat
        else:
            invoices.append(
                Invoice(order_id=order.id, net_cents=order.cents, vat_cents=vat, lines=[])
            )
        last_customer = order.customer
    return [invoice.model_dump() for invoice in invoices]
