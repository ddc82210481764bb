"""`artforge plugins | codecs | install | uninstall`."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict

import click

from artforge.errors import ArtforgeError


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins(as_json: bool) -> None:
    """List installed plugins: version, hooks, what each provides, load errors."""
    from artforge.cli import cli
    from artforge.plugins import get_plugin_manager

    pm = get_plugin_manager()
    cli._add_plugin_commands()
    infos = pm.describe()
    if as_json:
        click.echo(json.dumps([asdict(i) for i in infos], indent=2))
        return
    from artforge.cli.display import print_table

    rows = [(info.name, info.version or "", ", ".join(h.removeprefix("register_") for h in info.hooks),
             "; ".join(f"{k}: {', '.join(v)}" for k, v in info.provides.items() if v), "\n".join(info.errors))
            for info in infos]
    print_table(("plugin", "version", "hooks", "provides", "errors"), rows, styles={4: "red"})


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def codecs(as_json: bool) -> None:
    """List codec families, their spec syntax and the plugin that provides each."""
    from artforge.plugins import registry

    reg = registry("codecs")
    rows = [
        {
            "name": name,
            "plugin": entry.plugin,
            "spec": entry.obj.spec_help,
            "input": entry.obj.input_kind,
            "description": entry.obj.description,
        }
        for name, entry in reg.loaded()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from artforge.cli.display import print_table

    print_table(("codec", "spec", "input", "plugin", "description"),
                [(r["name"], r["spec"], r["input"], r["plugin"], r["description"]) for r in rows])


def _pip(args: list[str]) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    click.echo("$ " + " ".join(cmd), err=True)
    rc = subprocess.call(cmd)
    if rc != 0:
        raise ArtforgeError(f"pip {args[0]} failed with exit code {rc}")
    from artforge.plugins import reset_plugin_manager

    reset_plugin_manager()


@click.command()
@click.argument("packages", nargs=-1)
@click.option("-U", "--upgrade", is_flag=True, help="Upgrade the packages to their newest versions.")
@click.option("-e", "--editable", "editables", multiple=True, metavar="PATH",
              help="Install a local plugin project in editable mode.")
def install(packages: tuple[str, ...], upgrade: bool, editables: tuple[str, ...]) -> None:
    """Install plugin packages with pip, into the Python that runs artforge."""
    if not packages and not editables:
        raise ArtforgeError("name at least one package, or -e PATH")
    args = ["install"]
    if upgrade:
        args.append("--upgrade")
    for path in editables:
        args += ["-e", path]
    _pip(args + list(packages))


@click.command()
@click.argument("packages", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Don't ask for confirmation.")
def uninstall(packages: tuple[str, ...], yes: bool) -> None:
    """Uninstall plugin packages with pip."""
    from importlib.metadata import PackageNotFoundError, distribution

    for name in packages:  # pip only warns about these and exits 0
        try:
            distribution(name)
        except PackageNotFoundError:
            raise ArtforgeError(f"{name}: not installed in this Python ({sys.executable})") from None
    _pip(["uninstall", *(["-y"] if yes else []), *packages])


def register(cli: click.Group) -> None:
    for cmd in (plugins, codecs, install, uninstall):
        cli.add_command(cmd)
