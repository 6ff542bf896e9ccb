"""The request ledger: a durable record of every paid POST, written before it is sent.

Money safety rests on one rule: a number is marked ``pending`` (committed) *before* its POST is
submitted, and its row is updated after the answer. A ``pending`` row therefore means "maybe sent":
after a crash, a read timeout or a kill, :mod:`numberyo_provider.checks.reconcile` resolves it
against the account's checks before the number may be sent again. Rows are never deleted.

Where the ledger lives (``docs/credits-and-idempotency.md``): a run lasts long and writes often,
while DuckDB allows one writer process per file, so holding the warehouse's write lock for a whole
run would block every reader (dashboards, dbt, the sync). The ledger is therefore its own database:

* warehouse on PostgreSQL: the same database, tables ``numberyo._ledger_requests`` and
  ``numberyo._ledger_rejected`` (server databases handle concurrent writers);
* warehouse on DuckDB: a SQLite file beside it, ``<warehouse file>.ledger.sqlite`` (WAL journal,
  ``synchronous=FULL`` so a commit survives a power cut, ``busy_timeout`` so parallel shard tasks
  queue instead of failing);
* anything else: pass ``ledger=`` a SQLite or PostgreSQL SQLAlchemy URL.

At load time the run's rows are copied into the warehouse tables ``check_requests`` and
``rejected_numbers`` (same columns, :mod:`numberyo_provider.schema`). The ledger stays the truth;
the warehouse copy is as of the last load.

Writes are batched (one transaction per batch of numbers) because throughput matters: marking 64
numbers ``pending`` costs one commit, not 64.

**Claims: at most one payer per number.** A request id is per run, so two runs (a cron overlap, an
Airflow retry beside a zombie of the first try, two shards whose queries overlap) would each have
their own row for one number. What stops them both paying is a second table, ``_ledger_claims``,
keyed by ``(check_type, phone_number)``: :meth:`Ledger.claim` inserts the claim (insert-if-absent,
the database's unique key is the compare-and-set), re-checks inside the same transaction that no
other row of the number is ``pending`` or freshly ``created``, and only then marks the number
``pending``. The claim names its owner (one per :class:`~numberyo_provider.checks.engine.Checker`)
and a lease; the owner renews the lease while it holds claims and releases a claim in the
transaction that records a definite outcome. A claim whose outcome stayed unknown is *kept* until
the owner reconciles it. Another process only takes a claim over once its lease expired (or its
owner is a dead process on this host) and then only through reconciliation
(:meth:`Ledger.acquire`), never by sending. Guarantees per backend are in
``docs/credits-and-idempotency.md``.

The modules: :mod:`.store` (the :class:`Ledger` and its transactions), :mod:`.records` (statuses,
rows, claims, outcomes), :mod:`.owners` (claim owners and whether they died), :mod:`.database`
(the default URL, the tables, SQLite's settings, deadlock retries). Import from this package.
"""

from numberyo_provider.checks.ledger.database import (
    CLAIMS_TABLE,
    REJECTED_TABLE,
    REQUESTS_TABLE,
    SQLITE_BUSY_TIMEOUT_MS,
    default_ledger_url,
    existing_ledger,
)
from numberyo_provider.checks.ledger.owners import new_owner, owner_is_dead, retire_owner
from numberyo_provider.checks.ledger.records import (
    CREATED,
    DEFAULT_CLAIM_LEASE,
    FAILED,
    NOT_CHECKED,
    PENDING,
    STATUSES,
    Claim,
    ClaimResult,
    LedgerRow,
    Outcome,
    request_id,
    utcnow,
)
from numberyo_provider.checks.ledger.store import EXPORT_BATCH_ROWS, Ledger

__all__ = [
    "CLAIMS_TABLE",
    "CREATED",
    "DEFAULT_CLAIM_LEASE",
    "EXPORT_BATCH_ROWS",
    "FAILED",
    "NOT_CHECKED",
    "PENDING",
    "REJECTED_TABLE",
    "REQUESTS_TABLE",
    "SQLITE_BUSY_TIMEOUT_MS",
    "STATUSES",
    "Claim",
    "ClaimResult",
    "Ledger",
    "LedgerRow",
    "Outcome",
    "default_ledger_url",
    "existing_ledger",
    "new_owner",
    "owner_is_dead",
    "request_id",
    "retire_owner",
    "utcnow",
]
