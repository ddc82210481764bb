"""The plugin system: isolation of broken plugins, strict mode, selection, duplicates."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

from artforge.codecs import Codec, get_codec
from artforge.errors import ArtforgeError
from artforge.hookspecs import hookimpl
from artforge.plugins import get_plugin_manager, reset_plugin_manager

from conftest import ARTFORGE, EMOJI, ROOT, invoke, subprocess_env
from toy_plugin import Gray2Codec


def fake_distribution(root: Path, dist: str, entry: str, module: str, source: str) -> Path:
    """A minimal installed distribution on a path: dist-info with an entry point + its module."""
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[artforge]\n{entry} = {module}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    return root


@pytest.fixture
def broken_env(tmp_path):
    root = fake_distribution(tmp_path, "broken-plugin", "broken", "broken_mod",
                             "import module_that_does_not_exist\n")
    return subprocess_env("broken", PYTHONPATH=str(root))


def run(env, *args):
    return subprocess.run([*ARTFORGE, *args], capture_output=True, text=True, env=env, timeout=120)


def test_broken_plugin_warns_once_and_the_rest_works(broken_env):
    out = run(broken_env, "codecs")
    assert out.returncode == 0
    assert "hsv" in out.stdout
    warnings = [line for line in out.stderr.splitlines() if "broken" in line]
    assert len(warnings) == 1 and "ModuleNotFoundError" in warnings[0]
    assert "Traceback" not in out.stderr


def test_plugins_lists_the_error(broken_env):
    out = run(broken_env, "plugins", "--json")
    assert out.returncode == 0
    info = {p["name"]: p for p in json.loads(out.stdout)}
    assert info["broken"]["errors"] and "module_that_does_not_exist" in info["broken"]["errors"][0]
    assert not info["hsv"]["errors"] and "hsv-transformer" in info["hsv"]["provides"]["models"]


def test_strict_mode_turns_load_failures_into_errors(broken_env):
    out = run({**broken_env, "ARTFORGE_STRICT_PLUGINS": "1"}, "codecs")
    assert out.returncode != 0
    assert "broken" in out.stderr and "Traceback" not in out.stderr
    # a file read under strict mode: the plugin is blamed, not the file
    tokens = Path(broken_env["PYTHONPATH"]) / "t.npz"
    assert run(broken_env, "encode", "-c", "hsv322", ROOT / "docs/images/emoji", "-o", tokens).returncode == 0
    out = run({**broken_env, "ARTFORGE_STRICT_PLUGINS": "1"}, "decode", tokens, "-o", tokens.with_suffix(".png"))
    assert out.returncode != 0 and out.stderr.startswith("Error: plugin 'broken'"), out.stderr


def test_install_and_uninstall_work_with_a_broken_plugin(broken_env):
    out = run(broken_env, "uninstall", "-y", "surely-not-installed-artforge-thing")
    assert out.returncode == 1 and "Traceback" not in out.stderr  # pip would only warn and exit 0
    assert "surely-not-installed-artforge-thing: not installed in this Python" in out.stderr
    out = run(broken_env, "install", "--help")
    assert out.returncode == 0 and "pip" in out.stdout


def test_load_only_selected_plugins(broken_env):
    out = run({**broken_env, "ARTFORGE_LOAD_PLUGINS": "hsv"}, "plugins", "--json")
    assert out.returncode == 0 and "broken" not in out.stderr
    assert [p["name"] for p in json.loads(out.stdout)] == ["hsv"]


class DupCodec(Codec):
    name = "hsv"
    description = "a second codec named hsv"
    spec_help = "hsv (impostor)"

    @classmethod
    def from_spec(cls, args):
        raise AssertionError("never built")


def test_a_third_party_cannot_take_a_first_party_name(capsys):
    pm = get_plugin_manager()
    plugin = types.SimpleNamespace(register_codecs=hookimpl(lambda register: register(DupCodec)))
    assert pm.register(plugin, "impostor")
    assert get_codec("hsv544").name == "hsv" and get_codec("hsv544").__class__ is not DupCodec
    err = capsys.readouterr().err
    assert "impostor" in err and "first-party plugin 'hsv' provides" in err


def test_duplicate_names_between_third_parties_are_an_error_naming_both(capsys):
    class Twin(DupCodec):
        name = "twin"

    pm = get_plugin_manager()
    for owner in ("one", "two"):
        assert pm.register(types.SimpleNamespace(register_codecs=hookimpl(lambda register: register(Twin))), owner)
    with pytest.raises(ArtforgeError, match=r"both plugins 'one' and 'two'"):
        get_codec("twin")
    assert "two" in capsys.readouterr().err
    get_codec("binary")  # other codecs still work


def test_misspelled_hook_is_caught(capsys):
    pm = get_plugin_manager()
    plugin = types.SimpleNamespace(register_codec=hookimpl(lambda register: None))
    assert not pm.register(plugin, "typo")
    assert pm.info["typo"].errors == ["invalid: unknown hook 'register_codec' (did you mean register_codecs?)"]
    assert "typo" in capsys.readouterr().err
    get_codec("hsv544")


def test_misspelled_hook_is_an_error_in_strict_mode(monkeypatch):
    monkeypatch.setenv("ARTFORGE_STRICT_PLUGINS", "1")
    pm = get_plugin_manager()
    plugin = types.SimpleNamespace(register_modles=hookimpl(lambda register: None))
    with pytest.raises(ArtforgeError, match="typo2"):
        pm.register(plugin, "typo2")


def test_a_hook_that_raises_is_isolated(runner, capsys):
    def boom(register):
        raise RuntimeError("kaboom")

    pm = get_plugin_manager()
    assert pm.register(types.SimpleNamespace(register_codecs=hookimpl(boom)), "boom")
    r = invoke(runner, "codecs", "--json")
    assert "hsv" in r.output
    assert "kaboom" in " ".join(pm.info["boom"].errors)


def test_lazy_registration_reports_a_missing_module(runner):
    pm = get_plugin_manager()
    plugin = types.SimpleNamespace(
        register_models=hookimpl(lambda register: register("ghost", "no_such_module_xyz:Ghost")))
    assert pm.register(plugin, "ghostly")
    r = invoke(runner, "train", "--plugin", "ghost", "--data", "x.h5", ok=False)
    assert "ghostly" in r.output and "no_such_module_xyz" in r.output


def test_a_broken_lazy_codec_does_not_break_the_others(runner, capsys, tmp_path):
    pm = get_plugin_manager()
    plugin = types.SimpleNamespace(
        register_codecs=hookimpl(lambda register: register("ghostcodec", "no_such_module_xyz:Ghost")))
    assert pm.register(plugin, "ghostly")
    assert get_codec("hsv544").spec == "hsv544"
    r = invoke(runner, "codecs", "--json")
    listed = {row["name"] for row in json.loads(r.stdout[r.stdout.index("["):])}
    assert {"hsv", "palette"} <= listed and "ghostcodec" not in listed
    assert "no_such_module_xyz" in r.output + capsys.readouterr().err
    assert any("no_such_module_xyz" in e for e in pm.info["ghostly"].errors)
    # naming the broken codec gives its import error, not "unknown codec"
    r = invoke(runner, "encode", "-c", "ghostcodec", str(EMOJI), "-o", str(tmp_path / "t.npz"), ok=False)
    assert "no_such_module_xyz" in r.output and "unknown codec" not in r.output


def test_load_plugins_names_an_unknown_plugin():
    r = run(subprocess_env(ARTFORGE_LOAD_PLUGINS="HSV,hsv"), "codecs", "--json")
    assert r.returncode == 0 and "'HSV', which no installed plugin is called" in r.stderr
    assert [row["name"] for row in json.loads(r.stdout)] == ["hsv"]


def test_registering_an_installed_plugin_again_keeps_it(also_load, tmp_path, monkeypatch, capsys):
    """The test recipe in docs/writing-plugins.md registers the hooks module by hand; with the plugin
    installed as well that is a no-op, and another object under its name is refused in one line."""
    fake_distribution(tmp_path, "artforge_gray", "gray", "gray_hooks", "from toy_plugin import register_codecs\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    also_load("gray")
    pm = get_plugin_manager()
    import gray_hooks

    assert pm.register(gray_hooks, "gray")
    assert "gray2" in pm.registry("codecs") and not capsys.readouterr().err
    assert not pm.register(types.SimpleNamespace(), "gray")
    assert not pm.register(gray_hooks, "gray-again")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all("'gray'" in line for line in err), err
    assert "gray2" in pm.registry("codecs") and pm.info["gray"].dist == "artforge_gray"
    assert not pm.info["gray"].errors and "gray-again" not in pm.info


class NotACodec:
    """Has a name, but is no Codec subclass."""

    name = "notcodec"


def plugin_warnings(text: str, plugin: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"artforge: warning: plugin {plugin!r}")]


def test_a_codec_that_is_not_a_codec_is_skipped(runner, tmp_path):
    def hook(register):
        register(NotACodec)
        register("lazycodec", "toy_plugin:red_renderer")  # a lazy target that is no codec either
        register(Gray2Codec)

    pm = get_plugin_manager()
    assert pm.register(types.SimpleNamespace(register_codecs=hookimpl(hook)), "sloppy")
    r = invoke(runner, "codecs", "--json")
    listed = {row["name"] for row in json.loads(r.stdout)}
    assert {"hsv", "gray2"} <= listed and not {"notcodec", "lazycodec"} & listed  # the rest of its hook ran
    warnings = plugin_warnings(r.stderr, "sloppy")
    assert len(warnings) == 2 and "'notcodec'" in warnings[0] and "'lazycodec'" in warnings[1], r.stderr
    assert len(pm.info["sloppy"].errors) == 2
    r = invoke(runner, "encode", "-c", "notcodec", EMOJI, "-o", tmp_path / "t.npz", ok=False)
    assert "'sloppy'" in r.output and "Codec" in r.output and "internal error" not in r.output
    r = invoke(runner, "encode", "-c", "lazycodec", EMOJI, "-o", tmp_path / "t.npz", ok=False)
    assert "'sloppy'" in r.output and "Codec" in r.output and "internal error" not in r.output


def test_a_model_without_a_dataclass_config_is_skipped(runner):
    from artforge.models import ArtModel

    class NoConfig(ArtModel):
        name = "no-config"

    def hook(register):
        register(NoConfig)
        register("lazymodel", "toy_plugin:Gray2Codec")  # a lazy target that is no model

    pm = get_plugin_manager()
    assert pm.register(types.SimpleNamespace(register_models=hookimpl(hook)), "sloppy")
    r = invoke(runner, "models", "--json")
    listed = {row["name"] for row in json.loads(r.stdout)}
    assert "hsv-transformer" in listed and not {"no-config", "lazymodel"} & listed
    warnings = plugin_warnings(r.stderr, "sloppy")
    assert len(warnings) == 2 and "Config" in warnings[0] and "ArtModel" in warnings[1], r.stderr
    for name in ("no-config", "lazymodel"):
        r = invoke(runner, "train", "--plugin", name, "--data", "x.h5", ok=False)
        assert "'sloppy'" in r.output and repr(name) in r.output and "internal error" not in r.output


def test_common_registration_slips_are_named(runner):
    """A codec instance, a lazy target without its colon, a model's codecs written ("gray2") (a str, whose
    `in` would match any part of a family name): each skipped with a line that says what to write."""
    from artforge.models import ArtModel

    @dataclass
    class Cfg:
        size: int = 1

    class StrCodecs(ArtModel):
        name = "str-codecs"
        Config = Cfg
        codecs = ("gray2")

    def codecs(register):
        register(Gray2Codec())
        register("dotted", "toy_plugin.Gray2Codec")

    plugin = types.SimpleNamespace(register_codecs=hookimpl(codecs),
                                   register_models=hookimpl(lambda register: register(StrCodecs)))
    pm = get_plugin_manager()
    assert pm.register(plugin, "slips")
    r = invoke(runner, "codecs", "--json")
    warnings = plugin_warnings(r.stderr, "slips")
    assert "is a codec instance; register the class, Gray2Codec" in warnings[0], r.stderr
    assert "'toy_plugin.Gray2Codec' is a string but not a lazy 'package.module:attr' target" in warnings[1]
    r = invoke(runner, "train", "--plugin", "str-codecs", "--data", "x.h5", ok=False)
    assert "StrCodecs.codecs is the str 'gray2'; make it a tuple, ('gray2',)" in r.output


def test_renderers_and_datasets_that_break_their_contract_are_skipped(runner):
    plugin = types.SimpleNamespace(
        register_renderers=hookimpl(lambda register: register("gray2", 42)),
        register_datasets=hookimpl(lambda register: register("loop", "builtin:loop")))
    pm = get_plugin_manager()
    assert pm.register(plugin, "sloppy")
    assert "gray2" not in pm.registry("renderers") and "hsv" in pm.registry("renderers")
    r = invoke(runner, "datasets", "--json")
    assert "builtin:emoji32" in r.stdout and "builtin:loop" not in r.stdout
    assert len(pm.info["sloppy"].errors) == 2


def test_a_data_set_whose_file_is_missing_is_blamed_on_its_plugin(runner, tmp_path, monkeypatch):
    """A package that does not install its data file, or a path relative to the plugin's folder, is the
    plugin's mistake: the error names the plugin and the data set, not a path the user never typed."""
    monkeypatch.chdir(tmp_path)
    plugin = types.SimpleNamespace(register_datasets=hookimpl(lambda register: (
        register("gone", tmp_path / "data" / "gone.npz", codec="hsv322"),
        register("relative", "data/gone.npz", codec="hsv322"))))
    assert get_plugin_manager().register(plugin, "leaky")
    r = invoke(runner, "data", "build", "builtin:gone", "-o", tmp_path / "c.h5", ok=False)
    assert "plugin 'leaky' registers data set 'gone'" in r.output and "package data" in r.output
    r = invoke(runner, "train", "--plugin", "hsv-transformer", "--data", "builtin:relative", "-o", tmp_path / "run",
               ok=False)
    assert "data set 'relative'" in r.output and "Path(__file__).parent" in r.output
    assert not (tmp_path / "run").exists()


def test_a_data_sets_unusable_default_codec_is_blamed_on_its_plugin(runner, tmp_path):
    plugin = types.SimpleNamespace(register_datasets=hookimpl(
        lambda register: register("typo", tmp_path, codec="grey4")))
    assert get_plugin_manager().register(plugin, "typist")
    r = invoke(runner, "data", "build", "builtin:typo", "-o", tmp_path / "c.h5", ok=False)
    assert ("plugin 'typist' gives data set 'typo' the default codec 'grey4': unknown codec 'grey4'; choose one "
            "with --codec") in r.output and "known codecs" not in r.output


def test_a_bad_registration_is_an_error_in_strict_mode(runner, monkeypatch):
    monkeypatch.setenv("ARTFORGE_STRICT_PLUGINS", "1")
    assert get_plugin_manager().register(
        types.SimpleNamespace(register_codecs=hookimpl(lambda register: register(NotACodec))), "sloppy")
    r = invoke(runner, "codecs", ok=False)
    assert r.output.startswith("Error: plugin 'sloppy'") and "'notcodec'" in r.output
    assert len(r.output.splitlines()) == 1


SQUATTER = '''
from artforge.codecs import Codec
from artforge.hookspecs import hookimpl


def family(family_name):
    class Squat(Codec):
        name = family_name
        spec_help = family_name

        @classmethod
        def from_spec(cls, args):
            raise AssertionError(f"{family_name} was asked to build {args!r}")

    return Squat


@hookimpl
def register_codecs(register):
    register(family("hsv5"))  # would take hsv544 from hsv
    register(family("pal"))  # the beginning of palette: "palette" could mean pal + "ette"
    register(family("squat"))
'''


def test_a_codec_family_that_overlaps_another_is_refused(also_load, runner, tmp_path, monkeypatch, capsys):
    """Specs go to the longest matching family name, so a family named hsv5 would take hsv544 from
    the hsv codec (data build builtin:emoji32 included) without a word. Installed first on the path,
    the third-party plugin still loses to the first-party one."""
    fake_distribution(tmp_path, "artforge_squat", "squat", "squat_hooks", SQUATTER)
    monkeypatch.syspath_prepend(str(tmp_path))
    also_load("squat")
    pm = get_plugin_manager()
    assert get_codec("hsv544").spec == "hsv544" and get_codec("palette:bw").spec == "palette:bw"
    assert "squat" in pm.registry("codecs")  # its other family is kept
    assert len(plugin_warnings(capsys.readouterr().err, "squat")) == 2
    r = invoke(runner, "plugins", "--json")
    info = {p["name"]: p for p in json.loads(r.stdout)}
    assert info["squat"]["provides"]["codecs"] == ["squat"]
    errors = info["squat"]["errors"]
    assert len(errors) == 2 and "'hsv5'" in errors[0] and "'hsv'" in errors[0] and "'palette'" in errors[1]
    assert all(not p["errors"] for name, p in info.items() if p["dist"] == "artforge")
    with pytest.raises(ArtforgeError, match="'pal'.*'palette'"):
        get_codec("pal")
    pm.unregister("squat")
    monkeypatch.setenv("ARTFORGE_STRICT_PLUGINS", "1")
    assert pm.register(sys.modules["squat_hooks"], "squat")
    with pytest.raises(ArtforgeError, match="plugin 'squat'.*'hsv5'"):
        get_codec("hsv544")


@pytest.fixture
def fresh_cli():
    """Plugin commands join the one `artforge` group once per process: add them afresh, and put the
    group back as it was afterwards."""
    from artforge.cli import cli

    saved = dict(cli.commands)
    cli._plugins_from = None
    yield cli
    cli.commands.clear()
    cli.commands.update(saved)
    cli._plugins_from = None


def command_plugins():
    import click

    @click.command("encode")
    def fake_encode():
        """HIJACKED encode."""

    @click.command()
    def hello():
        """Say hello."""
        click.echo("first")

    @click.command("hello")
    def hello_again():
        click.echo("second")

    def hijack(cli):
        cli.add_command(fake_encode)
        cli.commands["decode"] = fake_encode  # behind add_command's back
        cli.add_command(hello)

    return (types.SimpleNamespace(register_commands=hookimpl(hijack)),
            types.SimpleNamespace(register_commands=hookimpl(lambda cli: cli.add_command(hello_again))))


def test_plugin_commands_cannot_replace_core_or_other_plugins_commands(runner, fresh_cli):
    hijacker, copycat = command_plugins()
    pm = get_plugin_manager()
    assert pm.register(hijacker, "hijacker") and pm.register(copycat, "copycat")
    r = invoke(runner, "--help")
    assert "HIJACKED" not in r.stdout and "hello" in r.stdout
    warnings = plugin_warnings(r.stderr, "hijacker")
    assert len(warnings) == 2 and "'encode'" in warnings[0] and "'decode'" in warnings[1], r.stderr
    warnings = plugin_warnings(r.stderr, "copycat")
    assert len(warnings) == 1 and "'hello'" in warnings[0] and "'hijacker'" in warnings[0], r.stderr
    assert invoke(runner, "hello").stdout.strip() == "first"
    assert "HIJACKED" not in invoke(runner, "encode", "--help").stdout
    info = {p["name"]: p for p in json.loads(invoke(runner, "plugins", "--json").stdout)}
    assert info["hijacker"]["provides"]["commands"] == ["hello"] and len(info["hijacker"]["errors"]) == 2
    assert info["copycat"]["provides"]["commands"] == [] and len(info["copycat"]["errors"]) == 1
    assert info["hsv"]["provides"]["commands"] == ["complete"]


def test_commands_of_a_plugin_registered_by_hand_follow_the_plugin_manager(runner, monkeypatch):
    """The test recipe in docs/writing-plugins.md: after any command has listed the group's commands,
    a plugin registered by hand still gets its command, and a reset manager takes it away again."""
    import click

    @click.command("hello-by-hand")
    def hello():
        click.echo("hello")

    monkeypatch.setenv("ARTFORGE_LOAD_PLUGINS", "")
    invoke(runner, "--help")  # lists (adds) the plugin commands there are: none
    assert get_plugin_manager().register(
        types.SimpleNamespace(register_commands=hookimpl(lambda cli: cli.add_command(hello))), "byhand")
    assert invoke(runner, "hello-by-hand").output.strip() == "hello"
    reset_plugin_manager()
    assert "No such command" in invoke(runner, "hello-by-hand", ok=False).output
    assert "hello-by-hand" not in invoke(runner, "--help").output


def test_a_command_clash_is_an_error_in_strict_mode(fresh_cli, monkeypatch):
    monkeypatch.setenv("ARTFORGE_STRICT_PLUGINS", "1")
    hijacker, _ = command_plugins()
    assert get_plugin_manager().register(hijacker, "hijacker")
    with pytest.raises(ArtforgeError, match="plugin 'hijacker'.*'encode'"):
        get_plugin_manager().add_commands(fresh_cli)
    assert "HIJACKED" not in (fresh_cli.commands["encode"].help or "")


def test_a_hook_function_without_hookimpl_is_warned_about(capsys):
    def register_codecs(register):
        register(Gray2Codec)

    module = types.ModuleType("forgetful_hooks")
    module.register_codecs = register_codecs
    pm = get_plugin_manager()
    assert pm.register(module, "forgetful")
    warnings = plugin_warnings(capsys.readouterr().err, "forgetful")
    assert len(warnings) == 1 and "register_codecs" in warnings[0] and "@hookimpl" in warnings[0]
    assert pm.info["forgetful"].errors and "gray2" not in pm.registry("codecs")


def test_a_hook_with_a_wrong_argument_name_is_one_line(capsys):
    @hookimpl
    def register_codecs(reg):
        reg(Gray2Codec)

    pm = get_plugin_manager()
    assert not pm.register(types.SimpleNamespace(register_codecs=register_codecs), "misnamed")
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("artforge: warning: plugin 'misnamed'")
    assert "register_codecs(reg)" in err and "register_codecs(register)" in err
    assert pm.info["misnamed"].errors and "hsv" in pm.registry("codecs")


@pytest.fixture
def fake_pip(monkeypatch):
    """pip replaced by a recorder that writes the --report pip would: what it was asked to install."""
    calls: list[list[str]] = []

    def call(cmd, *args, **kwargs):
        calls.append(cmd)
        if "--report" in cmd:
            Path(cmd[cmd.index("--report") + 1]).write_text(json.dumps({"install": [
                {"requested": True, "metadata": {"name": "plain-lib", "version": "0.1"}},
                {"requested": True, "metadata": {"name": "artforge_gray", "version": "0.1"}},
                {"requested": False, "metadata": {"name": "a-dependency", "version": "1.0"}}]}))
        return 0

    monkeypatch.setattr(subprocess, "call", call)
    return calls


def test_install_warns_about_a_package_that_adds_no_plugin(runner, fake_pip, tmp_path, monkeypatch):
    fake_distribution(tmp_path, "artforge_gray", "gray", "gray_hooks", "")
    (tmp_path / "plain_lib-0.1.dist-info").mkdir()
    (tmp_path / "plain_lib-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: plain-lib\n"
                                                                    "Version: 0.1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    r = invoke(runner, "install", "-e", tmp_path / "plain-lib", "artforge-gray")
    assert len(fake_pip) == 1 and fake_pip[0][3:6] == ["install", "-e", str(tmp_path / "plain-lib")]
    warnings = [line for line in r.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "plain-lib 0.1 adds no artforge plugin" in warnings[0], r.stderr


def test_uninstall_refuses_artforge_itself(runner, fake_pip):
    for name, says in [("artforge", "is artforge itself"), ("Pluggy", "artforge needs it"),
                       ("hsv", "ships with artforge")]:
        r = invoke(runner, "uninstall", "-y", name, ok=False)
        assert says in r.output and len(r.output.splitlines()) == 1, r.output
    assert not fake_pip


def test_an_entry_point_name_taken_twice_is_reported(also_load, tmp_path, monkeypatch, capsys):
    """A third-party distribution whose entry point is called hsv, found first on the path, used to
    replace the first-party hsv plugin without a word; two entry points naming one module left the
    second listed with no hooks."""
    fake_distribution(tmp_path, "artforge_evil", "hsv", "evil_hooks", SQUATTER.replace('"squat"', '"evil"'))
    (tmp_path / "artforge_evil-0.1.dist-info" / "entry_points.txt").write_text(
        "[artforge]\nhsv = evil_hooks\nevil = evil_hooks\nevil-too = evil_hooks\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    also_load("evil", "evil-too")
    pm = get_plugin_manager()
    assert pm.info["hsv"].dist == "artforge" and get_codec("hsv544").spec == "hsv544"
    assert pm.info["evil"].hooks == ["register_codecs"] and "evil" in pm.registry("codecs")
    assert any("artforge_evil" in e for e in pm.info["hsv"].errors)
    assert any("'evil'" in e for e in pm.info["evil-too"].errors)
    err = capsys.readouterr().err
    assert len(plugin_warnings(err, "hsv")) == 1 and len(plugin_warnings(err, "evil-too")) == 1


def test_a_taken_entry_point_name_does_not_claim_a_failed_plugin_loaded(also_load, tmp_path, monkeypatch, capsys):
    """The second of two distributions with one entry-point name is not loaded; when the first
    failed to load, the warning must not say that it is loaded."""
    for dist, source in (("twin_b", ""), ("twin_a", "import module_that_does_not_exist\n")):
        fake_distribution(tmp_path / dist, dist, "twin", f"{dist}_hooks", source)
        monkeypatch.syspath_prepend(str(tmp_path / dist))  # twin_a ends first on the path
    also_load("twin")
    pm = get_plugin_manager()
    assert pm.info["twin"].dist == "twin_a" and pm.pm.get_plugin("twin") is None
    warnings = plugin_warnings(capsys.readouterr().err, "twin")
    assert len(warnings) == 2 and "failed to load" in warnings[0], warnings
    assert "twin_b 0.1, which is not loaded" in warnings[1] and "that of twin_a is loaded" not in warnings[1]
    assert "that of twin_a came first, though it failed to load" in warnings[1], warnings


def test_a_plugin_that_calls_sys_exit_is_contained(also_load, runner, tmp_path, monkeypatch):
    """A plugin module that exits when something it needs is missing (raise SystemExit / sys.exit())
    took every command down with it, `--help` included; now it is one more broken plugin."""
    fake_distribution(tmp_path, "artforge_quitter", "quitter", "quitter_hooks",
                      "raise SystemExit('quitter needs Python 3.99')\n")
    (tmp_path / "quitter_lazy.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    also_load("quitter")

    def exits(register):
        sys.exit("quitting in the hook")

    def exits_too(cli):
        sys.exit("quitting in register_commands")

    pm = get_plugin_manager()
    assert pm.info["quitter"].errors == ["failed to load: SystemExit: quitter needs Python 3.99"]
    assert pm.register(types.SimpleNamespace(register_codecs=hookimpl(exits), register_commands=hookimpl(exits_too)),
                       "hookquitter")
    assert pm.register(types.SimpleNamespace(
        register_codecs=hookimpl(lambda register: register("lazyquit", "quitter_lazy:Codec"))), "lazyquitter")
    assert "complete" in invoke(runner, "--help").stdout  # the hsv plugin's command
    listed = {row["name"] for row in json.loads(invoke(runner, "codecs", "--json").stdout)}
    assert "hsv" in listed and "lazyquit" not in listed
    assert any("SystemExit: quitting in the hook" in e for e in pm.info["hookquitter"].errors)
    assert any("SystemExit: quitting in register_commands" in e for e in pm.info["hookquitter"].errors)
    assert any("SystemExit: 3" in e for e in pm.info["lazyquitter"].errors)
    r = invoke(runner, "encode", "-c", "lazyquit", EMOJI, "-o", tmp_path / "t.npz", ok=False)
    assert "'lazyquitter'" in r.output and "SystemExit" in r.output


def test_a_command_that_click_cannot_list_is_refused(runner, fresh_cli):
    """A command without a name, or a plain function passed to add_command (no @click.command()), or either
    set into cli.commands directly: click took them and then failed in every `--help` with a traceback."""
    import click

    @click.command("named-ok")
    def named_ok():
        click.echo("ok")

    def forgot_the_decorator():
        pass

    def hook(cli):
        cli.add_command(named_ok)
        cli.add_command(click.Command(None))
        cli.add_command(forgot_the_decorator, "bare")
        cli.commands[None] = named_ok
        cli.commands["direct"] = "not a command"

    pm = get_plugin_manager()
    assert pm.register(types.SimpleNamespace(register_commands=hookimpl(hook)), "nameless")
    r = invoke(runner, "--help")
    assert "named-ok" in r.stdout and "bare" not in r.stdout and "direct" not in r.stdout
    warnings = plugin_warnings(r.stderr, "nameless")
    assert len(warnings) == 4, r.stderr
    assert "without a name" in warnings[0] and "not a click command" in warnings[1]
    assert invoke(runner, "named-ok").stdout.strip() == "ok"
    info = {p["name"]: p for p in json.loads(invoke(runner, "plugins", "--json").stdout)}
    assert info["nameless"]["provides"]["commands"] == ["named-ok"] and len(info["nameless"]["errors"]) == 4


def test_register_takes_only_the_arguments_its_signature_has(runner, tmp_path):
    """register(name, path, "a description", "hsv322") dropped the description and the codec, and a
    misspelled keyword (desciption=) was kept as an unused extra: both without a word."""
    def datasets(register):
        register("by-position", tmp_path, "given by position", "hsv322")
        register("by-keyword", tmp_path, description="given by keyword", codec="hsv322")
        register("misspelt", tmp_path, desciption="typo")
        register("too-many", tmp_path, "d", "hsv322", "extra")
        register("twice", tmp_path, "d", description="d")

    def codecs(register):
        register(Gray2Codec, "gray2")  # the lazy form is (name, target): this is neither

    pm = get_plugin_manager()
    assert pm.register(types.SimpleNamespace(register_datasets=hookimpl(datasets), register_codecs=hookimpl(codecs)),
                       "wordy")
    rows = {row["name"]: row for row in json.loads(invoke(runner, "datasets", "--json").stdout)}
    assert rows["builtin:by-position"]["description"] == "given by position"
    assert rows["builtin:by-position"]["codec"] == "hsv322"
    assert rows["builtin:by-keyword"]["description"] == "given by keyword"
    assert not {"builtin:misspelt", "builtin:too-many", "builtin:twice"} & set(rows)
    errors = pm.info["wordy"].errors
    assert len(errors) == 3 and "the keyword desciption" in errors[0] and "5 arguments" in errors[1], errors
    assert "description twice" in errors[2] and "register(name, path, description='', codec=None)" in errors[0]
    r = invoke(runner, "data", "build", "builtin:misspelt", "-o", tmp_path / "c.h5", ok=False)
    assert "'wordy'" in r.output and "desciption" in r.output
    r = invoke(runner, "codecs", "--json")
    assert "gray2" not in r.stdout and "register(codec_class) or register(name, 'package.module:Class')" in r.stderr


@pytest.mark.parametrize("value, strict", [("true", True), ("Yes", True), ("1", True), ("0", False),
                                           ("false", False), ("junk", False)])
def test_strict_plugins_reads_the_usual_on_and_off_words(monkeypatch, capsys, value, strict):
    """ARTFORGE_STRICT_PLUGINS=true was taken as off (only "1" counted), without a word; a value that is
    neither on nor off is off with one warning line."""
    import artforge.errors

    monkeypatch.setattr(artforge.errors, "_flags_warned", set())
    monkeypatch.setenv("ARTFORGE_STRICT_PLUGINS", value)
    plugin = types.SimpleNamespace(register_codec=hookimpl(lambda register: None))
    if strict:
        with pytest.raises(ArtforgeError, match="typo"):
            get_plugin_manager().register(plugin, "typo")
    else:
        assert not get_plugin_manager().register(plugin, "typo")
    err = capsys.readouterr().err
    assert ("ARTFORGE_STRICT_PLUGINS='junk' is neither on" in err) == (value == "junk"), err


def test_debug_0_is_off(monkeypatch):
    from artforge.errors import env_flag

    for value, on in (("0", False), ("off", False), ("", False), ("1", True), ("yes", True)):
        monkeypatch.setenv("ARTFORGE_DEBUG", value)
        assert env_flag("ARTFORGE_DEBUG") is on


def test_uninstall_names_the_package_of_a_plugin(runner, fake_pip, tmp_path, monkeypatch):
    """`artforge plugins` lists plugin names; `artforge uninstall braille` said "not installed" where the
    package is artforge-braille."""
    fake_distribution(tmp_path, "artforge_gray", "gray", "gray_hooks", "")
    monkeypatch.syspath_prepend(str(tmp_path))
    r = invoke(runner, "uninstall", "-y", "gray", ok=False)
    assert "gray: this is the name of a plugin" in r.output and "artforge uninstall artforge_gray" in r.output
    assert len(r.output.splitlines()) == 1 and not fake_pip
    invoke(runner, "uninstall", "-y", "artforge_gray")
    assert fake_pip and fake_pip[0][-1] == "artforge_gray"


def test_uninstall_refuses_what_artforge_needs_through_another_package(runner, fake_pip):
    """torch needs filelock: uninstalling it broke artforge as surely as uninstalling torch did, and only
    artforge's direct dependencies were refused. A dev extra (pytest) is not needed to run."""
    r = invoke(runner, "uninstall", "-y", "filelock", ok=False)
    assert "filelock: artforge needs it to run (through torch)" in r.output and len(r.output.splitlines()) == 1
    assert not fake_pip
    invoke(runner, "uninstall", "-y", "pytest")
    assert fake_pip and fake_pip[0][-1] == "pytest"


def test_uninstall_without_a_terminal_asks_for_yes(runner, fake_pip, tmp_path, monkeypatch):
    """Without -y pip asks for confirmation; with no terminal (a script, a pipe) it failed on EOF with
    a traceback and `pip uninstall failed with exit code 2`."""
    fake_distribution(tmp_path, "artforge_gray", "gray", "gray_hooks", "")
    monkeypatch.syspath_prepend(str(tmp_path))
    r = invoke(runner, "uninstall", "artforge_gray", ok=False)  # CliRunner's stdin is no terminal
    assert "add -y" in r.output and len(r.output.splitlines()) == 1 and not fake_pip


def test_a_hook_named_with_specname_is_a_hook(capsys):
    """pluggy's @hookimpl(specname="register_codecs") on a function of another name was refused as an
    unknown hook, and the whole plugin with it; a specname that is no hook is still named."""
    @hookimpl(specname="register_codecs")
    def gray_codecs(register):
        register(Gray2Codec)

    @hookimpl(specname="register_codec")
    def typo(register):
        pass

    pm = get_plugin_manager()
    assert pm.register(types.SimpleNamespace(gray_codecs=gray_codecs), "specnamed")
    assert "gray2" in pm.registry("codecs") and not pm.info["specnamed"].errors
    assert pm.info["specnamed"].hooks == ["register_codecs"]
    assert not pm.register(types.SimpleNamespace(typo=typo), "specnamed-typo")
    assert pm.info["specnamed-typo"].errors == [
        "invalid: unknown hook 'register_codec' (did you mean register_codecs?)"]


def test_an_entry_point_without_hooks_is_reported(also_load, tmp_path, monkeypatch, capsys):
    """An entry point naming the package (my_plugin) where the hooks are in my_plugin.hooks loaded
    "fine": listed with no hooks, no error, and none of its codecs."""
    fake_distribution(tmp_path, "artforge_hollow", "hollow", "hollow_pkg", "'''hooks live elsewhere'''\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    also_load("hollow")
    pm = get_plugin_manager()
    assert len(pm.info["hollow"].errors) == 1 and "has no hooks" in pm.info["hollow"].errors[0]
    assert "my_plugin.hooks" in pm.info["hollow"].errors[0]
    assert len(plugin_warnings(capsys.readouterr().err, "hollow")) == 1
    assert not any(info.errors for info in pm.info.values() if info.name != "hollow")


def test_what_a_plugin_prints_goes_to_stderr(also_load, runner, tmp_path, monkeypatch):
    """A plugin printing on import, in a hook or in a lazy registration's import wrote into stdout, so
    `plugins --json`, `codecs --json` and `datasets --json` gave no JSON a program could read."""
    fake_distribution(tmp_path, "artforge_chatty", "chatty", "chatty_hooks", """
        print("CHATTY import")
        from artforge.hookspecs import hookimpl

        @hookimpl
        def register_codecs(register):
            print("CHATTY codecs")
            register("chatty", "chatty_codec:ChattyCodec")

        @hookimpl
        def register_datasets(register):
            print("CHATTY datasets")

        @hookimpl
        def register_commands(cli):
            print("CHATTY commands")
        """)
    (tmp_path / "chatty_codec.py").write_text(
        "print('CHATTY lazy')\nfrom toy_plugin import Gray2Codec\n\n\n"
        "class ChattyCodec(Gray2Codec):\n    name = 'chatty'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    also_load("chatty")
    said = set()
    for command in ("plugins", "codecs", "datasets"):
        r = invoke(runner, command, "--json")
        listed = json.loads(r.stdout)  # nothing but the JSON
        assert listed and "CHATTY" not in r.stdout
        said |= {line for line in r.stderr.splitlines() if line.startswith("CHATTY")}
    assert said == {"CHATTY import", "CHATTY codecs", "CHATTY datasets", "CHATTY commands", "CHATTY lazy"}
    assert not get_plugin_manager().info["chatty"].errors


@pytest.mark.parametrize("marker", ["hookwrapper", "wrapper"])
def test_a_wrapper_hook_is_refused(runner, capsys, marker):
    """A hook marked hookwrapper=True or wrapper=True was called as a plain function: its generator was
    never run, so it registered nothing, without a word."""
    def register_codecs(register):
        register(Gray2Codec)
        yield

    plugin = types.SimpleNamespace(register_codecs=hookimpl(**{marker: True})(register_codecs))
    pm = get_plugin_manager()
    assert not pm.register(plugin, "wrapping")
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("artforge: warning: plugin 'wrapping' invalid: "), err
    assert f"register_codecs is marked {marker}=True" in err
    info = {p["name"]: p for p in json.loads(invoke(runner, "plugins", "--json").stdout)}
    assert info["wrapping"]["errors"] == [err.strip().removeprefix("artforge: warning: plugin 'wrapping' ")]
    assert "gray2" not in pm.registry("codecs") and "hsv" in pm.registry("codecs")


def test_render_names_a_codec_without_a_renderer(runner, tmp_path):
    """`render` on tokens of a codec whose plugin registers no renderer said "unknown renderer 'gray2'",
    as if the user had mistyped a name they never gave."""
    plugin = types.SimpleNamespace(register_codecs=hookimpl(lambda register: register(Gray2Codec)))
    assert get_plugin_manager().register(plugin, "bare")
    from PIL import Image

    Image.new("RGBA", (4, 4), (255, 255, 255, 255)).save(tmp_path / "white.png")
    invoke(runner, "encode", "-c", "gray2", tmp_path / "white.png", "-o", tmp_path / "t.npz")
    r = invoke(runner, "render", tmp_path / "t.npz", "-o", tmp_path / "t.png", ok=False)
    assert r.stderr.strip() == ("Error: codec gray2 has no renderer (plugin 'bare' registers none); `artforge "
                                "decode` makes pictures with the codec itself: artforge decode TOKENS -o PICTURE")
    assert not (tmp_path / "t.png").exists()
    invoke(runner, "decode", tmp_path / "t.npz", "-o", tmp_path / "t.png")


def test_uninstall_goes_by_the_name_of_a_requirement(runner, fake_pip, tmp_path, monkeypatch):
    """`uninstall pkg==1.0` (or pkg[extra], pkg>=1) said "not installed", and `torch==2.4` or `artforge[dev]`
    slipped past the refusals to pip, which goes by the name alone and would have removed them."""
    for package, says in [("artforge[dev]", "artforge: this is artforge itself"),
                          ("torch==2.13.0", "torch: artforge needs it to run"),
                          ("Pluggy >= 1", "Pluggy: artforge needs it to run"),
                          ("filelock[x]>=0; python_version > '3'",
                           "filelock: artforge needs it to run (through torch)"),
                          ("hsv==0.1", "hsv: this plugin ships with artforge")]:
        r = invoke(runner, "uninstall", "-y", package, ok=False)
        assert r.stderr.startswith(f"Error: {says}") and len(r.output.splitlines()) == 1, r.output
    r = invoke(runner, "uninstall", "-y", "./gray", ok=False)
    assert r.stderr.strip() == ("Error: './gray' is not a package name (uninstall takes names, as `artforge "
                                "plugins` and pip list them)")
    assert not fake_pip
    fake_distribution(tmp_path, "artforge_gray", "gray", "gray_hooks", "")
    monkeypatch.syspath_prepend(str(tmp_path))
    for package in ("artforge_gray==0.1", "artforge-gray[extra]", "artforge_gray>=0.2"):
        r = invoke(runner, "uninstall", "-y", package)
        assert fake_pip[-1][-2:] == ["-y", package[:13]]  # pip is given the name
        assert f"pip uninstalls by name: {package} is taken as {package[:13]} (installed: 0.1)" in r.stderr


def test_messages_say_data_set(runner, tmp_path):
    """The docs say "data set"; messages about registered data sets said "dataset"."""
    def datasets(register):
        register("loop", "builtin:loop")
        register("", tmp_path)
        register("twice", tmp_path)

    for name in ("wordy", "wordier"):  # two functions: equal SimpleNamespaces are one plugin to pluggy
        hook = hookimpl(lambda register: datasets(register))
        assert get_plugin_manager().register(types.SimpleNamespace(register_datasets=hook), name)
    r = invoke(runner, "data", "build", "builtin:nope", "-o", tmp_path / "c.h5", ok=False)
    assert r.stderr.splitlines()[-1].startswith("Error: unknown data set 'nope'; known: "), r.stderr
    errors = get_plugin_manager().info["wordier"].errors
    assert errors[0].startswith("registers data set 'loop' that artforge cannot use")
    assert errors[1].startswith("registers a data set without a name")
    assert errors[2] == "registers data set 'twice', which plugin 'wordy' registers too"
    r = invoke(runner, "data", "build", "builtin:twice", "-o", tmp_path / "c.h5", ok=False)
    assert r.stderr.splitlines()[-1].startswith("Error: data set 'twice' is registered by both plugins 'wordy' "
                                                "and 'wordier'"), r.stderr
    assert "dataset" not in " ".join(errors + get_plugin_manager().info["wordy"].errors)


def test_sigterm_while_a_plugin_runs_stops_the_command(also_load, tmp_path, monkeypatch):
    """SIGTERM raises Terminated (a SystemExit, see artforge.signals) wherever the process is, most likely
    while plugins import torch: it must stop the command, not be taken for a plugin that called sys.exit()
    and leave the command running without that plugin."""
    from artforge.plugins import PluginError
    from artforge.signals import Terminated

    fake_distribution(tmp_path, "artforge_slow", "slow", "slow_hooks",
                      "from artforge.signals import Terminated\nraise Terminated(143)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(Terminated):
        also_load("slow")
        get_plugin_manager()

    also_load()  # artforge's own plugins alone again

    def stopped(register):
        raise Terminated(143)

    pm = get_plugin_manager()
    assert pm.register(types.SimpleNamespace(register_codecs=hookimpl(stopped)), "stopped")
    with pytest.raises(Terminated):
        pm.registry("codecs")
    pm.unregister("stopped")
    import click

    assert pm.register(types.SimpleNamespace(register_commands=hookimpl(lambda cli: stopped(None))), "stopped2")
    with pytest.raises(Terminated):
        pm.add_commands(click.Group())
    pm.unregister("stopped2")
    (tmp_path / "slow_lazy.py").write_text("from artforge.signals import Terminated\nraise Terminated(143)\n")
    assert pm.register(types.SimpleNamespace(
        register_codecs=hookimpl(lambda register: register("slowlazy", "slow_lazy:Codec"))), "slowlazy")
    with pytest.raises((Terminated, PluginError)) as caught:
        _ = pm.registry("codecs").get("slowlazy").obj
    assert caught.type is Terminated
