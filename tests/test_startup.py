"""Start-up: listing methods and printing help import no heavy library, and the metadata the registry
reads from the source (without importing it) is exactly what the imported classes declare."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from selfsup import declarations
from selfsup.enums import Family, Modality
from selfsup.lazy_registry import Declaration, LazyRegistry, ScanResult
from selfsup.registry import (
    MethodInfo,
    _ENCODERS,
    _METHODS,
    encoder_names,
    get_method,
    list_methods,
    register_method,
)

HEAVY = ("torch", "lightning", "timm", "transformers", "torchvision", "numpy")


def _modules_after(code: str) -> set[str]:
    """The top-level modules a fresh interpreter has imported after running ``code``."""
    probe = textwrap.dedent(code) + "\nimport sys\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.splitlines()[-1].split())


@pytest.mark.parametrize("argv", [["methods"], ["methods", "--json"], ["methods", "--modality", "text"]])
def test_listing_methods_imports_no_heavy_library(argv):
    loaded = _modules_after(f"""
        import contextlib, io
        from selfsup.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            assert main({argv!r}) == 0
    """)
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


@pytest.mark.parametrize("argv", [["--help"], ["pretrain", "--help"], ["evaluate", "--help"]])
def test_help_imports_no_heavy_library(argv):
    loaded = _modules_after(f"""
        import contextlib, io
        from selfsup.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                main({argv!r})
            except SystemExit as exc:
                assert exc.code == 0
    """)
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_enums_and_registry_metadata_import_without_torch():
    loaded = _modules_after("""
        from selfsup.enums import Family, Modality
        from selfsup.registry import encoder_names, get_method, list_methods
        assert get_method("simclr", "image").family is Family.CONTRASTIVE
        assert "resnet18" in encoder_names() and list_methods(Modality.TEXT)
    """)
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_importing_the_encoder_and_method_packages_imports_no_backbone_library():
    loaded = _modules_after("""
        import selfsup.encoders, selfsup.methods
        from selfsup.registry import get_encoder_builder, get_method
        get_method("simclr", "image")
    """)
    assert not loaded & {"timm", "transformers", "torchvision", "lightning"}


def test_a_run_imports_only_its_method_and_encoder_modules():
    """An image run imports encoders/image.py (timm), never encoders/text.py or audio.py (transformers)."""
    assert {_ENCODERS.module_of(n) for n in ("tiny_cnn", "resnet18", "resnet18_cifar", "vit_micro")} == {
        "selfsup.encoders.image"}
    assert _ENCODERS.module_of("bert_tiny") == "selfsup.encoders.text"
    assert _METHODS.module_of("simcse") == _METHODS.module_of("simclr") == "selfsup.methods.simclr"


def test_types_still_exports_the_enums():
    from selfsup import types

    assert types.Family is Family and types.Modality is Modality and types.LossOutput


def test_the_source_scan_reads_every_builtin_statically():
    assert declarations.scan_methods().unreadable_modules == ()
    assert declarations.scan_encoders().unreadable_modules == ()


def test_scanned_metadata_equals_what_the_imported_classes_declare():
    """No second copy: the scan's view of each method/encoder is the imported object's own."""
    scanned_methods = {d.name: (MethodInfo(**d.meta), d.module) for d in declarations.scan_methods().declarations}
    scanned_encoders = {d.name: (d.meta, d.module) for d in declarations.scan_encoders().declarations}
    classes = _METHODS.load_all()
    builders = _ENCODERS.load_all()
    assert scanned_methods == {
        name: (MethodInfo(c.name, c.family, frozenset(c.modalities), c.paper), c.__module__) for name, c in classes.items()
    }
    assert scanned_encoders == {name: (encoder_names()[name], b.__module__) for name, b in builders.items()}
    assert get_method("simcse").family is Family.CONTRASTIVE  # inherited from SimCLR in the source


def test_get_method_cls_imports_the_method_module():
    info = get_method("byol", "image")
    from selfsup.methods.byol import BYOL

    assert info.cls is BYOL and info == MethodInfo("byol", Family.SELF_DISTILLATION, frozenset({Modality.IMAGE}),
                                                   BYOL.paper)


def test_a_plugin_method_registers_at_import_and_lists(monkeypatch):
    from selfsup.methods.base import Method

    monkeypatch.setattr(_METHODS, "_meta", dict(_METHODS._meta))
    monkeypatch.setattr(_METHODS, "_module", dict(_METHODS._module))
    monkeypatch.setattr(_METHODS, "_objects", dict(_METHODS._objects))

    @register_method
    class Plugin(Method):
        name = "plugin_test"
        family = Family.GENERATIVE
        modalities = frozenset({Modality.AUDIO})
        paper = "nobody"

    assert get_method("plugin_test", "audio").cls is Plugin
    assert "plugin_test" in [i.name for i in list_methods("audio")]
    with pytest.raises(ValueError, match="registered twice"):
        register_method(type("Clash", (Plugin,), {"name": "simclr"}))


def _write(tmp_path, name: str, source: str) -> None:
    (tmp_path / name).write_text(textwrap.dedent(source))


def test_scan_resolves_inheritance_and_falls_back_on_non_literals(tmp_path, monkeypatch):
    package = tmp_path / "methods"
    package.mkdir()
    _write(package, "base2.py", """
        class Shared(Method):
            family = Family.CLUSTERING
            modalities = frozenset({Modality.IMAGE, Modality.TEXT})
    """)
    _write(package, "good.py", """
        from .base2 import Shared

        @register_method
        class Good(Shared):
            name = "good"
            paper = ("A et al. "
                     "2020")

        @register_method
        class Child(Good):
            name = "child"
            modalities = {Modality.AUDIO}
    """)
    _write(package, "dynamic.py", """
        @register_method
        class Dynamic(Method):
            name = "dyn" + "amic"
            family = Family.PREDICTIVE
            modalities = frozenset({Modality.TEXT})
            paper = ""
    """)
    monkeypatch.setattr(declarations, "_PACKAGE_DIR", tmp_path)
    found = declarations.scan_methods()
    metas = {d.name: d.meta for d in found.declarations}
    assert metas["good"] == {"name": "good", "family": Family.CLUSTERING, "paper": "A et al. 2020",
                             "modalities": frozenset({Modality.IMAGE, Modality.TEXT})}
    assert metas["child"]["modalities"] == frozenset({Modality.AUDIO}) and metas["child"]["paper"] == "A et al. 2020"
    assert set(metas) == {"good", "child"}
    assert found.unreadable_modules == ("selfsup.methods.dynamic",)


def test_encoder_scan_reads_decorators_and_helpers_and_falls_back_on_loops(tmp_path, monkeypatch):
    package = tmp_path / "encoders"
    package.mkdir()
    _write(package, "plain.py", """
        @register_encoder("a", "the a")
        def a(): ...

        def _make(name, description, size):
            def builder(): ...
            return register_encoder(name, description)(builder)

        b = _make("b", "the b", 3)
    """)
    _write(package, "loop.py", """
        for n in ("c", "d"):
            register_encoder(n, n)(lambda: None)
    """)
    monkeypatch.setattr(declarations, "_PACKAGE_DIR", tmp_path)
    found = declarations.scan_encoders()
    assert [(d.name, d.meta, d.module) for d in found.declarations] == [
        ("a", "the a", "selfsup.encoders.plain"), ("b", "the b", "selfsup.encoders.plain")]
    assert found.unreadable_modules == ("selfsup.encoders.loop",)


def test_lazy_registry_reports_a_registration_its_module_did_not_make():
    registry: LazyRegistry[str, object] = LazyRegistry(
        "thing", lambda: ScanResult((Declaration("json_thing", "from json", "json"),), ("string",)))
    assert registry.names() == ["json_thing"] and registry.meta("json_thing") == "from json"
    with pytest.raises(RuntimeError, match="did not register thing 'json_thing'"):
        registry.load("json_thing")
    registry.register("json_thing", "real", obj := object(), "json")
    assert registry.load("json_thing") is obj and registry.meta("json_thing") == "real"
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("json_thing", "other", object(), "json")


def test_quiet_lightning_lowers_its_loggers_only_when_asked_and_imported(monkeypatch):
    import logging
    import types as pytypes

    from selfsup import library_logs

    names = ("lightning", "lightning.pytorch", "lightning.fabric")
    saved = {n: logging.getLogger(n).level for n in names}
    monkeypatch.setitem(sys.modules, "lightning.pytorch", sys.modules.get("lightning.pytorch", pytypes.ModuleType("x")))
    try:
        for name in names:
            logging.getLogger(name).setLevel(logging.INFO)  # what Lightning's import sets
        monkeypatch.setattr(library_logs, "QUIET", False)
        library_logs.quiet_lightning()  # the Python API: Lightning's logs stay as Lightning set them
        assert all(logging.getLogger(n).level == logging.INFO for n in names)
        monkeypatch.setattr(library_logs, "QUIET", True)
        library_logs.quiet_lightning()  # the CLI without -v
        assert all(logging.getLogger(n).level == logging.ERROR for n in names)
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def test_the_program_exits_fast_with_its_output_flushed_and_its_exit_code():
    """`python -m selfsup.cli` (like the `selfsup` script) leaves through ``run``: output complete, code kept."""
    done = subprocess.run([sys.executable, "-m", "selfsup.cli", "methods", "--json"], capture_output=True, text=True)
    assert done.returncode == 0 and [m["name"] for m in json.loads(done.stdout)] == [i.name for i in list_methods()]
    probe = "import selfsup.cli as c; c.main = lambda: print('x' * 100000, end='') or 3; c.run()"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 3 and done.stdout == "x" * 100000
