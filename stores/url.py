"""Store URLs: parse them, and print them without their secrets.

SQLite URLs follow SQLAlchemy's convention, which most Python users know:
three slashes then the path, so the path is relative to the working directory
unless it starts with a slash itself.

* ``sqlite:///state.db``, ``sqlite:///.resumable/state.db``: relative.
* ``sqlite:////var/lib/app/state.db``: absolute (four slashes).
* ``sqlite://state.db``: relative as well (a forgiving reading of a host-like
  path).
* a bare path with no scheme (``foo/state.db``, ``/tmp/state.db``): SQLite.
* ``?synchronous=full`` (or ``normal``), ``?max_record_bytes=N``: options.

Each store reads its own options from a `StoreURL` (`from_url`), with the
methods here, so that every store refuses an unknown option or a bad value
with the same words: the redacted URL, the option, the value, and what it
expected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

__all__ = ["StoreURL", "parse_store_url", "redact_url", "sqlite_url"]

REDACTED = "***"

# Query parameters that carry credentials (redis-py accepts ?password=...).
_SECRET_QUERY = re.compile(
    r"(?P<lead>(?:^|[?&;])(?:password|passwd|pass|pwd|secret|token|auth)=)[^&;#]*",
    re.IGNORECASE,
)
# userinfo "user:password@" when urlsplit cannot parse the URL (e.g. a bad port).
_SECRET_USERINFO = re.compile(r"(?P<lead>://[^/@:]*:)[^/@]*(?=@)")
_N = TypeVar("_N", int, float)
_C = TypeVar("_C", bound=str)


@dataclass(frozen=True, slots=True)
class StoreURL:
    """A store URL taken apart. `path` is the SQLite file (else empty)."""

    scheme: str
    url: str
    path: str = ""
    options: Mapping[str, str] = field(default_factory=dict)

    def refuse_unknown(self, known: Collection[str]) -> None:
        """Raise ValueError naming every option not in `known`."""
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            names = ", ".join(sorted(known)) if known else "none"
            raise ValueError(
                f"store URL {redact_url(self.url)!r}: unknown option(s) {', '.join(unknown)} "
                f"(known: {names})"
            )

    def number(self, name: str, kind: type[_N], default: _N) -> _N:
        """Option `name` as an int or float (`kind`), `default` when absent."""
        if name not in self.options:
            return default
        text = self.options[name]
        try:
            return kind(text)
        except ValueError:
            raise ValueError(
                f"store URL {redact_url(self.url)!r}: {name}={text!r} is not a number"
            ) from None

    def choice(self, name: str, choices: Collection[_C], default: _C) -> _C:
        """Option `name`, one of `choices` (compared in lower case)."""
        if name not in self.options:
            return default
        text = self.options[name].lower()
        for choice in choices:
            if choice == text:
                return choice
        expected = " or ".join(repr(choice) for choice in choices)
        raise ValueError(
            f"store URL {redact_url(self.url)!r}: {name}={text!r}, expected {expected}"
        )

    def without(self, names: Collection[str]) -> str:
        """The URL as given, minus the query options in `names` (for a client
        library that would refuse the store's own options)."""
        parts = urlsplit(self.url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        return parts._replace(
            query=urlencode([(name, value) for name, value in query if name not in names])
        ).geturl()


def redact_url(url: str) -> str:
    """`url` with any password replaced by ``***``, safe to log or show."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" in the host: fall back to patterns
        return _SECRET_QUERY.sub(
            rf"\g<lead>{REDACTED}", _SECRET_USERINFO.sub(rf"\g<lead>{REDACTED}", url)
        )
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        if colon and password:
            netloc = f"{user}:{REDACTED}@{host}"
    query = _SECRET_QUERY.sub(rf"\g<lead>{REDACTED}", parts.query)
    if netloc == parts.netloc and query == parts.query:
        return url  # leave it byte for byte as given
    return parts._replace(netloc=netloc, query=query).geturl()


def sqlite_url(path: str | os.PathLike[str]) -> str:
    """The canonical URL of a SQLite file: ``sqlite:///`` + its absolute path.

    Percent-encoded where needed ("?", "#", "%", spaces...), so that
    `parse_store_url` gives back the same path.
    """
    return "sqlite:///" + quote(os.path.abspath(os.fspath(path)), safe="/")


def parse_store_url(url: str) -> StoreURL:
    """Split a store URL into scheme, SQLite path and query options.

    Raises ValueError (naming the redacted URL) when it has no usable shape;
    whether the scheme is supported is `open_store`'s decision.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"a store URL must be a non-empty string, got {url!r}")
    url = url.strip()
    if "://" not in url:
        # A bare path means SQLite (also catches Windows drive letters).
        return StoreURL("sqlite", url, os.path.expanduser(url))
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"cannot parse store URL {redact_url(url)!r}: {exc}") from None
    scheme = parts.scheme.lower()
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    if scheme != "sqlite":
        return StoreURL(scheme, url, "", options)
    # sqlite://dir/state.db: the "host" is the first part of a relative path.
    # sqlite:///x: SQLAlchemy's reading, drop the slash after the empty host
    # and keep the rest as written ("/abs/x" from four slashes, or "rel/x").
    path = unquote(parts.netloc + parts.path if parts.netloc else parts.path[1:])
    if not path:
        raise ValueError(
            f"store URL {redact_url(url)!r} names no SQLite file. HINT: "
            "sqlite:///relative/state.db or sqlite:////absolute/state.db"
        )
    return StoreURL("sqlite", url, os.path.expanduser(path), options)
