"""A health score per source, 0 (broken) to 100 (healthy), from one window of its recent history.

Each judged component is a goodness g between 0 and 1:

    success      s = (ok + P) / (ok + failed + P)          P = prior_successes (4): a new source's
                 g = clamp((s − 0.5) / 0.5)                first failure does not sink it
    latency      g = min(1, target / p95 processing time)  judged when a p95 is known
    dead letters d = dead / (events + P)
                 g = clamp(1 − d / max_dead_share)         max_dead_share 0.2: a fifth dead → 0
    signatures   r = refused / (refused + events + P)      deliveries refused as unverifiable (a
                 g = clamp(1 − r / max_refused_share)      wrong secret): max_refused_share 0.5
    silence      g = fresh(now − last event, max_silence)  judged when max_silence_s is set
    sync         g = fresh(now − last sync, 2 × interval)  judged when a sync interval and time are given

    fresh(age, allowed) = 1 up to `allowed`, falling linearly to 0 at 3 × `allowed`

    score = 100 × Π g_i ^ (w_i / Σ w_judged)    weights: success 3, dead letters 3, signatures 3,
                                                latency 2, silence 2, sync 1

A weighted geometric mean: one broken component (g = 0) makes the score 0 whatever the others say,
while small imperfections cost little (p95 at twice its target with all else perfect: 88). With
nothing to judge (no events, no expectations) the score is None: unknown, not healthy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ScorePolicy:
    latency_target_s: float = 5.0  # p95 processing time that still counts as perfect
    max_silence_s: float | None = None  # longest quiet spell that is normal; None: silence not judged
    sync_interval_s: float | None = None  # how often the source's sync runs; None: no sync
    prior_successes: float = 4.0
    max_dead_share: float = 0.2
    max_refused_share: float = 0.5
    weights: tuple[tuple[str, float], ...] = (
        ("success", 3.0),
        ("dead_letters", 3.0),
        ("signatures", 3.0),
        ("latency", 2.0),
        ("silence", 2.0),
        ("sync", 1.0),
    )


@dataclass(frozen=True)
class SourceWindow:
    """What one source did over the scoring window (counts are increases within the window)."""

    attempts_ok: float = 0
    attempts_failed: float = 0  # retried or dead
    events: float = 0  # received
    dead_letters: float = 0
    refused: float = 0  # deliveries refused because their signature did not verify
    p95_processing_s: float | None = None
    last_event_at: datetime | None = None
    last_sync_at: datetime | None = None


@dataclass(frozen=True)
class Health:
    score: int | None
    components: dict[str, float]  # only the judged ones
    worst: str | None  # the component pulling the score down most


def clamp(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def fresh(age_s: float, allowed_s: float) -> float:
    """1 while `age_s` ≤ `allowed_s`, then linearly down to 0 at three times `allowed_s`."""
    if age_s <= allowed_s:
        return 1.0
    return clamp(1.0 - (age_s - allowed_s) / (2.0 * allowed_s))


def components(window: SourceWindow, now: datetime, policy: ScorePolicy) -> dict[str, float]:
    """The goodness of every component that can be judged from `window`."""
    judged: dict[str, float] = {}
    prior = policy.prior_successes
    attempts = window.attempts_ok + window.attempts_failed
    if attempts > 0:
        judged["success"] = clamp(((window.attempts_ok + prior) / (attempts + prior) - 0.5) / 0.5)
    if window.events > 0 or window.dead_letters > 0:
        share = window.dead_letters / (window.events + prior)
        judged["dead_letters"] = clamp(1.0 - share / policy.max_dead_share)
    if window.refused > 0:
        share = window.refused / (window.refused + window.events + prior)
        judged["signatures"] = clamp(1.0 - share / policy.max_refused_share)
    if window.p95_processing_s is not None:
        p95 = window.p95_processing_s
        judged["latency"] = 1.0 if p95 <= 0 else min(1.0, policy.latency_target_s / p95)
    if policy.max_silence_s is not None and window.last_event_at is not None:
        judged["silence"] = fresh((now - window.last_event_at).total_seconds(), policy.max_silence_s)
    if policy.sync_interval_s is not None and window.last_sync_at is not None:
        age = (now - window.last_sync_at).total_seconds()
        judged["sync"] = fresh(age, 2.0 * policy.sync_interval_s)
    return judged


def health_score(window: SourceWindow, now: datetime, policy: ScorePolicy | None = None) -> Health:
    """Score one source (see the module docstring for the formula)."""
    policy = policy or ScorePolicy()
    judged = components(window, now, policy)
    if not judged:
        return Health(score=None, components={}, worst=None)
    weights = {name: weight for name, weight in policy.weights if name in judged}
    total = sum(weights.values())
    if min(judged.values()) == 0.0:
        value = 0.0
    else:
        value = math.exp(sum(weights[name] / total * math.log(g) for name, g in judged.items()))
    worst = min(judged, key=lambda name: (judged[name], -weights[name]))
    return Health(score=round(100 * value), components=judged, worst=worst if judged[worst] < 1 else None)
