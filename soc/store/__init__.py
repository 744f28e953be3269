"""The store: a contract (`base`) and its implementations, one module each."""

from soc.store.base import Bucket, Kind, Page, Query, QueryError, Scope, Store, WriteResult

__all__ = ["Bucket", "Kind", "Page", "Query", "QueryError", "Scope", "Store", "WriteResult"]
