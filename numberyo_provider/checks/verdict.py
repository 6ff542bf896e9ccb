"""Did a check run do its job? The one sentence ``numberyo check`` prints and the operator raises.

A run that finished but left numbers failed (the server refused them, nothing answered) or whose
outcome stayed unknown (sent, no answer: maybe charged) must not look like success. The sentence
says how many, the first error, and whether money was spent, so whoever reads one line of a cron
mail or a task log knows if a rerun costs anything (it does not: nothing created is paid again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from numberyo_provider.errors import NumbersFailedError

if TYPE_CHECKING:
    from numberyo_provider.checks.options import CheckSummary


def money_spent(summary: CheckSummary, *, loaded: bool | None) -> str:
    """Whether the run spent money, for the end of a failure line.

    ``loaded``: True if the created checks were loaded into the warehouse, False if the load
    failed, None if this step only landed them (a shard whose load task comes later).
    """
    paid = summary.created + summary.reconciled
    if paid == 0 and not summary.credits_spent:
        known = "no check known to be created"
        text = known if summary.outcome_unknown else "no credits spent, no check created"
    else:
        if loaded is None:
            where = "created and landed (the load step loads them)"
        elif loaded or paid == 0:
            where = "created and loaded"
        else:
            where = "created but NOT loaded (rerun to load them)"
        text = f"{paid:,} check(s) {where}, credits spent {summary.credits_spent}"
    if summary.outcome_unknown:
        text += (
            f"; {summary.outcome_unknown:,} request(s) may have been charged (no answer; the "
            "next run looks them up before sending anything)"
        )
    return text


def failed_numbers(
    summary: CheckSummary, *, loaded: bool | None, retry: str = "rerun the same command"
) -> NumbersFailedError | None:
    """The error to report for a finished run whose numbers failed, or None if none did.

    ``retry`` says how to try again (the CLI: rerun the command; Airflow: clear the task).
    """
    failed, unknown = summary.failed, summary.outcome_unknown
    if not failed and not unknown:
        return None
    counts = [f"{failed:,} number(s) failed"] if failed else []
    if unknown:
        counts.append(f"{unknown:,} outcome unknown")
    first = " ".join((summary.first_error or "see check_requests.error").split())
    message = (
        f"{' and '.join(counts)} (first error: {first}); {money_spent(summary, loaded=loaded)}. "
        f"Fix the cause and {retry}: nothing created is paid again."
    )
    nothing = summary.created + summary.reconciled == 0
    return NumbersFailedError(message, failed=failed, unknown=unknown, nothing_checked=nothing)


__all__ = ["NumbersFailedError", "failed_numbers", "money_spent"]
