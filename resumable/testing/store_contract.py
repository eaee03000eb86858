"""The Store conformance suite, for stores written outside the project.

A store ships only if it passes this class; the memory, SQLite and Redis
stores run through exactly it. Subclass it in a test module and give it a
`store` fixture that yields a fresh, empty store and closes it after::

    import pytest
    from resumable.testing.store_contract import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture(name="store")
        async def _store(self, tmp_path):
            store = MyStore(tmp_path / "data", max_record_bytes=4096)
            yield store
            await store.close()

The tests are coroutines run by pytest-asyncio (``pip install
'resumable-runtime[testing]'``): the class carries the ``asyncio`` mark, so
they run in its strict mode too, where the fixture is declared with
``@pytest_asyncio.fixture`` instead (in ``asyncio_mode = "auto"``, a plain
``@pytest.fixture`` does). Each test runs on its own event loop and store.

The size cap tests write records one byte over the store's cap, which they
read from its ``max_record_bytes`` attribute: a store without one overrides
the `record_limit` fixture. A small cap (a few KiB) keeps them fast. Lease
expiry is real time: a few tests sleep for tens of milliseconds.
"""

from __future__ import annotations

import pytest

from resumable.stores.base import Store
from resumable.testing._contract_leases import LeaseContract
from resumable.testing._contract_listing import ListingContract
from resumable.testing._contract_records import RecordContract
from resumable.testing._contract_support import MakeRecord, make_record

__all__ = ["MakeRecord", "StoreContract", "make_record"]


class StoreContract(LeaseContract, RecordContract, ListingContract):
    """**Protocol:** the `Store` contract as tests; subclass it and provide a
    `store` fixture (see the module's docstring)."""

    pytestmark = pytest.mark.asyncio

    @pytest.fixture(name="make_record")
    def _make_record(self) -> MakeRecord:
        """Builds plausible new execution records (`make_record`)."""
        return make_record

    @pytest.fixture(name="record_limit")
    def _record_limit(self, store: Store) -> int:
        """The store's record size cap, in bytes."""
        limit = getattr(store, "max_record_bytes", None)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            pytest.fail(
                f"StoreContract cannot find the record size cap of {type(store).__name__}: "
                f"its max_record_bytes is {limit!r}. HINT: give the store a "
                "max_record_bytes attribute, or override the record_limit fixture"
            )
        return limit
