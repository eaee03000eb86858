"""pandas DataFrames built row by row: `df.loc[len(df)] = row`, `pd.concat`.

The result is the frame's JSON (`to_json`): values, column order, index and
dtypes as they show in JSON all count.
"""

from __future__ import annotations

import json

import pandas as pd

from corpus import exact
from corpus._log import record
from resumable import aiter_checkpointed, resumable


def trade(i: int) -> dict[str, object]:
    return {
        "ticker": ("AAPL", "MSFT", "NVDA", "TSLA")[i % 4],
        "qty": (i * 37) % 100 + 1,
        "price": round(100 + (i * 13.7) % 50, 2),
    }


@exact()
@resumable
async def trades_by_loc(log: str) -> dict[str, object]:
    """Rows added with `df.loc[len(df)] = [...]` to a frame made before the
    loop (a mutation through the `.loc` indexer), and a column edited."""
    df = pd.DataFrame({"ticker": pd.Series(dtype="str"), "qty": pd.Series(dtype="int64")})
    df["notional"] = pd.Series(dtype="float64")
    async for i in aiter_checkpointed(range(10)):
        t = trade(i)
        record(log, f"trade:{i}")
        df.loc[len(df)] = [t["ticker"], t["qty"], t["qty"] * t["price"]]
        if t["qty"] > 80:
            df.loc[df["ticker"] == t["ticker"], "qty"] += 1
    return json.loads(df.to_json(orient="split"))


@exact()
@resumable
async def trades_by_concat(log: str) -> dict[str, object]:
    """`df = pd.concat([df, new_rows])`: rebinding to a new frame."""
    df = pd.DataFrame([trade(0)])
    async for i in aiter_checkpointed(range(1, 9)):
        batch = pd.DataFrame([trade(i), trade(i + 100)])
        record(log, f"batch:{i}")
        df = pd.concat([df, batch], ignore_index=True)
    summary = df.groupby("ticker")["qty"].sum()
    return {"rows": json.loads(df.to_json(orient="records")), "qty": summary.to_dict()}
