"""Retraining policies a backtest compares, side by side, on the same steps.

- ``never``: the first model only;
- ``every:N``: retrain after every N-th step; the evaluation gate decides whether the candidate serves;
- ``drift``: retrain when the drift check's verdict says so (the configured trigger, cooldown and gate);
- ``always``: retrain after every step and promote every candidate (no gate).

A policy with nothing serving (the first model did not pass the floors) retrains at every step, except
``never``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipelines.backtest.errors import BacktestError

PolicyKind = Literal["never", "every", "drift", "always"]
DEFAULT_POLICIES = "never,every:3,drift,always"
EXPECTED = "a comma-separated list of never, every:N (N >= 1), drift, always"


@dataclass(frozen=True)
class Policy:
    """One retraining policy."""

    kind: PolicyKind
    every: int = 1

    @property
    def name(self) -> str:
        """``never``, ``every:3``, ``drift`` or ``always``."""
        return f"every:{self.every}" if self.kind == "every" else self.kind

    @property
    def gated(self) -> bool:
        """Whether a candidate must pass the evaluation gate to serve."""
        return self.kind != "always"

    @property
    def checks_drift(self) -> bool:
        """Whether the policy reads the drift check's verdict (and so pays for the check)."""
        return self.kind == "drift"

    def wants_retrain(self, step: int, drift_verdict: bool | None, serving: bool) -> tuple[bool, str]:
        """Whether to retrain at the end of ``step``, and why (or why not)."""
        if self.kind == "never":
            return False, "never: the first model only"
        if not serving:
            return True, "no model serving yet"
        if self.kind == "always":
            return True, "always: after every step"
        if self.kind == "every":
            due = step % self.every == 0
            return due, f"every {self.every} steps: {'due' if due else 'not due'} after step {step}"
        if drift_verdict is None:
            return False, "drift: no verdict for this step"
        return drift_verdict, f"drift: the verdict says {'retrain' if drift_verdict else 'no retrain'}"


def parse_policy(text: str) -> Policy:
    """One policy from its name.

    Raises:
        BacktestError: an unknown name or a bad N.
    """
    name = text.strip()
    if name in ("never", "drift", "always"):
        return Policy(name)  # type: ignore[arg-type]
    kind, sep, count = name.partition(":")
    if kind == "every" and sep and count.isdigit() and int(count) >= 1:
        return Policy("every", int(count))
    raise BacktestError(f"policy {text!r}: expected {EXPECTED}")


def parse_policies(text: str) -> tuple[Policy, ...]:
    """The policies of ``--policies``, in the order given.

    Raises:
        BacktestError: an empty list, an unknown name or a policy given twice.
    """
    policies = tuple(parse_policy(part) for part in text.split(",") if part.strip())
    if not policies:
        raise BacktestError(f"--policies {text!r}: expected {EXPECTED}")
    names = [p.name for p in policies]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise BacktestError(f"--policies {text!r} names {repeated} more than once; expected each once")
    return policies
