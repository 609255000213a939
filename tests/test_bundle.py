"""Model bundles: round trips, integrity and format errors, overwrite protection, no pickle."""

import json
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import riskmodel
from riskmodel.bundle import (
    FORMAT_VERSION,
    BundleError,
    BundleFormatError,
    BundleIntegrityError,
    bundle_digest,
    load_bundle,
    save_bundle,
    verify_bundle,
)
from riskmodel.calibration import YearlyCalibrator

CONFIG = {"name": "tiny", "in_features": 4, "out_features": 5, "dropout": 0.1, "blocks": [1, 2], "bias": True}
PREPROCESSING = {"image_size": [2048, 1664], "views": ["L-CC", "L-MLO", "R-CC", "R-MLO"], "version": 1,
                 "mean": 7047.99, "std": 12005.5}
METADATA = {"training_data": "synthetic cohort, seed 0", "metrics": {"auc_5y": 0.71}, "notes": None}


def _state_dict():
    torch.manual_seed(0)
    return torch.nn.Linear(4, 5).state_dict()


def _calibration():
    rng = np.random.default_rng(0)
    risk = rng.uniform(0, 0.3, (2000, 5))
    time = rng.uniform(0, 8, 2000)
    event = (rng.uniform(size=2000) < risk[:, 4]).astype(int)
    return YearlyCalibrator("platt").fit(risk, time, event).to_dict()


@pytest.fixture
def bundle(tmp_path):
    return save_bundle(tmp_path / "model", _state_dict(), config=CONFIG, preprocessing=PREPROCESSING,
                       calibration=_calibration(), metadata=METADATA)


def _rewrite_manifest(folder: Path, edit) -> None:
    m = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    edit(m)
    (folder / "manifest.json").write_text(json.dumps(m), encoding="utf-8")


def _rehash(folder: Path, name: str) -> None:
    """Update the manifest entry of ``name`` (what an attacker who edits both files would do)."""
    import hashlib

    data = (folder / name).read_bytes()
    _rewrite_manifest(folder, lambda m: m["files"].__setitem__(
        name, {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}))


# ---------------------------------------------------------------------------------------
# Round trip


def test_round_trip_is_exact(bundle):
    sd = _state_dict()
    b = load_bundle(bundle)
    assert list(b.state_dict) == list(sd)  # same order
    for k, v in sd.items():
        assert b.state_dict[k].dtype == v.dtype
        assert torch.equal(b.state_dict[k], v)
        assert b.state_dict[k].numpy().tobytes() == v.numpy().tobytes()  # bit-identical
    assert b.config == CONFIG
    assert b.preprocessing == PREPROCESSING
    assert b.calibration == _calibration()
    assert b.metadata["user"] == METADATA
    assert b.metadata["library"] == "riskmodel"
    assert b.metadata["library_version"] == riskmodel.__version__
    assert b.metadata["torch_version"] == torch.__version__
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", b.metadata["created_utc"])
    assert b.path == bundle
    assert b.digest == bundle_digest(bundle)
    assert re.fullmatch(r"[0-9a-f]{64}", b.digest)
    verify_bundle(bundle)
    # The model loads the weights, and the calibrator works.
    model = torch.nn.Linear(4, 5)
    model.load_state_dict(b.state_dict)
    cal = b.calibrator()
    assert cal.predict(np.full((3, 5), 0.1)).shape == (3, 5)


def test_bundle_files_and_manifest(bundle):
    names = sorted(p.name for p in bundle.iterdir())
    assert names == ["calibration.json", "config.json", "manifest.json", "metadata.json", "preprocessing.json",
                     "weights.safetensors"]
    m = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    assert m["format_version"] == FORMAT_VERSION
    assert set(m["files"]) == set(names) - {"manifest.json"}
    assert m["files"]["config.json"]["size"] == (bundle / "config.json").stat().st_size
    assert not list(bundle.parent.glob(".model.*"))  # no temporary folder left behind


def test_without_calibration_and_odd_tensors(tmp_path):
    base = torch.arange(24, dtype=torch.float64).reshape(4, 6)
    sd = {"w": base, "tied": base, "view": base[1:3], "t": base.T, "half": torch.ones(3, dtype=torch.float16),
          "int": torch.tensor([1, -2], dtype=torch.int64), "empty": torch.zeros(0), "flag": torch.tensor([True])}
    p = save_bundle(tmp_path / "b", sd, config={"tuple": (1, 2), "np": np.float32(0.5), "arr": np.arange(3)},
                    preprocessing={})
    b = load_bundle(p)
    assert b.calibration is None and b.calibrator() is None
    assert list(b.state_dict) == list(sd)
    for k, v in sd.items():
        assert torch.equal(b.state_dict[k], v) and b.state_dict[k].dtype == v.dtype, k
    assert b.config == {"tuple": [1, 2], "np": 0.5, "arr": [0, 1, 2]}  # JSON types
    assert b.metadata["user"] == {}


def test_verify_false_skips_hashing_but_not_the_file_set(bundle):
    raw = bytearray((bundle / "config.json").read_bytes())
    raw[raw.index(b"tiny")] = ord("T")
    (bundle / "config.json").write_bytes(bytes(raw))
    assert load_bundle(bundle, verify=False).config["name"] == "Tiny"
    (bundle / "extra.txt").write_text("x", encoding="utf-8")
    with pytest.raises(BundleIntegrityError, match=r"extra\.txt"):
        load_bundle(bundle, verify=False)


# ---------------------------------------------------------------------------------------
# Integrity


def test_flipped_byte_in_weights_is_named(bundle):
    p = bundle / "weights.safetensors"
    expected = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))["files"][p.name]["sha256"]
    raw = bytearray(p.read_bytes())
    raw[-3] ^= 0x01  # a tensor byte, the header still parses
    p.write_bytes(bytes(raw))
    for check in (load_bundle, verify_bundle, bundle_digest):
        with pytest.raises(BundleIntegrityError, match=r"weights\.safetensors.*expected sha256") as info:
            check(bundle)
        assert info.value.path == str(p)
        assert info.value.expected == expected
        assert info.value.actual != expected and info.value.actual in str(info.value)


def test_edited_config_is_detected(bundle):
    cfg = json.loads((bundle / "config.json").read_text(encoding="utf-8"))
    cfg["out_features"] = 6
    (bundle / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    with pytest.raises(BundleIntegrityError, match=r"config\.json: does not match manifest\.json"):
        load_bundle(bundle)


def test_missing_file(bundle):
    (bundle / "preprocessing.json").unlink()
    with pytest.raises(BundleIntegrityError, match=r"preprocessing\.json: missing"):
        load_bundle(bundle)


def test_extra_file(bundle):
    (bundle / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(BundleIntegrityError, match=r"notes\.txt: unexpected file"):
        load_bundle(bundle)
    (bundle / "notes.txt").unlink()
    (bundle / "sub").mkdir()
    with pytest.raises(BundleIntegrityError, match="sub: unexpected file"):
        verify_bundle(bundle)


class _Trap:
    """Unpickling this creates ``marker``: proof that something was unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_in_folder_is_never_loaded(bundle, tmp_path):
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Trap(marker))
    # The trap works (our own bytes, in the test only):
    pickle.loads(payload).close()
    assert marker.exists()
    marker.unlink()

    (bundle / "model.pkl").write_bytes(payload)
    with pytest.raises(BundleIntegrityError, match=r"model\.pkl: unexpected file.*not loaded"):
        load_bundle(bundle)
    assert not marker.exists()
    (bundle / "model.pkl").unlink()

    # Even listed in the manifest with the right hash, a pickle is not a bundle file name.
    (bundle / "checkpoint.pt").write_bytes(payload)
    _rehash(bundle, "checkpoint.pt")
    with pytest.raises(BundleFormatError, match=r"lists 'checkpoint\.pt'"):
        load_bundle(bundle)
    (bundle / "checkpoint.pt").unlink()
    _rewrite_manifest(bundle, lambda m: m["files"].pop("checkpoint.pt"))

    # A pickle (torch.save) disguised as weights.safetensors, with a matching hash, is
    # rejected by the safetensors parser and never unpickled.
    torch.save({"x": _Trap(marker)}, bundle / "weights.safetensors")
    _rehash(bundle, "weights.safetensors")
    with pytest.raises(BundleFormatError, match=r"weights\.safetensors: not a valid safetensors file"):
        load_bundle(bundle)
    assert not marker.exists()


def test_sources_use_no_pickle():
    root = Path(riskmodel.__file__).parent
    for name in ("bundle.py", *(f"calibration/{f.name}" for f in sorted((root / "calibration").glob("*.py")))):
        src = (root / name).read_text(encoding="utf-8")
        assert "import pickle" not in src and "pickle.load" not in src, name
        assert "torch.load(" not in src, name


# ---------------------------------------------------------------------------------------
# Format


def test_missing_manifest(bundle):
    (bundle / "manifest.json").unlink()
    with pytest.raises(BundleFormatError, match=r"manifest\.json: missing"):
        load_bundle(bundle)


def test_not_a_folder(tmp_path):
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(BundleFormatError, match="is not a folder"):
        load_bundle(tmp_path / "file")
    with pytest.raises(BundleFormatError, match="does not exist"):
        load_bundle(tmp_path / "nowhere")


def test_bad_json(bundle):
    (bundle / "metadata.json").write_text("{not json", encoding="utf-8")
    _rehash(bundle, "metadata.json")
    with pytest.raises(BundleFormatError, match=r"metadata\.json: not valid JSON"):
        load_bundle(bundle)
    (bundle / "metadata.json").write_text('{"a": 1, "a": 2}', encoding="utf-8")
    _rehash(bundle, "metadata.json")
    with pytest.raises(BundleFormatError, match="duplicate key 'a'"):
        load_bundle(bundle)
    (bundle / "metadata.json").write_text('{"a": NaN}', encoding="utf-8")
    _rehash(bundle, "metadata.json")
    with pytest.raises(BundleFormatError, match="NaN is not allowed"):
        load_bundle(bundle)
    (bundle / "metadata.json").write_text("[1, 2]", encoding="utf-8")
    _rehash(bundle, "metadata.json")
    with pytest.raises(BundleFormatError, match="expected a JSON object"):
        load_bundle(bundle)
    (bundle / "manifest.json").write_text("{", encoding="utf-8")
    with pytest.raises(BundleFormatError, match=r"manifest\.json: not valid JSON"):
        load_bundle(bundle)


def test_wrong_format_version(bundle):
    _rewrite_manifest(bundle, lambda m: m.__setitem__("format_version", 2))
    with pytest.raises(BundleFormatError, match="format_version 2 is not supported"):
        load_bundle(bundle)
    _rewrite_manifest(bundle, lambda m: m.update(format_version=1, format="mirai"))
    with pytest.raises(BundleFormatError, match="'format' must be 'riskmodel-bundle'"):
        load_bundle(bundle)


def test_malformed_manifest_entries(bundle):
    _rewrite_manifest(bundle, lambda m: m["files"]["config.json"].__setitem__("sha256", "abc"))
    with pytest.raises(BundleFormatError, match=r"entry for 'config\.json'"):
        load_bundle(bundle)
    _rewrite_manifest(bundle, lambda m: m["files"].pop("config.json"))
    with pytest.raises(BundleFormatError, match=r"does not list 'config\.json'"):
        load_bundle(bundle)
    _rewrite_manifest(bundle, lambda m: m["files"].__setitem__("../x.json", {"sha256": "0" * 64, "size": 1}))
    with pytest.raises(BundleFormatError, match="not a bundle file"):
        load_bundle(bundle)


def test_invalid_calibration_in_bundle(bundle):
    cal = json.loads((bundle / "calibration.json").read_text(encoding="utf-8"))
    cal["format_version"] = 99
    (bundle / "calibration.json").write_text(json.dumps(cal), encoding="utf-8")
    _rehash(bundle, "calibration.json")
    with pytest.raises(BundleFormatError, match=r"calibration\.json: .*format_version 99"):
        load_bundle(bundle)


def test_errors_are_value_errors():
    for cls in (BundleIntegrityError, BundleFormatError):
        assert issubclass(cls, BundleError) and issubclass(cls, ValueError)
    e = pickle.loads(pickle.dumps(BundleIntegrityError("x/w", "bad", "a" * 64, "b" * 64)))  # our own object
    assert (e.path, e.rule, e.expected, e.actual) == ("x/w", "bad", "a" * 64, "b" * 64)
    one = BundleFormatError("model/: weights and config.json differ")  # one-argument form
    assert str(one) == one.rule == "model/: weights and config.json differ" and one.path == ""
    assert str(pickle.loads(pickle.dumps(one))) == str(one)


# ---------------------------------------------------------------------------------------
# Saving


def test_overwrite_protection(bundle, tmp_path):
    before = (bundle / "weights.safetensors").read_bytes()
    new = {k: v + 1 for k, v in _state_dict().items()}
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_bundle(bundle, new, config=CONFIG, preprocessing=PREPROCESSING)
    assert (bundle / "weights.safetensors").read_bytes() == before
    save_bundle(bundle, new, config=CONFIG, preprocessing=PREPROCESSING, overwrite=True)
    b = load_bundle(bundle)
    assert torch.equal(b.state_dict["weight"], new["weight"]) and b.calibration is None
    assert not (bundle / "calibration.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary folders left

    # A folder holding anything else is never deleted, even with overwrite=True.
    other = tmp_path / "home"
    other.mkdir()
    (other / "thesis.tex").write_text("precious", encoding="utf-8")
    with pytest.raises(FileExistsError, match="not part of a bundle"):
        save_bundle(other, new, config=CONFIG, preprocessing=PREPROCESSING, overwrite=True)
    assert (other / "thesis.tex").read_text(encoding="utf-8") == "precious"
    # A file is not replaced; an empty folder is used.
    (tmp_path / "f").write_text("x", encoding="utf-8")
    with pytest.raises(FileExistsError, match="not a folder"):
        save_bundle(tmp_path / "f", new, config=CONFIG, preprocessing=PREPROCESSING, overwrite=True)
    (tmp_path / "empty").mkdir()
    verify_bundle(save_bundle(tmp_path / "empty", new, config=CONFIG, preprocessing=PREPROCESSING))


def test_failed_save_leaves_nothing(tmp_path, bundle):
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}
    with pytest.raises(TypeError, match=r"config\['ids'\]: a set cannot be stored in JSON"):
        save_bundle(bundle, _state_dict(), config={"ids": {1, 2}}, preprocessing={}, overwrite=True)
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_save_argument_errors(tmp_path):
    sd = _state_dict()
    with pytest.raises(ValueError, match=r"preprocessing\['mean'\]: nan is not allowed"):
        save_bundle(tmp_path / "a", sd, config={}, preprocessing={"mean": float("nan")})
    with pytest.raises(TypeError, match=r"config\['layers'\]: key 1 is a int"):
        save_bundle(tmp_path / "a", sd, config={"layers": {1: "x"}}, preprocessing={})
    with pytest.raises(TypeError, match=r"state_dict\['w'\]: a ndarray, not a torch.Tensor"):
        save_bundle(tmp_path / "a", {"w": np.zeros(2)}, config={}, preprocessing={})
    with pytest.raises(ValueError, match="state_dict: is empty"):
        save_bundle(tmp_path / "a", {}, config={}, preprocessing={})
    with pytest.raises(TypeError, match="config: expected a dict"):
        save_bundle(tmp_path / "a", sd, config=[1], preprocessing={})
    with pytest.raises(ValueError, match="calibration: 'format' must be"):
        save_bundle(tmp_path / "a", sd, config={}, preprocessing={}, calibration={"method": "platt"})
    assert not list(tmp_path.iterdir())


def test_digest_identifies_content(bundle, tmp_path):
    d = bundle_digest(bundle)
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    assert bundle_digest(copy) == d  # the same files, wherever they are
    m = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    (copy / "manifest.json").write_text(json.dumps(m, indent=8), encoding="utf-8")
    assert bundle_digest(copy) == d  # reformatting the manifest changes nothing
    other = save_bundle(tmp_path / "other", {k: v * 2 for k, v in _state_dict().items()}, config=CONFIG,
                        preprocessing=PREPROCESSING)
    assert bundle_digest(other) != d


def test_crash_while_saving_keeps_the_old_bundle(bundle, tmp_path, monkeypatch):
    import riskmodel.bundle as rb

    before = {p.name: p.read_bytes() for p in bundle.iterdir()}
    new = {k: v + 1 for k, v in _state_dict().items()}

    def broken_write(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(rb, "write_file", broken_write)
    with pytest.raises(OSError, match="disk full"):
        save_bundle(bundle, new, config=CONFIG, preprocessing=PREPROCESSING, overwrite=True)
    monkeypatch.undo()
    real_replace = rb.os.replace

    def replace_fails_for_new(src, dst):
        if ".tmp-" in Path(src).name:
            raise OSError("rename failed")
        real_replace(src, dst)

    monkeypatch.setattr(rb.os, "replace", replace_fails_for_new)
    with pytest.raises(OSError, match="rename failed"):
        save_bundle(bundle, new, config=CONFIG, preprocessing=PREPROCESSING, overwrite=True)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    verify_bundle(bundle)


def test_same_inputs_give_same_files(tmp_path):
    """Weights and JSON files are byte-for-byte reproducible (only metadata.json has a timestamp)."""
    sd = _state_dict()
    files = []
    for i in range(8):  # safetensors writes its metadata map in random order: one key keeps it stable
        p = save_bundle(tmp_path / f"b{i}", sd, config=CONFIG, preprocessing=PREPROCESSING, calibration=_calibration())
        files.append({n: (p / n).read_bytes() for n in ("weights.safetensors", "config.json", "preprocessing.json",
                                                         "calibration.json")})
    assert all(f == files[0] for f in files)


# ---------------------------------------------------------------------------------------
# Re-hashed bundles (issue 17): the manifest's hashes were updated, so only the load checks can
# catch these. Each test builds its tampered bundle here and expects the file and field named.


def _rehash_all(folder: Path) -> None:
    for p in folder.iterdir():
        if p.name != "manifest.json":
            _rehash(folder, p.name)


@pytest.fixture
def image_bundle(tmp_path):
    from riskmodel.inference import image_preprocessing, save_image_model
    from riskmodel.nn import ImageRiskModel, tiny_config

    torch.manual_seed(0)
    return save_image_model(tmp_path / "image", ImageRiskModel(tiny_config()),
                            preprocessing=image_preprocessing((64, 52)))


def _edit_json(folder: Path, name: str, edit) -> None:
    d = json.loads((folder / name).read_text())
    edit(d)
    (folder / name).write_text(json.dumps(d))
    _rehash(folder, name)


def test_weights_larger_than_the_manifest_says_are_not_read(bundle, monkeypatch):
    weights = bundle / "weights.safetensors"
    with open(weights, "r+b") as f:
        f.truncate(int(1.5e9))  # sparse: no disk or memory used unless read
    opened = []
    real_open = open

    def spy(path, *args, **kwargs):
        opened.append(Path(path).name)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", spy)
    for call in (load_bundle, verify_bundle, bundle_digest):
        with pytest.raises(BundleIntegrityError, match=r"weights\.safetensors: does not match manifest\.json: expected "
                                                       r"\d+ bytes, the file has 1500000000 bytes \(not read\)"):
            call(bundle)
    assert "weights.safetensors" not in opened


@pytest.mark.parametrize("name", ["config.json", "weights.safetensors", "manifest.json"])
def test_symbolic_links_are_refused(bundle, tmp_path, name):
    outside = tmp_path / f"outside-{name}"
    shutil.copy(bundle / name, outside)
    (bundle / name).unlink()
    (bundle / name).symlink_to(outside)
    with pytest.raises(BundleError, match=rf"{re.escape(name)}: is a symbolic link"):
        load_bundle(bundle)


def test_a_symlinked_sub_folder_is_refused(bundle, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (bundle / "calibration.json").unlink()
    (bundle / "calibration.json").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BundleIntegrityError, match=r"calibration\.json: is a symbolic link"):
        load_bundle(bundle)


def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path):
    sd = {"ok": torch.ones(3), "bad": torch.tensor([1.0, float("nan")]), "ints": torch.tensor([1, 2])}
    p = save_bundle(tmp_path / "b", sd, config={}, preprocessing={})
    with pytest.raises(BundleFormatError, match=r"weights\.safetensors: tensor 'bad' holds NaN or infinite values"):
        load_bundle(p)
    p = save_bundle(tmp_path / "c", {"w": torch.tensor([float("inf")], dtype=torch.float16)}, config={},
                    preprocessing={})
    with pytest.raises(BundleFormatError, match="tensor 'w' holds NaN or infinite"):
        load_bundle(p)


def test_safetensors_header_is_parsed_with_a_cap(bundle):
    weights = bundle / "weights.safetensors"
    data = weights.read_bytes()
    weights.write_bytes((1 << 40).to_bytes(8, "little") + data[8:])
    _rehash(bundle, "weights.safetensors")
    with pytest.raises(BundleFormatError, match=r"weights\.safetensors: not a valid safetensors file: header length"):
        load_bundle(bundle)
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    header["weight"]["shape"] = [5, 5]  # 25 floats claimed in a 20-float range
    text = json.dumps(header).encode()
    weights.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + n:])
    _rehash(bundle, "weights.safetensors")
    with pytest.raises(BundleFormatError, match=r"tensor 'weight': data_offsets .* do not hold a F32 tensor of shape"):
        load_bundle(bundle)


def test_check_runs_before_any_tensor_is_decoded(bundle, monkeypatch):
    import riskmodel.bundle as rb

    seen = []

    def check(b):
        seen.append((dict(b.tensors), dict(b.state_dict)))
        raise BundleFormatError(b.path / "config.json", "refused by the caller")

    monkeypatch.setattr(rb, "_load_safetensors_bytes", lambda data: pytest.fail("decoded before the check"))
    with pytest.raises(BundleFormatError, match="refused by the caller"):
        load_bundle(bundle, check=check)
    assert seen == [({"weight": ("F32", (5, 4)), "bias": ("F32", (5,))}, {})]


def test_image_bundle_config_that_does_not_fit_the_weights_builds_nothing(image_bundle):
    import resource

    from riskmodel.inference import load_image_model

    _edit_json(image_bundle, "config.json", lambda c: c.update(widths=[2048] * 4))  # 2.6 GB if built
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(BundleFormatError, match=r"weights\.safetensors: the weights do not fit config\.json: tensor "
                                                r"'encoder\.stem\.0\.weight' has shape \[8, 1, 7, 7\], expected "
                                                r"\[2048, 1, 7, 7\]"):
        load_image_model(image_bundle, device="cpu")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300_000  # kB: nothing of 2.6 GB allocated


@pytest.mark.parametrize("edit, field", [
    (lambda c: c.update(widths=[8, 16, 16, 5000]), r"widths \[8, 16, 16, 5000\] exceeds the limit 4096"),
    (lambda c: c.update(blocks=[1, 1, 1, 1000]), r"blocks \[1, 1, 1, 1000\] exceeds the limit 64"),
    (lambda c: c.update(agg_layers=10_000), "agg_layers 10000 exceeds the limit 48"),
    (lambda c: c.update(widths=[8] * 9, blocks=[1] * 9), r"len\(widths\) 9 exceeds the limit 8"),
])
def test_image_bundle_config_sizes_are_bounded(image_bundle, edit, field):
    from riskmodel.inference import load_image_model

    _edit_json(image_bundle, "config.json", edit)
    with pytest.raises(BundleFormatError, match=rf"config\.json: {field}"):
        load_image_model(image_bundle, device="cpu")


@pytest.mark.parametrize("edit, message", [
    (lambda p: p.update(image_size=[60000, 60000]),
     r"image_size must be .* each in \[32, 8192\], got \[60000, 60000\]"),
    (lambda p: p.update(image_size=[1, 1]), r"image_size must be .* each in \[32, 8192\], got \[1, 1\]"),
    (lambda p: p.update(image_size=[128, 104]), r"image_size \[128, 104\] differs from config\.json's image_size "
                                                r"\[64, 52\]"),
    (lambda p: p.update(view_order=["R-MLO", "R-CC", "L-MLO", "L-CC"]), r"view_order \['R-MLO'.* is not "
                                                                         r"\['L-CC', 'L-MLO', 'R-CC', 'R-MLO'\]"),
])
def test_image_bundle_preprocessing_is_bounded_and_agrees_with_the_config(image_bundle, edit, message):
    from riskmodel.inference import load_image_model

    _edit_json(image_bundle, "preprocessing.json", edit)
    with pytest.raises(BundleFormatError, match=rf"preprocessing\.json: {message}"):
        load_image_model(image_bundle, device="cpu")


def test_image_bundle_calibration_must_have_the_models_years(image_bundle):
    from riskmodel.inference import load_image_model

    rng = np.random.default_rng(0)
    risk = rng.uniform(0, 0.3, (500, 3))
    cal = YearlyCalibrator("platt", n_years=3).fit(risk, rng.uniform(0, 8, 500), (rng.uniform(size=500) < 0.2) * 1)
    (image_bundle / "calibration.json").write_text(json.dumps(cal.to_dict()))
    _rehash(image_bundle, "calibration.json")
    with pytest.raises(BundleFormatError, match=r"calibration\.json: n_years 3 differs from config\.json's n_years 5"):
        load_image_model(image_bundle, device="cpu")


def test_image_bundle_with_a_nan_weight_is_refused(image_bundle):
    from safetensors.torch import load_file, save_file

    from riskmodel.inference import load_image_model

    weights = image_bundle / "weights.safetensors"
    sd = load_file(str(weights))
    name = sorted(k for k in sd if k.endswith("weight"))[-1]
    sd[name].view(-1)[0] = float("nan")
    save_file(sd, str(weights))
    _rehash(image_bundle, "weights.safetensors")
    with pytest.raises(BundleFormatError, match=rf"weights\.safetensors: tensor '{re.escape(name)}' holds NaN"):
        load_image_model(image_bundle, device="cpu")


def test_every_file_of_a_bundle_and_a_checkpoint_has_one_mode(tmp_path):
    import os

    from riskmodel.nn import ImageRiskModel, tiny_config
    from riskmodel.training.trainer import _save_checkpoint

    old = os.umask(0o022)
    try:
        p = save_bundle(tmp_path / "b", _state_dict(), config=CONFIG, preprocessing=PREPROCESSING,
                        calibration=_calibration())
        model = ImageRiskModel(tiny_config())
        _save_checkpoint(tmp_path / "ckpt", model, torch.optim.AdamW(model.parameters()), {"epoch": 0})
    finally:
        os.umask(old)
    modes = {q.name: oct(q.stat().st_mode & 0o777) for q in [*p.iterdir(), *(tmp_path / "ckpt").iterdir()]}
    assert set(modes.values()) == {"0o644"}, modes


# ---------------------------------------------------------------------------------------
# Training checkpoints: resuming never unpickles


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _malicious_checkpoint(folder: Path, marker: Path) -> None:
    from riskmodel.nn import ImageRiskModel, tiny_config
    from riskmodel.training.trainer import _save_checkpoint

    torch.manual_seed(0)
    model = ImageRiskModel(tiny_config())
    _save_checkpoint(folder, model, torch.optim.AdamW(model.parameters()),
                     {"epoch": 0, "best_metric": 0.0, "best_epoch": 1, "stale": 0, "history": []})
    (folder / "optimizer.pt").write_bytes(pickle.dumps({"state": _Exploit(marker)}, protocol=2))


def test_resume_from_a_malicious_optimizer_state_is_a_clean_refusal(tmp_path):
    from riskmodel.nn import ImageRiskModel, tiny_config
    from riskmodel.training import CheckpointError, TensorExams, TrainConfig, train

    marker = tmp_path / "pwned"
    _malicious_checkpoint(tmp_path / "out" / "checkpoint", marker)
    labels = __import__("pandas").DataFrame({"time": [1.0, 6.0], "event": [1, 0]})
    data = TensorExams(torch.ones(2, 4, dtype=torch.bool), labels, images=torch.zeros(2, 4, 1, 64, 52))
    with pytest.raises(CheckpointError, match=r"optimizer\.pt: refused \(UnpicklingError\): not a plain optimizer "
                                              r"state") as info:
        train(ImageRiskModel(tiny_config()), data, None, TrainConfig(epochs=1, device="cpu", progress=False),
              out_dir=tmp_path / "out", resume=True)
    assert isinstance(info.value, ValueError)
    assert "weights_only" not in str(info.value) and not marker.exists()


def test_cli_train_resume_from_a_malicious_optimizer_state_exits_2(tmp_path, capsys):
    import pandas as pd

    from riskmodel import cli

    marker = tmp_path / "pwned"
    _malicious_checkpoint(tmp_path / "run" / "training" / "checkpoint", marker)
    ids = [f"EX{i}" for i in range(12)]
    pd.DataFrame({"exam_id": ids, "time": 6.0, "event": 0}).to_csv(tmp_path / "cohort.csv", index=False)
    pd.DataFrame({"exam_id": ids, "accession_number": ids, **{v: str(tmp_path / "none.dcm") for v in
                  ("L-CC", "L-MLO", "R-CC", "R-MLO")}}).to_csv(tmp_path / "exams.csv", index=False)
    code = cli.main(["train", "--cohort", str(tmp_path / "cohort.csv"), "--exams", str(tmp_path / "exams.csv"),
                     "--out", str(tmp_path / "run"), "--tiny", "--image-size", "64x52", "--epochs", "1",
                     "--device", "cpu", "--resume", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "optimizer.pt: refused" in err and "Traceback" not in err, err
    assert "weights_only" not in err and not marker.exists()
