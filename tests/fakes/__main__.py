"""Run one fake vendor API: python -m tests.fakes VENDOR --port N [--config JSON|@FILE]."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import uvicorn

from tests.fakes import VENDORS, build
from tests.fakes.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes", description=__doc__)
    parser.add_argument("vendor", choices=VENDORS)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--config", default="{}", help="JSON object, or @path to a JSON file")
    args = parser.parse_args(argv)
    source = "--config"
    try:
        text = args.config
        if text.startswith("@"):
            source = text[1:]
            text = Path(source).read_text()
        config = json.loads(text)
        if not isinstance(config, dict):
            raise ConfigError("the configuration must be a JSON object")
        fake = build(args.vendor, config)
    except (OSError, ValueError) as exc:  # ConfigError and JSON errors are ValueErrors
        print(f"fake {args.vendor}: {source}: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(fake.app(), host=args.host, port=args.port, log_level="warning", lifespan="off")
    return 0


if __name__ == "__main__":
    sys.exit(main())
