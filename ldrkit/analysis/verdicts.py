"""The verdicts the book prints, in one place: the status vocabulary, how a chapter's verdict sentence is read as a
status, how the statuses of a claim's parts combine (a claim is never stronger than the evidence of its weakest
measured part), and the one wording of a difference against its standard error."""
from __future__ import annotations

REPRODUCED = "reproduced"
PARTLY = "partly"
NOT_REPRODUCED = "not reproduced"
NOT_DISCRIMINATING = "measured, not discriminating"
NOT_COMPUTED = "not computed on this page"
NOT_ATTEMPTED = "not attempted"
OUR_TEST = "our test (not a claim of the paper)"
STATUSES = (REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_DISCRIMINATING, NOT_COMPUTED, NOT_ATTEMPTED, OUR_TEST)

# A chapter's verdict sentence starts with its status ("reproduced: ...", "partly ...", "not reached ...").
PREFIXES = (("partly", PARTLY), ("reproduced", REPRODUCED), ("escaped", REPRODUCED), ("supported", REPRODUCED),
            ("confirmed", REPRODUCED), ("not", NOT_REPRODUCED), ("did not", NOT_REPRODUCED),
            ("stayed", NOT_REPRODUCED), ("cannot", NOT_COMPUTED))


def status_of(verdict: str) -> str:
    """A chapter verdict's status from its first words; an unreadable sentence is an error, never a guess."""
    text = verdict.strip().lower()
    for prefix, status in PREFIXES:
        if text.startswith(prefix):
            return status
    raise ValueError(f"cannot read a status from the verdict {verdict!r}")


def combine(parts: list[tuple[str, str]]) -> str:
    """The status of a claim made of (part, status) pairs.

    Precedence, so that a verdict can come out negative: reproduced only when every measured part is;
    a part that is not reproduced makes the claim "not reproduced" unless another part is fully reproduced (then
    "partly"); otherwise "partly" when a part is partly or reproduced; "measured, not discriminating" only when
    every measured part is. Parts not computed on this page count only when nothing else was measured.
    """
    statuses = [s for _, s in parts if s != NOT_COMPUTED] or [s for _, s in parts]
    if all(s == REPRODUCED for s in statuses):
        return REPRODUCED
    if NOT_REPRODUCED in statuses:
        return PARTLY if REPRODUCED in statuses else NOT_REPRODUCED
    if any(s in (REPRODUCED, PARTLY) for s in statuses):
        return PARTLY
    for status in (NOT_DISCRIMINATING, NOT_COMPUTED, OUR_TEST, NOT_ATTEMPTED):
        if status in statuses:
            return status
    raise ValueError(f"unknown statuses {statuses}")


def verdict_text(parts: list[tuple[str, str]]) -> str:
    """"status (part: status; ...)", or the bare status for a claim of one part."""
    status = combine(parts)
    if len(parts) == 1:
        return status
    return f"{status} (" + "; ".join(f"{label}: {s}" for label, s in parts) + ")"


def sign_verdict(diff: float, se: float, below: str, above: str, same: str = "no difference",
                 sigmas: float = 2.0) -> str:
    """`below` / `above` when `diff` lies more than `sigmas` standard errors `se` below / above 0, else `same`
    "(within N s.e.)": the one wording of every change and contrast the chapters state."""
    if diff < -sigmas * se:
        return below
    if diff > sigmas * se:
        return above
    return f"{same} (within {sigmas:g} s.e.)"
