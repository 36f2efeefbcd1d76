"""Stored results retracted after the fact: made by code since fixed under an unchanged config,
so their config hash cannot tell. Each is named by its content hash (store/files.py `seal`) and
is never reused: a run recomputes it, its dry run says why. A fix made from now on bumps its
plugin's `revision` instead (protocol/contracts.py), which retracts every result, ours or a
user's; this list holds only what predates that rule."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Retraction:
    """Results made before a fix: why they no longer count, and their content hashes."""

    reason: str
    content_hashes: frozenset[str]


#: square-l2 left up to 35% of its points 1.2e-7 outside the L2 ball until 2026-12-06 (commit
#: 377a003); the runner's projection then moved them after the attack scored them, so a point
#: found at the boundary could lose its misclassification. Every square-l2 cell committed before
#: that fix: the standard grid's none, ibp, alp, pgd-at and randomization, and seven quick cells.
SQUARE_L2_PROJECTION = Retraction(
    reason="made before square-l2's in-ball fix of 2026-12-06",
    content_hashes=frozenset(
        {
            # standard: none, ibp, alp, pgd-at, randomization
            "cf6d299eec60187fde448afe839bbaacf83778b11fe4930b43f608b581d99412",
            "870b01d900bd4892c911624f5de16829570e85332f37ce12a78a209fa217826e",
            "cd4252cec4269ccbb4e5faefe165a3384faf1135a70ceeefe9b09d0206c4c388",
            "00d5f9630908ab2b2f9cbb6d234a7635747f82313b3fcea45b55529be69d1d63",
            "06d797d36da868c57b6748a4d0d26e1f31d21055daa7c0b3afd37a81ef58d54a",
            # quick: abs-binary, abs, alp, ibp, none, pgd-at, randomization
            "3b362dcbb5a1ef2da2516622fcc7b3506fe57c52c58996d44d20d52c9abe117a",
            "238431553dbc8a06839c971ddb9c2db60acb990c8d233c795e15376752646502",
            "b5d97787e71a2872f88df2c5868fbbfddd4a7970b505cabb9f964be2956fe05a",
            "6883306f7b9c5504ec1d0356e4637de118eab7fdff42a2951c1d4c66181f53c7",
            "7af6daf63ac11f5f1159fc888d58fa8ac447c4e3eada3bf40b1035013579ba67",
            "aa672e2a60e91cac93d39a4ec82fe8299abae21f17aa54c5ebb433fdd0beaf34",
            "ce74fb36ba3f125457590baa1641668eb17139b5e49a1cbd24cc0d1830b73f1a",
        }
    ),
)

RETRACTIONS: tuple[Retraction, ...] = (SQUARE_L2_PROJECTION,)


def retracted(content_hash: str | None) -> str | None:
    """Why the result sealed with `content_hash` no longer counts, or None."""
    for retraction in RETRACTIONS:
        if content_hash in retraction.content_hashes:
            return f"retracted: {retraction.reason}"
    return None
