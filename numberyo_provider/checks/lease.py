"""The lease on a checker's claims: renewed while the checker runs, given up when it ends.

A claim in the ledger (:meth:`~numberyo_provider.checks.ledger.Ledger.claim`) holds a number for
one owner until its lease runs out. :class:`ClaimLease` renews every claim of its owner every
quarter lease from a thread, so a claim lapses only when the process stops renewing it (killed,
frozen), never while its POST may still go out; and a POST goes out only while at least half a
lease is left (:meth:`ClaimLease.allows_send`), so a frozen process that wakes after its claim
lapsed (and may have been taken over) sends nothing. At the end the claims whose outcome is known
are released; those still ``pending`` stay claimed until they are reconciled.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from numberyo_provider.checks.ledger import retire_owner

if TYPE_CHECKING:
    from numberyo_provider.api.client import NumberYoClient
    from numberyo_provider.checks.ledger import Ledger

log = logging.getLogger(__name__)

__all__ = ["ClaimLease"]


class ClaimLease:
    """The claims of ``owner`` in ``ledger``, kept alive for ``lease`` at a time. Not reusable."""

    def __init__(self, ledger: Ledger, owner: str, lease: timedelta) -> None:
        self.ledger = ledger
        self.owner = owner
        self.lease = lease
        #: monotonic time until which every claim of the owner is known to hold.
        self.valid_until = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, client: NumberYoClient) -> None:
        """Start renewing (warns when one of ``client``'s requests may outlast half a lease)."""
        lease = self.lease
        longest = getattr(client, "longest_request_seconds", None)
        if callable(longest) and longest() > lease.total_seconds() / 2:
            log.warning(
                "one request may take up to %.0f s with this client's timeout and retries, more "
                "than half the claim lease (%.0f s): raise claim_lease, or lower the timeout",
                longest(),
                lease.total_seconds(),
            )
        self.valid_until = time.monotonic() + lease.total_seconds()
        every = max(lease.total_seconds() / 4, 0.5)

        def beat() -> None:
            while not self._stop.wait(every):
                started = time.monotonic()
                try:
                    self.ledger.renew(self.owner, lease)
                except Exception as exc:  # the workers stop sending once the lease runs short
                    log.warning("could not renew this run's claims in the ledger: %s", exc)
                    continue
                self.valid_until = started + lease.total_seconds()

        self._thread = threading.Thread(target=beat, name="numberyo-claims", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing, release the claims whose outcome is known, retire the owner."""
        self._stop.set()
        if self._thread is None:
            retire_owner(self.owner)
            return
        self._thread.join()
        try:
            # Claims of requests whose outcome is known go; those still pending stay claimed
            # until they are reconciled (by this owner's next run, or a taker after the lease).
            self.ledger.release_settled(self.owner)
        except Exception as exc:
            log.warning("could not release this run's settled claims: %s", exc)
        retire_owner(self.owner)

    def allows_send(self) -> bool:
        """A POST goes out only while at least half a lease of the claim is left."""
        half = self.lease.total_seconds() / 2
        return time.monotonic() + half < self.valid_until
