"""One rate budget per vendor account, shared by every process and machine (Redis, one Lua script).

    budget = Budget(redis, "zendesk", "support", limits_for("zendesk"))
    wait_s = budget.acquire(priority=Priority.BACKFILL, extra=("incremental",))   # 0.0: go now
    budget.settle(refund=requested - actual, remaining={"points": available})    # cost read back

**Algorithm: GCRA** (the generic cell rate algorithm, a token bucket written as one number). Each
limit keeps its *theoretical arrival time* (TAT); a debit of `c` units moves it `c / rate` seconds
ahead, and a debit fits while the TAT stays within `burst / rate` seconds of now. Why GCRA:
- one number per limit, so checking every limit of a call and debiting all of them only when all
  admit is one atomic script of a GET and a SET per limit; an idle account's keys simply expire;
- "how long until this fits" is a subtraction, exact, and is what `acquire()` returns;
- cost-based debits, refunds and corrections are moves of the TAT: Shopify's cost points (debit the
  requested cost, refund what was not used, apply `throttleStatus.currentlyAvailable`) need nothing else.
A classic token bucket stores two numbers and refills on each read; a sliding log stores one entry
per request (3,500 a minute for a Klaviyo XL endpoint).

**Fixed windows.** Klaviyo, Zendesk, Chatwoot (rack-attack) and GA4 count fixed windows whose edges
we do not know. GCRA with burst `b` and rate `r` admits at most `b + r·L − 1` units in any span `L`;
`Limit.window` picks `r` so that any span of `period + jitter_s` admits at most the vendor's count.
A request that reaches the vendor up to `jitter_s` later than we admitted it still fits its window.
The burst holds one unit more than the largest debit and the reserve (`CATCH_UP`): a caller that
wakes a little after its turn (sleep overshoot, a lost race with another process) spends it instead
of losing the slot; with a burst of one, every late wake-up is capacity lost for good.

**Priority.** Real-time work (event-driven fetches) may use a limit's whole burst; backfills only
`burst − reserve`. While backfills saturate a limit the reserve stays free, so a real-time call goes
at once; a window limit pays for its reserve with `reserve / count` of its steady rate.

**Clock.** By default the script reads Redis' own `TIME`: one clock for every machine, so a skewed
worker clock can neither overspend nor starve the budget (Redis ≥ 5 replicates script effects, which
TIME needs). Tests pass `clock=` and the script uses that instead.

`acquire()` never sleeps (nor does the script): it debits and returns 0, or debits nothing and returns
how long to wait. `wait()` is the caller's loop: it sleeps, or raises `Throttled(retry_after_s)` when
the wait would pass its bound, so the task waits in the database instead of in a worker.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import redis

from connectors import metrics
from connectors.keys import budget_key
from schemas.errors import ConfigError, PermanentError, Throttled

JITTER_S = 0.02  # how much later than admitted a request may reach the vendor and still fit its window
CATCH_UP = 1.0  # burst units a window limit keeps so late callers catch up (see the module docstring)
MIN_SLEEP_S = 0.001  # a wait is never shorter, so a contended loop cannot spin


class Priority(StrEnum):
    REALTIME = "realtime"  # event-driven fetches: the whole burst
    BACKFILL = "backfill"  # scheduled syncs and backfills: down to the reserve


class Unit(StrEnum):
    REQUESTS = "requests"  # every call debits 1
    COST = "cost"  # every call debits its cost (Shopify points, GA4 tokens)


@dataclass(frozen=True)
class Limit:
    """One GCRA limit: `rate_per_s` units a second on average, `burst` units at once, of which
    `reserve` only real-time work may use. An `optional` limit applies only to calls that name it."""

    name: str
    rate_per_s: float
    burst: float
    reserve: float = 0.0
    unit: Unit = Unit.REQUESTS
    optional: bool = False

    def __post_init__(self) -> None:
        if not (0 < self.rate_per_s < math.inf):
            raise ConfigError(f"limit {self.name}: rate_per_s must be a positive number")
        if not (1 <= self.burst < math.inf):
            raise ConfigError(f"limit {self.name}: burst must be at least 1")
        if not (0 <= self.reserve < self.burst):
            raise ConfigError(f"limit {self.name}: reserve must be at least 0 and below the burst")

    @property
    def interval_s(self) -> float:
        return 1.0 / self.rate_per_s

    @classmethod
    def window(
        cls,
        name: str,
        count: float,
        period_s: float,
        *,
        largest: float = 1.0,
        reserve: float = 0.0,
        unit: Unit = Unit.REQUESTS,
        optional: bool = False,
        jitter_s: float = JITTER_S,
    ) -> Limit:
        """A vendor's fixed window of `count` units per `period_s`, its edges unknown: any span of
        `period_s + jitter_s` admits at most `count`. `largest` is the biggest single debit."""
        if not (0 < period_s < math.inf) or jitter_s < 0 or count < largest + reserve:
            raise ConfigError(f"limit {name}: needs count >= largest + reserve and a positive period")
        burst = min(count, largest + reserve + CATCH_UP)
        rate = (count + 1 - burst) / (period_s + jitter_s)
        return cls(name, rate, burst, reserve, unit, optional)

    @classmethod
    def bucket(
        cls,
        name: str,
        capacity: float,
        restore_per_s: float,
        *,
        reserve: float = 0.0,
        unit: Unit = Unit.COST,
        optional: bool = False,
    ) -> Limit:
        """A vendor's leaky bucket (Shopify): GCRA is the same model, so the figures carry over."""
        return cls(name, restore_per_s, capacity, reserve, unit, optional)


# Default figures per vendor (../shared/vendors/apis.md), the smallest documented where plans differ;
# a source overrides any limit by name (`limits_for(vendor, overrides)`).
VENDOR_LIMITS: dict[str, tuple[Limit, ...]] = {
    # GraphQL cost points per app+shop: 1000 restoring 50/s is the smallest bucket seen (plans now
    # restore 100-2000/s); each answer's throttleStatus corrects ours. Legacy REST: 40, leaking 2/s.
    "shopify": (
        Limit.bucket("points", 1000, 50, reserve=100),
        Limit.bucket("rest", 40, 2, unit=Unit.REQUESTS, optional=True),
    ),
    # 25/s is Stripe's per-endpoint limit and its sandbox's global one: under every limit it documents.
    "stripe": (Limit.window("second", 25, 1.0, reserve=1),),
    # Team plan 200/min (the smallest); incremental exports have their own 10/min.
    "zendesk": (
        Limit.window("minute", 200, 60.0, reserve=10),
        Limit.window("incremental", 10, 60.0, optional=True),
    ),
    # Tier M (10/s burst, 150/min steady); events (XL) and profiles (L) may be raised per source.
    "klaviyo": (Limit.window("second", 10, 1.0), Limit.window("minute", 150, 60.0, reserve=8)),
    # Self-hosted rack-attack default: 3000/min per IP.
    "chatwoot": (Limit.window("minute", 3000, 60.0, reserve=100),),
    # chat.postMessage: about one a second per channel; Tier 3 methods 50/min.
    "slack": (Limit.window("second", 1, 1.0), Limit.window("minute", 50, 60.0, reserve=5)),
    # Platform limit: 200 calls per user per rolling hour, the smallest pool documented.
    "meta": (Limit.window("hour", 200, 3600.0, reserve=10),),
    # Property tokens (a report costs ~10): 14,000 per project per hour, 200,000 per day.
    "ga4": (
        Limit.window("hour", 14_000, 3600.0, largest=100, unit=Unit.COST),
        Limit.window("day", 200_000, 86_400.0, largest=100, unit=Unit.COST),
    ),
}


def limits_for(vendor: str, overrides: Mapping[str, Limit] | None = None) -> tuple[Limit, ...]:
    """A vendor's default limits with a source's overrides (by name; a new name adds a limit)."""
    overrides = dict(overrides or {})
    if vendor not in VENDOR_LIMITS and not overrides:
        raise ConfigError(f"no default rate limits for vendor {vendor!r}: configure them for the source")
    defaults = VENDOR_LIMITS.get(vendor, ())
    merged = [overrides.pop(limit.name, limit) for limit in defaults]
    return (*merged, *overrides.values())


_SCRIPT = """
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function tat_of(key)
  local tat = tonumber(redis.call('GET', key))
  if not tat or tat < now then tat = now end
  return tat
end
local function up(seconds)  -- microseconds, rounded up: rounding never lets a call in early
  return string.format('%.6f', math.ceil(seconds * 1000000) / 1000000)
end
local function store(key, tat)
  if tat > now and ARGV[2] ~= '' then  -- Redis' clock: the key expires when it stops mattering
    redis.call('SET', key, up(tat), 'PX', math.ceil((tat - now) * 1000) + 1)
  elseif tat > now then  -- an injected clock (tests) is not the one Redis expires keys by
    redis.call('SET', key, up(tat))
  else
    redis.call('DEL', key)
  end
end
if ARGV[1] == 'acquire' then
  -- per key: interval (s per unit), tolerance (s), debit (units)
  local wait, tats = 0, {}
  for i, key in ipairs(KEYS) do
    local at = 2 + (i - 1) * 3
    local interval, tolerance = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
    tats[i] = tat_of(key) + tonumber(ARGV[at + 3]) * interval
    wait = math.max(wait, tats[i] - tolerance - now)
  end
  if wait > 0.000001 then return {0, up(wait)} end  -- within the stored precision is now
  for i, key in ipairs(KEYS) do store(key, tats[i]) end
  return {1, '0'}
end
-- settle, per key: interval (s per unit), burst (units), refund (units, may be < 0), remaining or ''
for i, key in ipairs(KEYS) do
  local at = 2 + (i - 1) * 4
  local interval, burst = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
  local tat = tat_of(key) - tonumber(ARGV[at + 3]) * interval
  local remaining = tonumber(ARGV[at + 4])
  if remaining then
    -- the vendor's view only ever tightens ours: calls we admitted may not have reached it yet
    tat = math.max(tat, now + (burst - remaining) * interval)
  end
  store(key, tat)
end
return {1, '0'}
"""


class Budget:
    """The shared rate budget of one vendor account: every limit that applies to a call, at once."""

    def __init__(
        self,
        client: redis.Redis,
        vendor: str,
        account: str,
        limits: Sequence[Limit],
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        names = [limit.name for limit in limits]
        if len(set(names)) != len(names):
            raise ConfigError(f"{vendor}/{account}: limit names repeat: {', '.join(names)}")
        self.vendor, self.account = vendor, account
        self.limits = {limit.name: limit for limit in limits}
        self._clock = clock
        self._script = client.register_script(_SCRIPT)

    def _active(self, extra: Sequence[str]) -> list[Limit]:
        unknown = set(extra) - set(self.limits)
        if unknown:
            raise ValueError(f"{self.vendor}/{self.account} has no limit named {', '.join(sorted(unknown))}")
        return [lim for lim in self.limits.values() if not lim.optional or lim.name in extra]

    def _now(self) -> str:
        return "" if self._clock is None else repr(self._clock())

    def acquire(
        self, cost: float = 1.0, priority: Priority = Priority.REALTIME, extra: Sequence[str] = ()
    ) -> float:
        """Debit every applicable limit and return 0, or debit nothing and return seconds to wait."""
        if not (0 < cost < math.inf):
            raise ValueError(f"cost must be a positive number, got {cost!r}")
        active = self._active(extra)
        keys: list[str] = []
        args: list[str | float] = ["acquire", self._now()]
        for lim in active:
            debit = cost if lim.unit is Unit.COST else 1.0
            usable = lim.burst if priority is Priority.REALTIME else lim.burst - lim.reserve
            if debit > usable:
                raise PermanentError(
                    f"{self.vendor}/{self.account}: a debit of {debit:g} never fits limit {lim.name} "
                    f"({usable:g} usable by {priority})"
                )
            keys.append(budget_key(self.vendor, self.account, lim.name))
            args += [lim.interval_s, usable * lim.interval_s, debit]
        if not keys:
            return 0.0
        admitted, wait = self._script(keys=keys, args=args)
        return 0.0 if admitted else max(float(wait), 1e-6)

    def settle(
        self, *, refund: float = 0.0, remaining: Mapping[str, float] | None = None, extra: Sequence[str] = ()
    ) -> None:
        """After the answer: give back `refund` cost units (negative: take more) on the cost limits,
        and apply what the vendor says `remaining` of a limit is, when it says less than we think."""
        remaining = remaining or {}
        keys: list[str] = []
        args: list[str | float] = ["settle", self._now()]
        for lim in self._active(extra):
            back = refund if lim.unit is Unit.COST else 0.0
            left = remaining.get(lim.name)
            if back == 0 and left is None:
                continue
            keys.append(budget_key(self.vendor, self.account, lim.name))
            args += [lim.interval_s, lim.burst, back, "" if left is None else left]
        if keys:
            self._script(keys=keys, args=args)

    def wait(
        self,
        cost: float = 1.0,
        priority: Priority = Priority.REALTIME,
        extra: Sequence[str] = (),
        *,
        max_wait_s: float,
        sleep: Callable[[float], None],
    ) -> float:
        """Acquire, sleeping as told; return the seconds slept. A wait that would take the total past
        `max_wait_s` raises Throttled instead, so the task waits in the database, not in a worker."""
        slept = 0.0
        while (wait_s := self.acquire(cost, priority, extra)) > 0:
            wait_s = max(wait_s, MIN_SLEEP_S)
            if slept + wait_s > max_wait_s:
                raise Throttled(
                    f"{self.vendor}/{self.account}: rate budget exhausted for {wait_s:.2f}s",
                    retry_after_s=wait_s,
                )
            sleep(wait_s)
            slept += wait_s
            metrics.BUDGET_WAIT.labels(self.vendor, self.account, priority.value).inc(wait_s)
        return slept
