"""Workflow-automation rules: when a stored event matches, act.

loader.py      a folder of TOML files → a validated RuleSet (one ConfigError line per mistake),
               and RulesWatcher, which reloads it on change and keeps the last good one
model.py       the file format (pydantic, extra="forbid")
context.py     what a rule sees of an event: roots, dotted paths, resolution
conditions.py  operators and all / any / not, pure, with explain()
templates.py   sandboxed Jinja2, compiled at load, bounded output
actions.py     action types (entry-point group `hookyard.actions`) and the built-ins' parameters
ruleset.py     Rule, Action, Match and the index by event type
"""
