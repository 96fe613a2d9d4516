"""Names and limits of the rules package, in one place."""

from schemas.retry import RetryPolicy

ACTIONS_GROUP = "hookyard.actions"  # entry-point group of action types
RULE_FILES = "*.toml"  # one rule per file, in the folder the sources file names (rules_dir)

TEMPLATE_MAX_CHARS = 4000  # a rendered template longer than this is cut …
CUT_MARKER = "…[cut]"  # … and ends with this marker (the marker counts in the limit)
TEMPLATE_MAX_POWER = 1024  # largest exponent `**` accepts in a template
TYPE_CACHE_MAX = 4096  # event types whose candidate rules are remembered before the cache starts over
GATE_KEY_MAX = 200  # a rendered throttle / debounce key longer than this is kept as its SHA-256
THROTTLE_MAX = 1000  # the largest `max` a throttle takes (the window keeps one time per firing)
ACTION_RETRY = RetryPolicy(max_attempts=8, base_s=2.0, cap_s=600.0)  # a rule's `[retry]` overrides it
TAG_MAX_CHARS = 200  # one tag written by event.tag, rendered
