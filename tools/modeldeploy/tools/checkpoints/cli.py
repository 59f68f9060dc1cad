"""``modeldeploy-dev checkpoints build|list``: the offline checkpoint factory from the shell."""

from __future__ import annotations

import argparse
import json

from modeldeploy.tools.checkpoints.recipes import RECIPES, get_recipe


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("checkpoints", help="build and list the offline checkpoints")
    sub = parser.add_subparsers(dest="checkpoints_command", metavar="ACTION", required=True)

    build_cmd = sub.add_parser("build", help="build recipes (cached; a second run is instant)")
    build_cmd.add_argument("recipes", nargs="*", help="recipe names (see `checkpoints list`)")
    build_cmd.add_argument("--all", action="store_true", help="build every recipe")
    build_cmd.set_defaults(handler=_build)

    list_cmd = sub.add_parser("list", help="list recipes and what is cached")
    list_cmd.add_argument("--json", action="store_true", help="machine-readable output")
    list_cmd.set_defaults(handler=_list)

    heldout_cmd = sub.add_parser(
        "export-heldout",
        help="write the held-out sentences that modeldeploy.serving ships (parity, golden set)",
    )
    heldout_cmd.add_argument(
        "--check", action="store_true", help="only compare; exit 1 if a shipped file is stale"
    )
    heldout_cmd.set_defaults(handler=_export_heldout)


def _build(args: argparse.Namespace) -> int:
    from modeldeploy.cli import CommandError
    from modeldeploy.tools.checkpoints.factory import build

    names = sorted(RECIPES) if args.all else args.recipes
    if not names:
        raise CommandError("name at least one recipe, or pass --all")
    for name in names:
        try:
            recipe = get_recipe(name)
        except KeyError as exc:
            raise CommandError(str(exc.args[0])) from None
        path = build(recipe)
        metrics = json.loads((path / "metrics.json").read_text())
        print(f"{name:<18} test accuracy {metrics['test_accuracy']:.3f}  {path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from modeldeploy.tools.checkpoints.factory import cache_root, checkpoint_dir

    rows = []
    for name, recipe in sorted(RECIPES.items()):
        path = checkpoint_dir(recipe)
        metrics_file = path / "metrics.json"
        accuracy = (
            json.loads(metrics_file.read_text())["test_accuracy"] if metrics_file.exists() else None
        )
        rows.append(
            {
                "name": name,
                "family": recipe.family,
                "cached": metrics_file.exists(),
                "test_accuracy": accuracy,
                "path": str(path),
                "description": recipe.description,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"cache: {cache_root()}")
    print(f"{'RECIPE':<18} {'FAMILY':<11} {'ACCURACY':<9} DESCRIPTION")
    for row in rows:
        acc = f"{row['test_accuracy']:.3f}" if row["cached"] else "-"
        print(f"{row['name']:<18} {row['family']:<11} {acc:<9} {row['description']}")
    return 0


def _export_heldout(args: argparse.Namespace) -> int:
    from modeldeploy.cli import CommandError
    from modeldeploy.tools.checkpoints import heldout

    if args.check:
        stale = heldout.stale()
        if stale:
            raise CommandError(f"stale in {heldout.data_dir()}: {', '.join(stale)}")
        print(f"up to date: {heldout.data_dir()}")
        return 0
    for path in heldout.export():
        print(f"wrote {path}")
    return 0
