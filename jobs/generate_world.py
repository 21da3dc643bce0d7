"""Generate a synthetic Taocode world into the lake (``raw/*`` and ``truth/world``).

    python -m jobs.generate_world --lake LAKE --share-records 1000000 --seed 7 [--weeks 12]
        [--start 2026-01-05] [--effects all|none|E1,E3|-E2|+E10] [--config world.yaml]
        [--set KEY=VALUE ...] [--run-id ID] [--master spark://127.0.0.1:7077]
    spark-submit --properties-file spark-defaults.conf jobs/generate_world.py --lake LAKE ...

Every ``WorldConfig`` field can be set (``pipeline/world/config.py`` lists them with their
defaults):

* ``--config world.yaml``: a YAML mapping of field -> value, e.g. ``{seed: 3, e9_tie: 1.5,
  effects: "-E2"}`` (``effects`` may also be a list, ``[E1, E3]``; ``start`` a date);
* ``--share-records``, ``--seed``, ``--weeks``, ``--start``, ``--effects`` win over the YAML;
* ``--set KEY=VALUE`` (repeatable, e.g. ``--set fanout=2.5 --set effects=-E2,-E9``) wins over
  both; the text is cast to the field's type, ``effects`` parsed as ``--effects``.

An unknown field, or a value that is not of the field's type, exits with code 2 and a message
that names the field and lists the valid fields or the type expected.

The planted mechanisms and their strengths are documented in ``pipeline/world/`` and recorded
in ``truth/world``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from pathlib import Path

if not __package__:
    # Run as a file (spark-submit jobs/<name>.py): the repository root takes this folder's
    # place on the path, so its packages import and jobs/pipeline.py cannot hide `pipeline`.
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != _here]
    sys.path.insert(0, str(_here.parent))

#: The flags that set the WorldConfig field of the same name.
FIELD_FLAGS = ("share_records", "seed", "weeks", "start", "effects")


def build_parser() -> argparse.ArgumentParser:
    from pipeline import logs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, help="lake root folder")
    # Field flags default to None: unset, the YAML or WorldConfig's default applies.
    parser.add_argument("--share-records", type=int, default=None, help="default 200000")
    parser.add_argument("--seed", type=int, default=None, help="default 7")
    parser.add_argument("--weeks", type=int, default=None, help="default 12")
    parser.add_argument("--start", type=dt.date.fromisoformat, default=None,
                        help="a Monday (default 2026-01-05)")
    parser.add_argument("--effects", default=None,
                        help="E1-E9 (default), all (E1-E10), none, a list E1,E3, or changes to "
                             "the default: -E2 (without), +E10 (with)")
    parser.add_argument("--config", type=Path, default=None,
                        help="YAML mapping of WorldConfig field -> value")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="set a WorldConfig field (repeatable)")
    parser.add_argument("--run-id", default=None, help="idempotency key (default: config hash)")
    parser.add_argument("--master", default=None, help="Spark master (default: spark-defaults)")
    logs.add_argument(parser)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, with ``world``: the ``WorldConfig`` from the defaults, ``--config``,
    the field flags and ``--set``, in that order of precedence (last wins). A bad field or
    value ends in ``parser.error`` (exit code 2)."""
    from pipeline.world.config import ConfigError, assignments, world_config, yaml_values

    parser = build_parser()
    args = parser.parse_args(argv)
    values: dict[str, object] = {}
    try:
        if args.config is not None:
            try:
                text = args.config.read_text()
            except OSError as err:
                parser.error(f"--config {args.config}: {err.strerror}")
            values.update(yaml_values(text, f"--config {args.config}"))
        values.update({name: getattr(args, name) for name in FIELD_FLAGS
                       if getattr(args, name) is not None})
        values.update(assignments(args.overrides))
        args.world = world_config(values)
    except ConfigError as err:
        parser.error(str(err))
    except ValueError as err:  # a world that cannot be: start no Monday, too few records
        parser.error(f"bad world: {err}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pipeline import logs
    from pipeline.lake import Lake
    from pipeline.session import get_spark
    from pipeline.world import generate_to_lake

    logs.configure(args.log_level)
    spark = get_spark("sharecast-generate-world", master=args.master)
    began = time.perf_counter()
    summary = generate_to_lake(spark, Lake(args.lake), args.world, args.run_id,
                               progress=logging.getLogger("jobs.generate_world").info)
    summary["seconds"] = round(time.perf_counter() - began, 1)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    from jobs import run as run_job

    sys.exit(run_job("generate_world", main))
