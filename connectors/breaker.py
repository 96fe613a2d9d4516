"""A circuit breaker per vendor account, its state in Redis and shared by every process.

    ticket = breaker.enter()          # raises CircuitOpen(retry_after_s) while open
    ... call the vendor ...
    breaker.record(ticket, ok=True)   # or ok=False for a 5xx, a timeout, a garbled answer

States: **closed** (calls go through) → **open** after `failure_threshold` *consecutive* failures
(every call fails fast with `CircuitOpen`, `retry_after_s` = time until the next probe) → after
`open_interval_s`, **half-open**: exactly one caller across all processes gets the probe (the state
change is one atomic script) → its success closes the breaker, its failure opens it again. An outage
costs one probe per interval, not a thousand timeouts; the events that need the vendor wait in the
database (`available_at`) and are not dead-lettered by it.

Why consecutive failures rather than a failure ratio in a window: an outage makes every call fail, and
a count opens on it as fast as a ratio does with one integer of state and no minimum volume to tune;
scattered failures among successes are what in-process retries are for, so they should not open it.
A failure is what says the vendor is down: a transport error, a timeout, a 5xx/408 or a 2xx that does
not parse. A 4xx or a 429 is an answer from a vendor that is up, and counts as a success.

The probe holds a lease of `probe_lease_s`: if its process dies before it reports, the next caller
after the lease becomes the probe. Reports from calls that began before the breaker opened are ignored
while it is open; only the probe's report (matched by its token) moves it out of open or half-open.
Clock: Redis `TIME` by default, `clock=` in tests (see connectors.budget).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import redis

from connectors import metrics
from connectors.keys import breaker_key
from schemas.errors import CircuitOpen


class State(StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


GAUGE = {State.CLOSED: 0, State.HALF_OPEN: 1, State.OPEN: 2}


@dataclass(frozen=True)
class Ticket:
    """Permission for one call; `probe` is set for the one call that tests an open breaker."""

    state: State
    probe: str | None = None


_SCRIPT = """
local key, op, token = KEYS[1], ARGV[1], ARGV[6]
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local threshold, interval, lease = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local state = redis.call('HGET', key, 'state') or 'closed'
local function open()
  redis.call('HSET', key, 'state', 'open', 'next_probe_at', string.format('%.6f', now + interval))
  redis.call('HDEL', key, 'failures', 'probe', 'probe_until')
  redis.call('EXPIRE', key, math.ceil(interval + lease) + 86400)
  return {'open', string.format('%.6f', interval)}
end
if op == 'enter' then
  if state == 'open' then
    local due = tonumber(redis.call('HGET', key, 'next_probe_at'))
    if now < due then return {'open', string.format('%.6f', due - now)} end
  elseif state == 'half_open' then
    local due = tonumber(redis.call('HGET', key, 'probe_until'))
    if now < due then return {'half_open', string.format('%.6f', due - now)} end
  else
    return {'closed', '0'}
  end
  redis.call('HSET', key, 'state', 'half_open', 'probe', token,
             'probe_until', string.format('%.6f', now + lease))
  return {'probe', '0'}
end
local is_probe = token ~= '' and redis.call('HGET', key, 'probe') == token
if op == 'release' then
  -- the probe never reached the vendor (its budget ran out): the next caller probes instead
  if is_probe then
    redis.call('HSET', key, 'state', 'open', 'next_probe_at', string.format('%.6f', now))
    redis.call('HDEL', key, 'probe', 'probe_until')
    return {'open', '0'}
  end
  return {state, '0'}
end
if op == 'success' then
  if state == 'closed' or is_probe then
    redis.call('DEL', key)
    return {'closed', '0'}
  end
  return {state, '0'}
end
-- failure
if is_probe then return open() end
if state ~= 'closed' then return {state, '0'} end
local failures = redis.call('HINCRBY', key, 'failures', 1)
if failures >= threshold then return open() end
redis.call('EXPIRE', key, 86400)
return {'closed', '0'}
"""


class Breaker:
    """The circuit breaker of one vendor account."""

    def __init__(
        self,
        client: redis.Redis,
        vendor: str,
        account: str,
        *,
        failure_threshold: int = 5,
        open_interval_s: float = 30.0,
        probe_lease_s: float = 60.0,
        clock: Callable[[], float] | None = None,
        token: Callable[[], str] = lambda: secrets.token_hex(8),
    ) -> None:
        if failure_threshold < 1 or open_interval_s <= 0 or probe_lease_s <= 0:
            raise ValueError("breaker needs failure_threshold >= 1 and positive intervals")
        self.vendor, self.account = vendor, account
        self.key = breaker_key(vendor, account)
        self.settings = (failure_threshold, open_interval_s, probe_lease_s)
        self._clock, self._token = clock, token
        self._script = client.register_script(_SCRIPT)

    def _run(self, op: str, token: str = "") -> tuple[str, float]:
        now = "" if self._clock is None else repr(self._clock())
        raw_state, raw_wait = self._script(keys=[self.key], args=[op, now, *self.settings, token])
        state = raw_state.decode() if isinstance(raw_state, bytes) else str(raw_state)
        shown = State.HALF_OPEN if state == "probe" else State(state)
        metrics.BREAKER_STATE.labels(self.vendor, self.account).set(GAUGE[shown])
        return state, float(raw_wait)

    def enter(self) -> Ticket:
        """A ticket for one call, or CircuitOpen with the seconds until a probe may go."""
        token = self._token()
        state, wait_s = self._run("enter", token)
        if state == "probe":
            return Ticket(State.HALF_OPEN, probe=token)
        if state == State.CLOSED:
            return Ticket(State.CLOSED)
        message = f"{self.vendor}/{self.account}: circuit {state}, next probe in {wait_s:.1f}s"
        raise CircuitOpen(message, retry_after_s=wait_s)

    def record(self, ticket: Ticket, *, ok: bool) -> State:
        """Report how the call went; returns the state after it."""
        state, _ = self._run("success" if ok else "failure", ticket.probe or "")
        return State(state)

    def release(self, ticket: Ticket) -> None:
        """The call never reached the vendor: a probe hands its turn to the next caller at once."""
        if ticket.probe:
            self._run("release", ticket.probe)
