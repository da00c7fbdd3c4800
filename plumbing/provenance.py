"""
What a run started from, as --resume checks it: the model (a local folder by its absolute path and the SHA-256 of
its files, so that a moved copy is the same model and a changed one is not; a hub id by its name and revision) and
the problems (a checksum of their questions and gold answers, wherever they were read from).
"""

import hashlib
import json
import os


def sha256(path):
    """The SHA-256 of a file, read 1 MiB at a time (little memory, whatever the file's size)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def problems_checksum(rows):
    """A checksum of a list of problems (each question and gold answer, in order): two lists are the same
    problems exactly when these agree, wherever they were read from."""
    text = json.dumps([[row["question"], row["answer"]] for row in rows])
    return hashlib.sha256(text.encode()).hexdigest()


def model_record(name, config):
    """The model a run starts from: a local folder as its absolute path and the SHA-256 of each file in it (its
    hidden files aside: .DS_Store); a GGUF file as its absolute path and its SHA-256; a hub id as its name and the
    commit its files came from."""
    if os.path.isfile(name):
        path = os.path.abspath(name)
        return {"path": path, "sha256": {os.path.basename(path): sha256(path)}}
    if os.path.isdir(name):
        path = os.path.abspath(name)
        files = sorted(f for f in os.listdir(path) if not f.startswith(".") and os.path.isfile(os.path.join(path, f)))
        return {"path": path, "sha256": {f: sha256(os.path.join(path, f)) for f in files}}
    return {"path": name, "revision": getattr(config, "_commit_hash", None)}


def local_data(name, suffixes=(".jsonl", ".json", ".parquet")):
    """A data file's absolute path (a resumed run reads it wherever it was started from); a short name as it is."""
    return os.path.abspath(name) if name and name.lower().endswith(suffixes) else name


def same(saved, now):
    """Whether a record of a model (model_record) or of problems (a checksum) says the same as another: a local
    folder by its files' checksums (a moved copy is the same model), a hub id by its name and revision."""
    if isinstance(saved, dict) and isinstance(now, dict) and "sha256" in saved and "sha256" in now:
        return saved["sha256"] == now["sha256"]
    return saved == now


def differs(saved, now):
    """What differs between two records of a model or a list of problems, in a few words."""
    if isinstance(saved, dict) and isinstance(now, dict) and "sha256" in saved and "sha256" in now:
        names = sorted(n for n in set(saved["sha256"]) | set(now["sha256"]) if saved["sha256"].get(n) != now["sha256"].get(n))
        if saved["path"] == now["path"]:
            return f"{', '.join(names)} changed since it started"
        return f"the run started from {saved['path']}; {', '.join(names)} differ"
    if isinstance(saved, dict) and "path" in saved:
        return f"the run started from {saved['path']}" + (f" at revision {saved['revision']}" if saved.get("revision") else "")
    return "other problems, or the same ones changed"
