"""The memory and SQLite tests run where redis-py is not installed: only a
test that uses Redis imports it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent

# As if the redis extra were not installed: every `import redis` fails.
_WITHOUT_REDIS = (
    "import sys\nsys.modules['redis'] = None\nimport pytest\nsys.exit(pytest.main(sys.argv[1:]))\n"
)


class TestWithoutRedis:
    """The store contract of the local stores, and open_store, pass without redis."""

    def test_local_store_tests_pass(self, tmp_path: Path) -> None:
        selected = [
            f"{TESTS / 'test_store_contract.py'}::TestMemoryStore",
            f"{TESTS / 'test_store_contract.py'}::TestSQLiteStore",
            str(TESTS / "test_open_store.py"),
        ]
        run = subprocess.run(
            [sys.executable, "-c", _WITHOUT_REDIS, "-q", "-p", "no:cacheprovider",
             "--basetemp", str(tmp_path / "base"), *selected],
            check=False,
            capture_output=True,
            text=True,
            cwd=TESTS.parent,
            timeout=110,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        passed = re.search(r"(\d+) passed", run.stdout)
        assert passed is not None, run.stdout[-3000:]
        assert int(passed.group(1)) > 100
        assert "error" not in run.stdout.splitlines()[-1]

    def test_redis_is_really_missing_there(self) -> None:
        """The trick above does make redis unimportable."""
        probe = _WITHOUT_REDIS.replace("import pytest\nsys.exit(pytest.main(sys.argv[1:]))\n", "")
        probe += "try:\n    import redis\nexcept ImportError:\n    print('missing')\n"
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout
        assert out == "missing\n"
