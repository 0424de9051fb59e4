"""leases: named, expiring claims that let one process at a time do a shared job.

A lease is one document ``{_id: name, holder, until}``. Claiming it is one
conditional upsert: it matches when the lease is free (lapsed) or already
ours; when another process holds it, the upsert collides with the existing
``_id`` and the claim fails. A holder that dies simply lets it lapse.
"""

from __future__ import annotations

from datetime import timedelta

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from . import Database, translate_db_errors, utcnow


class LeaseStore:
    """Claims, renews and releases named leases."""

    def __init__(self, database: Database) -> None:
        self._leases = database.db.leases

    def claim(self, name: str, holder: str, seconds: float) -> bool:
        """Take or renew the lease `name` for `seconds`; False while another holder has it."""
        now = utcnow()
        try:
            with translate_db_errors():
                doc = self._leases.find_one_and_update(
                    {"_id": name, "$or": [{"until": {"$lt": now}}, {"holder": holder}]},
                    {"$set": {"holder": holder, "until": now + timedelta(seconds=seconds)}},
                    upsert=True, return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:
            return False  # held by someone else: the upsert met their document
        return doc is not None and doc.get("holder") == holder

    def release(self, name: str, holder: str) -> None:
        """Give the lease up now, if we still hold it."""
        with translate_db_errors():
            self._leases.delete_one({"_id": name, "holder": holder})
