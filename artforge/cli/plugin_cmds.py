"""`artforge plugins | codecs | install | uninstall`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import click

from artforge.cli.display import echo_json, json_stdout
from artforge.errors import ArtforgeError


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@json_stdout
def plugins(as_json: bool) -> None:
    """List installed plugins: version, hooks, what each provides, load errors."""
    from artforge.cli import cli
    from artforge.plugins import get_plugin_manager

    pm = get_plugin_manager()
    cli._add_plugin_commands()
    infos = pm.describe()
    if as_json:
        echo_json(json.dumps([asdict(i) for i in infos], indent=2))
        return
    from artforge.cli.display import print_table

    rows = [(info.name, info.version or "", ", ".join(h.removeprefix("register_") for h in info.hooks),
             "; ".join(f"{k}: {', '.join(v)}" for k, v in info.provides.items() if v), "\n".join(info.errors))
            for info in infos]
    print_table(("plugin", "version", "hooks", "provides", "errors"), rows, styles={4: "red"})


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@json_stdout
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
        echo_json(json.dumps(rows, indent=2))
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


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pip_reports() -> bool:
    """Whether this pip writes ``install --report`` (stable since pip 23)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return int(version("pip").split(".")[0]) >= 23
    except (PackageNotFoundError, ValueError):
        return False


def _warn_without_plugin(report: Path) -> None:
    """Name every requested package pip installed that has no ``artforge`` entry point: installing
    one succeeds, but nothing new shows up in `artforge plugins`, which is easy to miss."""
    import importlib
    from importlib.metadata import PackageNotFoundError, distribution

    from artforge.plugins import ENTRY_POINT_GROUP

    try:
        items = json.loads(report.read_text()).get("install", [])
    except (OSError, ValueError):
        return
    importlib.invalidate_caches()  # pip just wrote the metadata
    for item in items:
        meta = item.get("metadata", {})
        if not item.get("requested") or not meta.get("name"):
            continue
        try:
            eps = distribution(meta["name"]).entry_points
        except PackageNotFoundError:
            continue
        if not [ep for ep in eps if ep.group == ENTRY_POINT_GROUP]:
            click.echo(f"artforge: warning: {meta['name']} {meta.get('version', '')} adds no artforge plugin (it has "
                       f"no entry point in the {ENTRY_POINT_GROUP!r} group)", err=True)


@click.command()
@click.argument("packages", nargs=-1)
@click.option("-U", "--upgrade", is_flag=True, help="Upgrade the packages to their newest versions.")
@click.option("-e", "--editable", "editables", multiple=True, metavar="PATH",
              help="Install a local plugin project in editable mode.")
def install(packages: tuple[str, ...], upgrade: bool, editables: tuple[str, ...]) -> None:
    """Install plugin packages with pip, into the Python that runs artforge.

    A package that pip installs but that has no `artforge` entry point is named in a warning (the
    exit status stays 0: pip did install it).
    """
    if not packages and not editables:
        raise ArtforgeError("name at least one package, or -e PATH")
    args = ["install"]
    if upgrade:
        args.append("--upgrade")
    for path in editables:
        args += ["-e", path]
    args += list(packages)
    if not _pip_reports():
        _pip(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        _pip([*args, "--report", str(report)])
        _warn_without_plugin(report)


def _needed_by(core) -> dict[str, str | None]:
    """Every installed package that artforge needs, directly or through another (torch needs filelock):
    canonical name -> the direct dependency it comes through (None: a direct one). Requirements behind
    an extra are left out; other markers are not evaluated, so a package is kept rather than lost."""
    from importlib.metadata import PackageNotFoundError, distribution

    from artforge.plugins import CORE_DIST

    def requires(dist) -> list[str]:
        return [_canonical(re.match(r"[A-Za-z0-9._-]*", r).group()) for r in dist.requires or []
                if not re.search(r"\bextra\s*==", r)]

    needs: dict[str, str | None] = dict.fromkeys(requires(core))
    todo = list(needs)
    while todo:
        name = todo.pop()
        try:
            deps = requires(distribution(name))
        except PackageNotFoundError:
            continue
        for dep in deps:
            if dep and dep not in needs and dep != CORE_DIST:
                needs[dep] = needs[name] or name
                todo.append(dep)
    return needs


def _not_removable(name: str) -> str | None:
    """Why `artforge uninstall NAME` must not run pip: NAME is artforge, a package artforge needs,
    or a first-party plugin (which lives inside artforge's own distribution)."""
    from importlib.metadata import PackageNotFoundError, distribution, entry_points

    from artforge.plugins import CORE_DIST, ENTRY_POINT_GROUP

    use_pip = f"use pip itself if you mean it ({sys.executable} -m pip uninstall {name})"
    if _canonical(name) == CORE_DIST:
        return f"{name}: this is artforge itself, not a plugin; {use_pip}"
    try:
        core = distribution(CORE_DIST)
    except PackageNotFoundError:  # run from a source tree: nothing else to protect
        return None
    needs = _needed_by(core)
    if _canonical(name) in needs:
        through = needs[_canonical(name)]
        return f"{name}: artforge needs it to run{f' (through {through})' if through else ''}; {use_pip}"
    if any(ep.group == ENTRY_POINT_GROUP and ep.name == name for ep in core.entry_points):
        others = ",".join(sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)} - {name}))
        return (f"{name}: this plugin ships with artforge and cannot be uninstalled; leave it out with "
                f"ARTFORGE_LOAD_PLUGINS={others}")
    return None


def _plugin_dist_hint(name: str) -> str | None:
    """For a plugin's name (what `artforge plugins` lists) that is not a distribution's: the distribution
    that provides it, which is what pip uninstalls."""
    from importlib.metadata import entry_points

    from artforge.plugins import ENTRY_POINT_GROUP

    dists = sorted({ep.dist.name for ep in entry_points(group=ENTRY_POINT_GROUP)
                    if ep.name == name and getattr(ep, "dist", None) is not None})
    if not dists:
        return None
    return (f"{name}: this is the name of a plugin, not of a package; the package that provides it is "
            f"{' and '.join(dists)}: artforge uninstall {' '.join(dists)}")


#: a pip requirement: the name, then optional extras, a version specifier, a URL or markers
_REQUIREMENT = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*"
                          r"(|[\[(;@].*|(?:===|==|!=|<=|>=|~=|<|>)\s*\S.*)", re.S)


def _requirement_name(requirement: str) -> str:
    """The package name of a pip requirement (``pkg==1.0``, ``pkg[extra]``, ``pkg>=1``: ``pkg``), which is
    all `pip uninstall` goes by: it removes the installed version whatever version is given."""
    match = _REQUIREMENT.fullmatch(requirement)
    if match is None:
        raise ArtforgeError(f"{requirement!r} is not a package name (uninstall takes names, as "
                            "`artforge plugins` and pip list them)")
    return match.group(1)


@click.command()
@click.argument("packages", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Don't ask for confirmation.")
def uninstall(packages: tuple[str, ...], yes: bool) -> None:
    """Uninstall plugin packages with pip.

    artforge itself, the packages it needs (directly or through another: torch needs filelock) and the
    plugins that ship with it are refused, since removing them breaks artforge. A plugin's name (as
    `artforge plugins` lists it) names its package. As with pip, a version or extras (pkg==1.0,
    pkg[extra]) are ignored: the installed version of pkg is removed. Without a terminal, pass -y.
    """
    from importlib.metadata import PackageNotFoundError, distribution

    # checked by name, as pip uninstalls: `torch==2.4` or `artforge[dev]` must not slip past the refusals
    names = [_requirement_name(package) for package in packages]
    for name in names:
        why = _not_removable(name)
        if why:
            raise ArtforgeError(why)
    versions = {}
    for name in names:  # pip only warns about these and exits 0
        try:
            versions[name] = distribution(name).version
        except PackageNotFoundError:
            raise ArtforgeError(_plugin_dist_hint(name) or
                                f"{name}: not installed in this Python ({sys.executable})") from None
    for package, name in zip(packages, names, strict=True):
        if package.strip() != name:
            click.echo(f"artforge: note: pip uninstalls by name: {package} is taken as {name} "
                       f"(installed: {versions[name]})", err=True)
    if not yes and not sys.stdin.isatty():  # pip would ask anyway, then fail with a traceback on EOF
        raise ArtforgeError(f"there is no terminal to confirm on; add -y to uninstall {' '.join(names)}")
    _pip(["uninstall", *(["-y"] if yes else []), *names])


def register(cli: click.Group) -> None:
    for cmd in (plugins, codecs, install, uninstall):
        cli.add_command(cmd)
