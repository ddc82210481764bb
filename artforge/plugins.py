"""Plugin manager: entry-point loading with each plugin isolated, and the registry it fills.

Every plugin, first-party or not, is an entry point in the ``artforge`` group. Each one loads on
its own: a plugin that fails to import, implements a misspelled hook or raises inside a hook
is recorded with its error and reported as one warning line; the others keep working.

Environment:
  ARTFORGE_STRICT_PLUGINS=1   turn any plugin error into a hard error (true, yes, on too)
  ARTFORGE_LOAD_PLUGINS=a,b   load only the named entry points ("" loads none)
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pluggy

from artforge import hookspecs
from artforge.errors import ArtforgeError, env_flag, first_line
from artforge.signals import Terminated

ENTRY_POINT_GROUP = "artforge"
CORE_DIST = "artforge"  # the distribution whose plugins are first-party: they win clashes with others
KINDS = ("codecs", "models", "renderers", "datasets")
HOOKS = tuple(name for name, fn in vars(hookspecs).items() if hasattr(fn, "artforge_spec"))


class PluginExit(Exception):
    """A plugin's own SystemExit (a module that calls sys.exit() when something it needs is missing),
    turned by :func:`plugin_code` into a failure like any other: it would otherwise end every command,
    `--help` included."""

    def __init__(self, exc: SystemExit):
        super().__init__(exc.code)
        self.exc = exc


def failure(exc: Exception) -> str:
    """How a plugin's failure reads in its errors: ``ValueError: bad``, ``SystemExit: 3``."""
    exc = exc.exc if isinstance(exc, PluginExit) else exc
    return f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def plugin_code() -> Iterator[None]:
    """Around running a plugin's code (its import, a hook, a lazy registration's import): what it prints
    goes to stderr, so stdout carries only the command's own output (`plugins --json`, `codecs --json`),
    and its SystemExit is a :class:`PluginExit`, caught with the plugin's other exceptions. Ctrl-C
    (KeyboardInterrupt) and SIGTERM (:class:`Terminated`, a SystemExit too) are the user's: they go through."""
    with contextlib.redirect_stdout(sys.stderr):
        try:
            yield
        except Terminated:
            raise
        except SystemExit as exc:
            raise PluginExit(exc) from None


@dataclass
class PluginInfo:
    """What ``artforge plugins`` shows for one plugin."""

    name: str
    version: str | None = None
    dist: str | None = None
    errors: list[str] = field(default_factory=list)
    provides: dict[str, list[str]] = field(default_factory=dict)
    hooks: list[str] = field(default_factory=list)


@dataclass
class Entry:
    """One registered thing and the plugin that registered it.

    ``target`` is the object itself or a lazy ``"package.module:attr"`` string, imported (and
    checked like an eager registration) on the first access to :attr:`obj`, so listing plugins
    never imports torch.
    """

    name: str
    target: Any
    plugin: str
    meta: dict = field(default_factory=dict)
    lazy: bool = False
    kind: str = ""

    @property
    def obj(self) -> Any:
        if self.lazy:
            module, _, attr = str(self.target).partition(":")
            try:
                with plugin_code():
                    obj = getattr(importlib.import_module(module), attr)
            except Exception as exc:  # noqa: BLE001 - a broken plugin module
                raise PluginError(
                    f"plugin {self.plugin!r} cannot load {self.name!r} from {self.target}: {failure(exc)}"
                ) from None
            problem = check_entry(self.kind, self.name, obj, self.meta)
            if problem:
                raise PluginError(f"plugin {self.plugin!r} registers {singular(self.kind)} {self.name!r} "
                                  f"({self.target}) that artforge cannot use: {problem}")
            self.target, self.lazy = obj, False
        return self.target


def singular(kind: str) -> str:
    """One thing of a kind, as messages name it: codec, model, renderer, data set (as the docs write it)."""
    return "data set" if kind == "datasets" else kind[:-1]


def _describe(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or repr(obj)[:60]


def check_entry(kind: str, name: str, obj: Any, meta: dict | None = None) -> str | None:
    """Why ``obj`` cannot be the ``kind`` entry ``name``, or None when it can.

    Checked once per entry (lazy ones when first imported), so that a malformed registration is
    skipped with a warning instead of breaking every command that lists or looks up its kind.
    """
    meta = meta or {}
    if kind != "datasets" and isinstance(obj, str):  # a lazy registration always has the colon
        return f"{obj!r} is a string but not a lazy 'package.module:attr' target (the colon is missing)"
    try:
        if kind == "codecs":
            from artforge.codecs import Codec

            if isinstance(obj, Codec):
                return f"{_describe(obj)} is a codec instance; register the class, {type(obj).__qualname__}"
            if not (isinstance(obj, type) and issubclass(obj, Codec)):
                return f"{_describe(obj)} is not a subclass of artforge.codecs.Codec"
        elif kind == "models":
            # ArtModel subclasses exist only once artforge.models (torch) is imported: asking
            # sys.modules keeps listing plugins torch-free and is exact
            models = sys.modules.get("artforge.models")
            if models is None or not (isinstance(obj, type) and issubclass(obj, models.ArtModel)):
                return f"{_describe(obj)} is not a subclass of artforge.models.ArtModel"
            config = getattr(obj, "Config", None)
            if not (isinstance(config, type) and dataclasses.is_dataclass(config)):
                return f"{obj.__qualname__} has no dataclass Config (its fields are what --set takes)"
            codecs = getattr(obj, "codecs", ())
            if isinstance(codecs, str):  # ("gray4") is a str: `in` would match any part of it
                return f"{obj.__qualname__}.codecs is the str {codecs!r}; make it a tuple, ({codecs!r},)"
            if not (isinstance(codecs, tuple | list) and all(isinstance(c, str) for c in codecs)):
                return f"{obj.__qualname__}.codecs must be a tuple of codec family names, got {codecs!r}"
        elif kind == "renderers":
            if not callable(obj):
                return f"{_describe(obj)} is not callable (a renderer is registered as factory(codec))"
        elif kind == "datasets":
            if not isinstance(obj, str | os.PathLike) or str(obj).startswith("builtin:"):
                return f"{_describe(obj)} is not a path to a folder or file"
            if not isinstance(meta.get("description", ""), str) or not isinstance(meta.get("codec"), str | None):
                return "description and codec must be strings"
    except Exception as exc:  # noqa: BLE001 - e.g. a metaclass that fails issubclass
        return f"cannot be checked: {type(exc).__name__}: {exc}"
    if kind in ("codecs", "models") and getattr(obj, "name", None) != name:
        return f"{obj.__qualname__}.name is {getattr(obj, 'name', None)!r}"
    return None


#: what each kind's register callback takes, as hooks.md gives it
REGISTER_SIGNATURES = {
    "codecs": "register(codec_class) or register(name, 'package.module:Class')",
    "models": "register(model_class) or register(name, 'package.module:Class')",
    "renderers": "register(name, factory)",
    "datasets": "register(name, path, description='', codec=None)",
}


def _register_mistake(kind: str, first: Any, args: tuple, meta: dict) -> str | None:
    """Why a call of a register callback does not fit its signature (an extra argument, a keyword it
    does not take, one given twice), or None."""
    allowed = ("description", "codec") if kind == "datasets" else ()
    most = 3 if kind == "datasets" else 1
    unknown = sorted(k for k in meta if k not in allowed)
    twice = sorted(k for k in allowed[:max(0, len(args) - 1)] if k in meta)
    takes = f"it takes {REGISTER_SIGNATURES[kind]}: not registered"
    if args and not isinstance(first, str):  # register(MyCodec, "name"): the other way round
        return (f"calls register({_describe(first)}, {_describe(args[0])}) in register_{kind}, whose first "
                f"argument must be the name; {takes}")
    if len(args) <= most and not unknown and not twice:
        return None
    what = (f"{len(args) + 1} arguments" if len(args) > most else
            f"the keyword{'s' * (len(unknown) > 1)} {', '.join(unknown)}" if unknown else f"{', '.join(twice)} twice")
    return f"calls register({_describe(first)}, ...) in register_{kind} with {what}; {takes}"


def _one_line(message: str) -> str:
    """A plugin problem is reported as one line; library messages (pluggy's) may run over many."""
    return (message.strip().splitlines() or [""])[0]


class PluginError(ArtforgeError):
    """A plugin failed to load or clashes with another: the installation's problem, never the
    file being read, so callers that blame their input let it through unchanged."""


class Conflict(PluginError):
    pass


class Registry:
    """Name -> entry tables for one kind (codecs, models, ...), filled by the register hooks."""

    def __init__(self, kind: str, on_fail: Any = None, first_party: Any = None):
        self.kind = kind
        self.first_party = first_party or (lambda plugin: False)  # plugin name -> ships with artforge
        self.entries: dict[str, Entry] = {}
        self.conflicts: dict[str, list[str]] = {}
        #: name -> (plugin, why) for registrations that were skipped: naming one gives the reason
        self.refused: dict[str, tuple[str, str]] = {}
        self.on_fail = on_fail  # (plugin, message) -> None: the manager's one-line warning

    def loaded(self) -> list[tuple[str, Entry]]:
        """Every entry whose object loads, by name. One that does not (a lazy registration naming a
        missing module) is left out with a warning, so one broken plugin cannot empty a listing."""
        out = []
        for name in self.names():
            entry = self.entries[name]
            try:
                entry.obj  # noqa: B018 - imports a lazy entry
            except ArtforgeError as exc:
                if self.on_fail is None:
                    raise
                self.on_fail(entry.plugin, str(exc).removeprefix(f"plugin {entry.plugin!r} "))
                continue
            out.append((name, entry))
        return out

    def add(self, name: str, obj: Any, plugin: str, **meta) -> str | None:
        """Add one registration; returns why it was skipped (for the caller to report), or None."""
        what = singular(self.kind)
        if not isinstance(name, str) or not name:
            return f"registers a {what} without a name: {_describe(obj)}"
        lazy = self.kind != "datasets" and isinstance(obj, str) and ":" in obj
        problem = None if lazy else check_entry(self.kind, name, obj, meta)
        if problem:
            why = f"registers {what} {name!r} that artforge cannot use: {problem}"
            self.refused.setdefault(name, (plugin, why))
            return why
        if name in self.conflicts:
            self.conflicts[name].append(plugin)
            return None
        if name in self.entries:
            first = self.entries[name].plugin
            if self.first_party(first) and not self.first_party(plugin):  # a third party cannot unseat it
                why = f"registers {what} {name!r}, which first-party plugin {first!r} provides"
                self.refused.setdefault(name, (plugin, why))
                return why
            del self.entries[name]
            self.conflicts[name] = [first, plugin]
            return None
        overlap = self._overlap(name) if self.kind == "codecs" else None
        if overlap:
            self.refused.setdefault(name, (plugin, overlap))
            return overlap
        self.entries[name] = Entry(name, obj, plugin, meta, lazy=lazy, kind=self.kind)
        return None

    def _overlap(self, name: str) -> str | None:
        """Why codec family ``name`` cannot be told apart from one already registered.

        A spec goes to the family with the longest matching prefix, so a family that begins with
        another (hsv5 after hsv) would silently take that family's specs (hsv544), and one that is
        the beginning of another (pal before palette) could never be given arguments that start
        like the other's name.
        """
        for other in [*self.entries, *self.conflicts]:
            if name.startswith(other) or other.startswith(name):
                owner = (repr(self.entries[other].plugin) if other in self.entries
                         else " and ".join(map(repr, self.conflicts[other])))
                how = (f"would take specs of codec {other!r} (plugin {owner}) such as {name}..."
                       if name.startswith(other) else f"is the beginning of codec {other!r} (plugin {owner})")
                return f"registers codec {name!r}, which {how}: no codec name may begin another's"
        return None

    def get(self, name: str) -> Entry:
        if name in self.conflicts:
            both = " and ".join(repr(p) for p in self.conflicts[name])
            raise Conflict(
                f"{singular(self.kind)} {name!r} is registered by both plugins {both}; uninstall one "
                "or choose with ARTFORGE_LOAD_PLUGINS"
            )
        if name not in self.entries and name in self.refused:
            plugin, why = self.refused[name]
            raise PluginError(f"plugin {plugin!r} {why}")
        if name not in self.entries:
            known = ", ".join(sorted(self.entries)) or "none"
            raise ArtforgeError(f"unknown {singular(self.kind)} {name!r}; known: {known}")
        return self.entries[name]

    def names(self) -> list[str]:
        return sorted(self.entries)

    def __contains__(self, name: str) -> bool:
        return name in self.entries


class PluginManager:
    """Loads plugins once, then builds each registry kind lazily on first use."""

    def __init__(self, load_entry_points: bool = True):
        self.pm = pluggy.PluginManager("artforge")
        self.pm.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        self._registries: dict[str, Registry] = {}
        self._warned: set[str] = set()
        #: counts plugin (un)registrations, so the CLI knows when to add plugin commands again
        self.generation = 0
        if load_entry_points:
            self._load_entry_points()

    # -- loading -------------------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        from importlib.metadata import entry_points

        only = os.environ.get("ARTFORGE_LOAD_PLUGINS")
        wanted = None if only is None else {n.strip() for n in only.split(",") if n.strip()}
        found = entry_points(group=ENTRY_POINT_GROUP)
        unknown = sorted((wanted or set()) - {ep.name for ep in found})
        if unknown:  # a typo would otherwise load nothing and list empty tables without a word
            print(f"artforge: warning: ARTFORGE_LOAD_PLUGINS names {', '.join(map(repr, unknown))}, which no "
                  f"installed plugin is called (installed: {', '.join(sorted({ep.name for ep in found}))})",
                  file=sys.stderr)
        # artforge's own plugins first: a third-party entry point that takes one of their names
        # must not replace it, whatever the order of the path
        for ep in sorted(found, key=lambda ep: getattr(getattr(ep, "dist", None), "name", None) != CORE_DIST):
            if wanted is not None and ep.name not in wanted:
                continue
            dist = getattr(ep, "dist", None)
            if ep.name in self.info:  # first wins; the same distribution seen twice is no news
                first = self.info[ep.name]
                if getattr(dist, "name", None) != first.dist:
                    held = ("is loaded" if self.pm.get_plugin(ep.name) is not None
                            else "came first, though it failed to load")
                    self._fail(ep.name, f"is also an entry point of {getattr(dist, 'name', '?')} "
                                        f"{getattr(dist, 'version', '')}, which is not loaded: two plugins "
                                        f"cannot share a name (that of {first.dist} {held})")
                continue
            info = PluginInfo(
                name=ep.name,
                version=getattr(dist, "version", None),
                dist=getattr(dist, "name", None),
            )
            self.info[ep.name] = info
            try:
                with plugin_code():
                    module = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import failure is the plugin's
                self._fail(ep.name, f"failed to load: {failure(exc)}")
                continue
            self.register(module, ep.name, _info=info)

    def register(self, plugin: Any, name: str, _info: PluginInfo | None = None) -> bool:
        """Register a plugin object/module; returns False (and records why) when it is invalid.

        Registering the same object under the same name again is a no-op (a test registering an
        installed plugin's hooks module); another object under a taken name, or the same object
        under a second name, is refused and the registration already there is left alone.
        """
        existing = self.pm.get_plugin(name)
        if existing is plugin:
            return True
        if existing is not None:
            self._warn(name, f"is already loaded; registering {getattr(plugin, '__name__', type(plugin).__name__)} "
                         "under its name was refused (the loaded one stays)")
            return False
        if self.pm.is_registered(plugin):
            first = self.pm.get_name(plugin)
            if _info is not None:  # a second entry point naming the same module: list it with the reason
                self._fail(name, f"names the module of plugin {first!r}, which is loaded already; not loaded again")
            else:
                self._warn(first, f"is already loaded; registering it again as {name!r} was refused")
            return False
        info = _info or self.info.setdefault(name, PluginInfo(name=name))
        invalid, unmarked = self._hook_mistakes(plugin)
        if invalid:
            self._fail(name, f"invalid: {invalid}")
            return False
        for problem in unmarked:
            self._fail(name, problem)
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # noqa: BLE001 - pluggy refusing it: nothing was registered
            self._fail(name, f"invalid: {first_line(exc)}")
            return False
        try:
            self.pm.check_pending()
        except Exception as exc:  # noqa: BLE001 - e.g. a misspelled hook implementation
            self.pm.unregister(plugin)  # ours, registered just above
            self._fail(name, f"invalid: {first_line(exc)}")
            return False
        info.hooks = sorted(
            h.name for h in self.pm.get_hookcallers(plugin) or [] if h.name.startswith("register_")
        )
        self._registries.clear()
        self.generation += 1
        if not info.hooks and not unmarked:  # listed as loaded, yet provides nothing, without a word
            where = getattr(plugin, "__name__", None) or type(plugin).__name__
            self._fail(name, f"has no hooks: {where} defines no @hookimpl function named like a hook; an entry "
                             "point names the module that defines them (my_plugin.hooks, not my_plugin)")
        return True

    def _hook_mistakes(self, plugin: Any) -> tuple[str | None, list[str]]:
        """(why the plugin is invalid, warnings) for hook functions that pluggy would reject in
        several lines (an argument its spec does not have) or ignore without a word (no @hookimpl)."""
        unmarked = []
        for attr in dir(plugin):  # pluggy would say "unknown hook ... in plugin <module ... from ...>"
            opts = self.pm.parse_hookimpl_opts(plugin, attr)
            if opts is not None and (opts.get("specname") or attr) not in HOOKS:  # specname= names the hook
                attr = opts.get("specname") or attr
                import difflib

                close = difflib.get_close_matches(attr, HOOKS, 1)
                hint = f"did you mean {close[0]}?" if close else f"the hooks are {', '.join(HOOKS)}"
                return f"unknown hook {attr!r} ({hint})", unmarked
            if opts is not None and (opts.get("hookwrapper") or opts.get("wrapper")):
                # pluggy would call it as a generator around the other plugins' hooks, which artforge
                # calls one by one: its registrations would never run
                which = "hookwrapper" if opts.get("hookwrapper") else "wrapper"
                return (f"hook {opts.get('specname') or attr} is marked {which}=True; artforge's hooks "
                        f"register things and cannot be wrapped: use a plain @hookimpl"), unmarked
        for hook in HOOKS:
            fn = getattr(plugin, hook, None)
            if not callable(fn):
                continue
            if self.pm.parse_hookimpl_opts(plugin, hook) is None:
                unmarked.append(f"defines {hook} without @hookimpl, so it is ignored: decorate it with "
                                "@artforge.hookspecs.hookimpl")
                continue
            try:
                params = inspect.signature(fn).parameters.values()
            except (TypeError, ValueError):
                continue  # pluggy's own check applies
            spec = inspect.signature(getattr(hookspecs, hook))
            unknown = [p.name for p in params if p.name not in spec.parameters and p.default is p.empty
                       and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            if unknown:
                return (f"hook {hook}({', '.join(p.name for p in params)}) must be {hook}{spec}: "
                        f"rename {', '.join(unknown)}"), unmarked
        return None, unmarked

    def unregister(self, name: str) -> None:
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        self.info.pop(name, None)
        self._registries.clear()
        self.generation += 1

    def first_party(self, plugin: str) -> bool:
        """Whether a plugin ships with artforge itself."""
        info = self.info.get(plugin)
        return info is not None and info.dist == CORE_DIST

    def _fail(self, plugin: str, message: str) -> None:
        message = _one_line(message)
        self.info.setdefault(plugin, PluginInfo(name=plugin)).errors.append(message)
        self._warn(plugin, message)

    def _warn(self, plugin: str, message: str) -> None:
        """One warning line (an error in strict mode), without blaming the plugin in its listing:
        for a caller's mistake, such as registering a loaded plugin a second time."""
        message = _one_line(message)
        if env_flag("ARTFORGE_STRICT_PLUGINS"):
            raise PluginError(f"plugin {plugin!r} {message}")
        key = f"{plugin}:{message}"
        if key not in self._warned:
            self._warned.add(key)
            print(f"artforge: warning: plugin {plugin!r} {message}", file=sys.stderr)

    # -- registries ----------------------------------------------------------------------------
    def registry(self, kind: str) -> Registry:
        if kind not in KINDS:
            raise ValueError(kind)
        if kind not in self._registries:
            self._registries[kind] = self._build(kind)
        return self._registries[kind]

    def _build(self, kind: str) -> Registry:
        reg = Registry(kind, on_fail=self._fail, first_party=self.first_party)
        hook = getattr(self.pm.hook, f"register_{kind}")
        # Call each implementation on its own so one raising plugin cannot break the others,
        # and so every registration is tagged with the plugin that made it.
        # First-party plugins first, so that where two registrations clash the one refused is
        # never artforge's own, whatever order the entry points were found in.
        for impl in sorted(hook.get_hookimpls(), key=lambda impl: not self.first_party(impl.plugin_name)):
            plugin = impl.plugin_name
            problems: list[str] = []

            def register(obj_or_name: Any, *args: Any, _plugin: str = plugin, _problems: list = problems,
                         **meta: Any) -> None:
                mistake = _register_mistake(kind, obj_or_name, args, meta)
                if mistake:  # an argument the signature lacks would be dropped without a word
                    named = obj_or_name if isinstance(obj_or_name, str) else getattr(obj_or_name, "name", None)
                    if isinstance(named, str):  # naming it gives the reason, not "unknown"
                        reg.refused.setdefault(named, (_plugin, mistake))
                    _problems.append(mistake)
                    return
                if kind == "datasets":  # description and codec may be given by position too
                    meta = {**dict(zip(("description", "codec"), args[1:], strict=False)), **meta}
                if kind in ("codecs", "models") and not args:
                    name, obj = getattr(obj_or_name, "name", None), obj_or_name
                elif not args:
                    _problems.append(f"calls register({_describe(obj_or_name)}) in register_{kind} without "
                                     "its second argument")
                    return
                else:
                    name, obj = obj_or_name, args[0]
                problem = reg.add(name, obj, _plugin, **meta)
                if problem:
                    _problems.append(problem)

            try:
                with plugin_code():
                    impl.function(**{a: register for a in impl.argnames})
            except Exception as exc:  # noqa: BLE001 - isolate the plugin
                problems.append(f"raised in register_{kind}: {failure(exc)}")
            for problem in problems:  # reported after the hook: strict mode's error must not look raised by it
                self._fail(plugin, problem)
        for name, plugins in reg.conflicts.items():
            for p in plugins[1:]:
                self._fail(p, f"registers {singular(kind)} {name!r}, which plugin {plugins[0]!r} registers too")
        return reg

    def add_commands(self, cli: Any) -> None:
        """Run the register_commands hooks on the CLI group.

        Command names are global: a command that would replace a core command (``cli.core_commands``)
        or another plugin's is refused with one warning line, so ``--help`` never shows a command
        that does not run. ``cli.add_command`` is watched while each hook runs; changes made to
        ``cli.commands`` behind its back are checked the same way afterwards.
        """
        import click

        core = getattr(cli, "core_commands", None) or frozenset(cli.commands)
        owner: dict[str, str] = {}  # command -> the plugin that added it

        def clash(name: Any, plugin: str, cmd: Any) -> str | None:
            # what click would take and then fail on in every `artforge --help`, or refuse with a traceback
            if not isinstance(cmd, click.Command):
                return (f"adds {_describe(cmd)}, which is not a click command (decorate it with @click.command()): "
                        "not added")
            if not isinstance(name, str) or not name:
                return f"adds a command without a name ({_describe(cmd)}): not added"
            if name in core:
                return f"adds command {name!r}, which is a core artforge command: not added"
            if owner.get(name, plugin) != plugin:
                return f"adds command {name!r}, which plugin {owner[name]!r} adds too: not added"
            return None

        impls = self.pm.hook.register_commands.get_hookimpls()
        for impl in sorted(impls, key=lambda impl: not self.first_party(impl.plugin_name)):
            plugin = impl.plugin_name
            problems: list[str] = []
            added: list[str] = []
            original = cli.add_command

            def add_command(cmd: Any, name: str | None = None, _plugin: str = plugin, _problems: list = problems,
                            _added: list = added, _original: Any = original) -> None:
                name = name or getattr(cmd, "name", None)
                problem = clash(name, _plugin, cmd)
                if problem:
                    _problems.append(problem)
                    return
                owner[name] = _plugin
                _added.append(name)
                _original(cmd, name)

            before = dict(cli.commands)
            cli.add_command = add_command  # an instance attribute: click's @cli.command() calls it too
            try:
                with plugin_code():
                    impl.function(**{a: cli for a in impl.argnames})
            except Exception as exc:  # noqa: BLE001
                problems.append(f"raised in register_commands: {failure(exc)}")
            finally:
                del cli.add_command
            for name in sorted(set(before) | set(cli.commands), key=str):
                if name in added or cli.commands.get(name) is before.get(name):
                    continue
                if name not in before and (problem := clash(name, plugin, cli.commands[name])):
                    del cli.commands[name]  # set directly, and unusable: take it out again
                    problems.append(problem)
                elif name in before:  # replaced or removed behind add_command's back: put it back
                    cli.commands[name] = before[name]
                    whose = ("a core artforge command" if name in core else
                             f"added by plugin {owner[name]!r}" if name in owner else "already there")
                    problems.append(f"replaces or removes command {name!r} ({whose}): undone")
                else:  # a new name set directly: no clash possible, so it stands
                    owner[name] = plugin
                    added.append(name)
            info = self.info.setdefault(plugin, PluginInfo(name=plugin))
            info.provides["commands"] = sorted(set(added))
            for problem in problems:  # after the hook: strict mode's error must not look raised by it
                self._fail(plugin, problem)

    def describe(self) -> list[PluginInfo]:
        """Every plugin with what it provides (builds all registries)."""
        for kind in KINDS:
            reg = self.registry(kind)
            owned: dict[str, set[str]] = {}
            for entry in reg.entries.values():
                owned.setdefault(entry.plugin, set()).add(entry.name)
            for name, plugins in reg.conflicts.items():
                for p in plugins:
                    owned.setdefault(p, set()).add(name)
            for plugin in owned:
                self.info.setdefault(plugin, PluginInfo(name=plugin))
            for info in self.info.values():
                info.provides[kind] = sorted(owned.get(info.name, ()))
        return sorted(self.info.values(), key=lambda i: i.name)


_manager: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager (entry points are loaded on first call)."""
    global _manager
    if _manager is None:
        _manager = PluginManager()
    return _manager


def reset_plugin_manager() -> None:
    """Forget loaded plugins (tests, and after install/uninstall)."""
    global _manager
    _manager = None


def registry(kind: str) -> Registry:
    return get_plugin_manager().registry(kind)


def lookup(kind: str, name: str) -> Entry:
    return registry(kind).get(name)
