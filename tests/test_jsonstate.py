"""riskmodel.jsonstate: the strict JSON reader and the one manifest format of every saved kind."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from riskmodel import bundle
from riskmodel.fusion import persist
from riskmodel.jsonstate import (
    MANIFEST,
    BundleFormatError,
    BundleIntegrityError,
    FolderFormat,
    dump_json,
    jsonable,
    loads_strict,
    manifest_digest,
    parse_json,
)

TOY = FolderFormat(format="toy", version=3, kind="toy model", files=("a.json", "b.json"), optional=("b.json",),
                   folders=("sub",), fields={"sub": "sub"}, hints={"other": "load it with other.load"})


@pytest.mark.parametrize(("text", "message"), [
    ('{"a": 1, "a": 2}', "duplicate key 'a'"),
    ('{"outer": {"k": 1, "k": 1}}', "duplicate key 'k'"),
    ('{"p": NaN}', "NaN is not allowed"),
    ('[Infinity]', "Infinity is not allowed"),
    ('{"p": -Infinity}', "-Infinity is not allowed"),
])
def test_loads_strict_refuses_duplicate_keys_and_non_finite_numbers(text, message):
    with pytest.raises(ValueError, match=message):
        loads_strict(text)
    json.loads(text)  # what the standard reader accepts silently


def test_parse_json_names_the_file_and_wants_an_object():
    assert loads_strict(b'{"x": [1.5, null]}') == {"x": [1.5, None]}
    with pytest.raises(BundleFormatError, match=r"^f\.json: not valid JSON \(duplicate key 'x'\)") as info:
        parse_json(b'{"x": 1, "x": 1}', "f.json")
    assert info.value.path == "f.json"
    with pytest.raises(BundleFormatError, match="expected a JSON object at the top level, got list"):
        parse_json(b"[]", "f.json")
    with pytest.raises(BundleFormatError, match="not valid JSON"):
        parse_json(b"\xff{}", "f.json")


def test_jsonable_and_dump_json():
    obj = jsonable({"n": np.int64(3), "b": np.bool_(True), "v": np.arange(2.0), "t": (1, "x")}, "cfg")
    assert obj == {"n": 3, "b": True, "v": [0.0, 1.0], "t": [1, "x"]} and type(obj["n"]) is int
    assert loads_strict(dump_json(obj)) == obj
    with pytest.raises(ValueError, match=r"cfg\['p'\]: nan is not allowed"):
        jsonable({"p": math.nan}, "cfg")
    with pytest.raises(TypeError, match=r"cfg: key 1 is a int"):
        jsonable({1: 2}, "cfg")


def test_every_saved_kind_shares_the_format_and_the_errors():
    assert isinstance(bundle.FOLDER_FORMAT, FolderFormat) and isinstance(persist.FOLDER_FORMAT, FolderFormat)
    assert bundle.BundleFormatError is BundleFormatError and bundle.BundleIntegrityError is BundleIntegrityError


def _toy(folder: Path, files: dict[str, bytes] | None = None) -> dict:
    files = {"a.json": b'{"x": 1}\n'} if files is None else files
    folder.mkdir()
    (folder / "sub").mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    manifest = TOY.manifest(files)
    (folder / MANIFEST).write_bytes(dump_json(manifest))
    return manifest


def test_folder_format_round_trip_and_digest(tmp_path):
    manifest = _toy(tmp_path / "m")
    assert list(manifest) == ["format", "format_version", "hash", "files", "sub"]
    assert TOY.open(tmp_path / "m") == manifest
    assert TOY.digest(tmp_path / "m") == manifest_digest(manifest) and len(manifest_digest(manifest)) == 64
    (tmp_path / "m" / "a.json").write_bytes(b'{"x": 2}\n')  # same size, other bytes
    with pytest.raises(BundleIntegrityError, match=r"a\.json: does not match manifest\.json: expected sha256"):
        TOY.digest(tmp_path / "m")
    assert TOY.digest(tmp_path / "m", verify=False) == manifest_digest(manifest)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m.update(format="other"), r"'format' must be 'toy', got 'other' \(load it with other\.load\)"),
    (lambda m: m.update(format_version=True), "format_version True is not supported"),
    (lambda m: m.update(hash="md5"), "'hash' must be 'sha256'"),
    (lambda m: m.update(sub="elsewhere"), "'sub' must be 'sub', got 'elsewhere'"),
    (lambda m: m["files"].update({"c.json": m["files"]["a.json"]}), "lists 'c.json', which is not a toy model file"),
    (lambda m: m["files"]["a.json"].update(sha256="A" * 64), r"entry for 'a\.json' must be"),
    (lambda m: m["files"]["a.json"].update(size=-1), r"entry for 'a\.json' must be"),
    (lambda m: m["files"].pop("a.json"), r"does not list 'a\.json', which every toy model has"),
])
def test_folder_format_refuses_a_wrong_manifest(tmp_path, edit, message):
    manifest = _toy(tmp_path / "m")
    edit(manifest)
    (tmp_path / "m" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleFormatError, match=message):
        TOY.open(tmp_path / "m")


def test_folder_format_refuses_a_wrong_folder(tmp_path):
    with pytest.raises(BundleFormatError, match=r"does not exist; a toy model is a folder"):
        TOY.open(tmp_path / "none")
    _toy(tmp_path / "extra")
    (tmp_path / "extra" / "b.json").write_text("{}")  # optional, but not listed
    with pytest.raises(BundleIntegrityError, match=r"b\.json: unexpected file"):
        TOY.open(tmp_path / "extra")
    _toy(tmp_path / "grown")
    (tmp_path / "grown" / "a.json").write_bytes(b'{"x": 10}\n')
    with pytest.raises(BundleIntegrityError, match=r"expected 9 bytes, the file has 10 bytes \(not read\)"):
        TOY.open(tmp_path / "grown")
    _toy(tmp_path / "nosub")
    (tmp_path / "nosub" / "sub").rmdir()
    with pytest.raises(BundleIntegrityError, match="sub: missing or not a folder; every toy model has it"):
        TOY.open(tmp_path / "nosub")
    _toy(tmp_path / "link")
    (tmp_path / "link" / "a.json").rename(tmp_path / "a.json")
    (tmp_path / "link" / "a.json").symlink_to(tmp_path / "a.json")
    with pytest.raises(BundleIntegrityError, match=r"a\.json: is a symbolic link"):
        TOY.open(tmp_path / "link")
    _toy(tmp_path / "dup")
    (tmp_path / "dup" / MANIFEST).write_text('{"format": "toy", "format": "toy"}')
    with pytest.raises(BundleFormatError, match=r"manifest\.json: not valid JSON \(duplicate key 'format'\)"):
        TOY.open(tmp_path / "dup")


def test_a_saved_hybrid_manifest_is_checked_like_a_bundle_manifest(tmp_path):
    # Before, load_hybrid's own check accepted any text as a sha256 and said only "must hold hash 'sha256', …".
    folder = tmp_path / "h"
    folder.mkdir()
    (folder / "image").mkdir()
    (folder / "fusion.json").write_text("{}")
    manifest = persist.FOLDER_FORMAT.manifest({"fusion.json": b"{}"})
    manifest["files"]["fusion.json"]["sha256"] = "not a hash"
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleFormatError, match=r"entry for 'fusion\.json' must be \{'sha256': 64 lowercase hex"):
        persist.read_hybrid(folder)
    manifest = persist.FOLDER_FORMAT.manifest({"fusion.json": b"{}"})
    manifest["format_version"] = 2
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleFormatError, match="format_version 2 is not supported; this riskmodel reads version 1"):
        persist.read_hybrid(folder)
