"""Load a folder of rule files into a RuleSet, and keep it current while a process runs.

Any mistake is one ConfigError line naming the file, the rule and the field:

    rules/big-orders.toml: rule big-orders: when.all[1].op: unknown operator 'gte '; operators: …
"""

from __future__ import annotations

import hashlib
import time
import tomllib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from events.sources import environment, expand, rules_dir
from rules.actions import SECRET, TEMPLATED, marked
from rules.actions import registry as actions
from rules.constants import ACTION_RETRY, RULE_FILES
from rules.metrics import RELOADS
from rules.model import ActionModel, RuleModel
from rules.ruleset import Action, Debounce, Rule, RuleSet, Throttle, compile_tree
from rules.templates import Template
from schemas.errors import ConfigError

log = structlog.get_logger()


def _where(loc: Sequence[int | str]) -> str:
    """('when', 'all', 1, 'op') → 'when.all[1].op'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _first_error(exc: ValidationError, prefix: str = "") -> str:
    err = exc.errors(include_url=False)[0]
    message = str(err["ctx"]["error"]) if err["type"] == "value_error" else err["msg"]
    where = _where([*([prefix] if prefix else []), *err["loc"]])
    return f"{where}: {message}" if where else message


def load_rules(
    folder: Path, *, sources: Collection[str] | None = None, env: Mapping[str, str] | None = None
) -> RuleSet:
    """Every `*.toml` in `folder`, validated; `sources` (configured names) are checked when given."""
    if not folder.is_dir():
        raise ConfigError(f"{folder}: the rules folder does not exist (rules_dir in the sources file)")
    rules: list[Rule] = []
    seen: dict[str, Path] = {}
    for path in sorted(folder.glob(RULE_FILES)):
        rule = load_rule(path, sources=sources, env=env)
        if rule.name in seen:
            raise ConfigError(f"{path}: rule {rule.name}: name: already used by {seen[rule.name]}")
        seen[rule.name] = path
        rules.append(rule)
    return RuleSet(tuple(rules))


def load_rule(
    path: Path, *, sources: Collection[str] | None = None, env: Mapping[str, str] | None = None
) -> Rule:
    try:
        raw = tomllib.loads(path.read_text(), parse_float=Decimal)  # 0.1 stays exactly 0.1
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    name = raw.get("name")
    where = f"{path}: rule {name if isinstance(name, str) and name else '?'}"
    try:
        model = RuleModel.model_validate(raw, context={"sources": sources})
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_first_error(exc)}") from None
    return Rule(
        name=model.name,
        file=str(path),
        description=model.description,
        enabled=model.enabled,
        mode=model.mode,
        types=tuple(model.when.types),
        sources=None if model.when.sources is None else frozenset(model.when.sources),
        vendors=None if model.when.vendors is None else frozenset(model.when.vendors),
        condition=model.when.condition(),
        actions=tuple(
            _action(i, a, where, sources=sources, env=env or {}) for i, a in enumerate(model.actions)
        ),
        throttle=None
        if model.throttle is None
        else Throttle(
            _template(model.throttle.key, f"{where}: throttle.key"), model.throttle.per, model.throttle.max
        ),
        debounce=None
        if model.debounce is None
        else Debounce(_template(model.debounce.key, f"{where}: debounce.key"), model.debounce.wait),
        retry=ACTION_RETRY
        if model.retry is None
        else replace(ACTION_RETRY, **model.retry.model_dump(exclude_none=True)),
    )


def _template(source: str, where: str) -> Template:
    try:
        return Template(source)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _action(
    index: int, spec: ActionModel, where: str, *, sources: Collection[str] | None, env: Mapping[str, str]
) -> Action:
    at = f"actions[{index}]"
    try:
        kind = actions.get(spec.type)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {at}.type: {exc}") from None
    raw: dict[str, Any] = dict(spec.model_extra or {})
    for name in marked(kind.params, SECRET):
        if isinstance(raw.get(name), str):
            raw[name] = expand(raw[name], env, f"{where}: {at}.{name}")
    try:
        params = kind.params.model_validate(raw, context={"sources": sources})
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_first_error(exc, at)}") from None
    templates = {}
    for name in marked(kind.params, TEMPLATED):
        value = getattr(params, name)
        if value is not None:
            try:
                templates[name] = compile_tree(value)
            except ValueError as exc:
                raise ConfigError(f"{where}: {at}.{name}: {exc}") from None
    return Action(index=index, type=spec.type, params=params, templates=templates)


def fingerprint(folder: Path) -> str:
    """A hash of the rule files' names and contents: it changes when any of them does."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob(RULE_FILES)):
        digest.update(path.name.encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"\1unreadable")
        digest.update(b"\0")
    return digest.hexdigest()


class RulesWatcher:
    """The rules of a folder, re-read when a file changes; a broken edit keeps the last good rules.

    No thread: `current()` checks the files at most every `min_interval_s` (the clock is injected).
    The first load raises ConfigError, as any configuration mistake at start does.
    """

    def __init__(
        self,
        folder: Path,
        load: Callable[[Path], RuleSet],
        *,
        min_interval_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder = folder
        self._load = load
        self._clock = clock
        self._min_interval_s = min_interval_s
        self._stamp = fingerprint(folder)
        self.rules = load(folder)
        self.error: str | None = None  # why the last reload failed, while the old rules stay in force
        self._checked = clock()

    def current(self) -> RuleSet:
        if self._clock() - self._checked >= self._min_interval_s:
            self.refresh()
        return self.rules

    def refresh(self) -> bool:
        """Reload if the files changed; True when a new rule set took over."""
        self._checked = self._clock()
        stamp = fingerprint(self.folder)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            rules = self._load(self.folder)
        except ConfigError as exc:
            self.error = str(exc)
            RELOADS.labels(outcome="failed").inc()
            log.warning(
                "rules.reload_failed", folder=str(self.folder), error=self.error, kept=len(self.rules)
            )
            return False
        self.rules, self.error = rules, None
        RELOADS.labels(outcome="ok").inc()
        log.info("rules.reloaded", folder=str(self.folder), rules=len(rules))
        return True


def watch_configured(
    config: Path, secrets_file: Path | None, sources: Collection[str]
) -> RulesWatcher | None:
    """A watcher on the folder the sources file names (None when it names none). `${VAR}`s are read
    again at each reload, so a secret added to the secrets file before a new rule is picked up."""
    folder = rules_dir(config)
    if folder is None:
        return None
    return RulesWatcher(folder, lambda f: load_rules(f, sources=sources, env=environment(secrets_file)))
