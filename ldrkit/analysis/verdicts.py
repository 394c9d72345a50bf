"""The wording of the verdicts the book prints, in one place."""
from __future__ import annotations


def sign_verdict(diff: float, se: float, below: str, above: str, same: str = "no difference",
                 sigmas: float = 2.0) -> str:
    """`below` / `above` when `diff` lies more than `sigmas` standard errors `se` below / above 0, else `same`
    "(within N s.e.)": the one wording of every change and contrast the chapters state."""
    if diff < -sigmas * se:
        return below
    if diff > sigmas * se:
        return above
    return f"{same} (within {sigmas:g} s.e.)"
