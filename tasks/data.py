"""The paper's datasets, by short name, and the one prompt every run uses.

Datasets (arXiv 2604.16259, sections 3-4 and the appendix):
    math_lighteval  DigitalLearningGmbH/MATH-lighteval   train (7.5k) / test (5k)  RL training set for the 3B models
    math500         HuggingFaceH4/MATH-500                test (500)                evaluation
    minerva         math-ai/minervamath                   test (272)                evaluation
    gsm8k           openai/gsm8k (config "main")          train / test              extra easy benchmark
    aime24          HuggingFaceH4/aime_2024               test (30)                 validation for Qwen3-4B
    aime25          opencompass/AIME2025 (I + II)         test (30)                 evaluation
    deepscaler      agentica-org/DeepScaleR-Preview       train (~40k)              RL training set for Qwen3-4B
plus the toy task ("toy", "toy-aligned", see toytask.py), the real-model task ("arith": one-digit arithmetic
in words for a small chat model, see arith.py) and any local .jsonl/.json/.parquet file.

Every loader returns the same rows: {"question": str, "answer": str}, plus "level" (int) and "subject" where
the dataset has them. "answer" is a short gold answer (a number or a LaTeX expression), never a worked
solution, because the task reward only compares final answers.

The prompt is the authors' chain-of-thought instruction (examples/prompts/cot.txt), put in the user turn of
the model's own chat template. Training rollouts and evaluation use the same prompt and the same grader:
the RL arms differ only in their reward, so anything else that differed between training and evaluation
would blur the comparison the paper is about.

Offline use: set DATA_DIR and each short name is read from local files in the hub's own format instead of
the hub, laid out as DATA_DIR/<name>/<split>.<jsonl|json|parquet> with our split names (aime24/test.parquet,
although the hub calls that split "train"); multi-config sets add a config folder
(DATA_DIR/aime25/AIME2025-I/test.jsonl). Column mapping and answer extraction are the same either way.
"""

from __future__ import annotations

import json
import os
import random
import string
import warnings
from pathlib import Path
from typing import Callable, NamedTuple

from tasks.toytask import is_toy

# As in the authors' code the template goes through str.format, so "{{}}" becomes "{}". Their prompt file
# stored "\\boxed{{}}", so their models literally saw a double backslash "\\boxed{}". We show the single
# backslash "\boxed{}": the LaTeX command we want the model to write back.
COT_TEMPLATE = (
    "Think step-by-step to solve the following problem. Output your answer inside of \\boxed{{}} tags.:\n"
    "{problem}\n\nLet's think step-by-step"
)

LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}) in text, nested braces matched; None if there is none."""
    from tasks.grader import boxed_contents  # the grader's own extractor (it imports sympy: only the MATH sets need it)

    boxes = boxed_contents(text)
    return boxes[-1] if boxes else None


def gsm8k_gold(solution: str) -> str | None:
    """GSM8K solutions end with '#### N'; gold is N without thousands commas ('#### 1,234' -> '1234')."""
    if "####" not in solution:
        return None
    return solution.rsplit("####", 1)[1].strip().replace(",", "")


def as_is(text: str) -> str | None:
    """The column already holds a short answer (e.g. AIME '025': kept as a string, leading zeros and all)."""
    return text.strip() or None


class DatasetSpec(NamedTuple):
    path: str  # hub id, for datasets.load_dataset
    configs: tuple[str | None, ...]  # one config, or several to concatenate (aime25: I + II)
    splits: dict[str, str]  # our split name -> the hub's split name
    question: tuple[str, ...]  # question column; the first one a row has wins
    answer: tuple[str, ...]  # column holding the gold answer (or a solution to read it from)
    extract: Callable[[str], str | None]  # that column's text -> short gold answer
    extras: dict[str, str]  # our key -> hub column ("level", "subject")


DATASETS: dict[str, DatasetSpec] = {
    "math_lighteval": DatasetSpec(
        "DigitalLearningGmbH/MATH-lighteval",
        ("default",),
        {"train": "train", "test": "test"},
        ("problem",),
        ("solution",),
        last_boxed,
        {"level": "level", "subject": "type"},
    ),
    "math500": DatasetSpec(
        "HuggingFaceH4/MATH-500",
        (None,),
        {"test": "test"},
        ("problem",),
        ("answer",),
        as_is,
        {"level": "level", "subject": "subject"},
    ),
    "minerva": DatasetSpec("math-ai/minervamath", (None,), {"test": "test"}, ("question", "problem"), ("answer",), as_is, {}),
    "gsm8k": DatasetSpec(
        "openai/gsm8k", ("main",), {"train": "train", "test": "test"}, ("question",), ("answer",), gsm8k_gold, {}
    ),
    # The hub stores AIME 2024 as its only split, "train"; it is an evaluation set, so we call it "test".
    "aime24": DatasetSpec("HuggingFaceH4/aime_2024", (None,), {"test": "train"}, ("problem",), ("answer",), as_is, {}),
    "aime25": DatasetSpec(
        "opencompass/AIME2025", ("AIME2025-I", "AIME2025-II"), {"test": "test"}, ("question",), ("answer",), as_is, {}
    ),
    "deepscaler": DatasetSpec(
        "agentica-org/DeepScaleR-Preview-Dataset", (None,), {"train": "train"}, ("problem",), ("answer",), as_is, {}
    ),
}


def _level(value) -> int | None:
    """MATH levels come as 5 or 'Level 5'; a few MATH rows say 'Level ?', which becomes None."""
    if isinstance(value, int):
        return value
    digits = str(value).removeprefix("Level").strip()
    return int(digits) if digits.isdigit() else None


def _column(record: dict, names: tuple[str, ...], index: int, source: str):
    for name in names:
        if record.get(name) is not None:
            return record[name]
    wanted = " or ".join(repr(n) for n in names)
    raise ValueError(f"{source}: row {index} has no {wanted} column, or it is empty (columns: {', '.join(record)})")


def _to_rows(
    records,
    source: str,
    question: tuple[str, ...],
    answer: tuple[str, ...],
    extract: Callable[[str], str | None],
    extras: dict[str, str],
) -> list[dict]:
    """Map raw records to {"question", "answer", ...}: the one code path for hub data and local files."""
    rows, dropped, empty = [], 0, 0
    for i, record in enumerate(records):
        row = {"question": _text(record, question, i, source)}
        if not row["question"].strip():  # nothing to ask: an empty prompt
            empty += 1
            continue
        gold = extract(_text(record, answer, i, source))
        if gold is None:  # e.g. a solution without \boxed{}: it could never be graded, so it cannot be a prompt
            dropped += 1
            continue
        row["answer"] = gold
        for key, col in extras.items():  # a row without one has None, as a MATH row with 'Level ?' has
            value = record.get(col)
            row[key] = None if value is None else _level(value) if key == "level" else str(value)
        rows.append(row)
    if dropped:
        warnings.warn(f"{source}: dropped {dropped} rows whose gold answer could not be read")
    if empty:
        warnings.warn(f"{source}: dropped {empty} rows whose question is empty")
    if not rows:
        raise ValueError(f"{source}: no row has both a question and a readable gold answer")
    return rows


def _text(record: dict, names: tuple[str, ...], index: int, source: str) -> str:
    """A question or answer cell as text. Local JSON numbers arrive as the file spells them; a JSON true, list or
    object has no spelling as a question or a gold answer (str() would make up "True" or "['1', '2']")."""
    value = _column(record, names, index, source)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        kind = {bool: str(value).lower(), list: "a list", dict: "an object"}.get(type(value), type(value).__name__)
        raise ValueError(
            f"{source}: row {index} holds {kind} in its {' or '.join(repr(n) for n in names)} column: write it as a "
            f"string or a number"
        )
    return str(value)


def _read_file(path: Path):
    """The records of a local .jsonl/.json/.parquet file. JSON is read here, numbers kept exactly as the file
    spells them (a gold answer 9007199254740993 or 1e+25 must not become a float); parquet through datasets."""
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a data file: give one of its .jsonl/.json/.parquet files")
    if not path.is_file():
        raise FileNotFoundError(f"no such data file: {path}")
    if path.suffix.lower() == ".parquet":
        from datasets import load_dataset

        try:
            return load_dataset("parquet", data_files=str(path), split="train")
        except Exception as err:  # pyarrow's errors: a file cut short, not parquet at all
            raise ValueError(f"{path} could not be read as parquet ({type(err).__name__}: {err})") from None
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (what some Windows editors write) is not text
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text (byte {err.start}: {err.reason}): save it as UTF-8") from None
    exact = dict(parse_float=str, parse_int=str)
    try:
        if path.suffix.lower() == ".json" and text.lstrip()[:1] in ("[", "{"):
            data = json.loads(text, **exact)
            records = data.get("data", data.get("rows", data)) if isinstance(data, dict) else data
            records = [records] if isinstance(records, dict) else records
        else:  # JSON lines, each parsed alone so that an error names the file's own line
            records = []
            for number, line in enumerate(text.splitlines(), 1):
                try:
                    records += [json.loads(line, **exact)] if line.strip() else []
                except ValueError as err:
                    raise ValueError(f"line {number}: {err.msg}") from None
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(records, list) or not records or not all(isinstance(record, dict) for record in records):
        raise ValueError(f"{path} holds no rows: expected JSON objects, one per line (.jsonl) or in a list (.json)")
    return records


def _local_copy(name: str, config: str | None, split: str, several_configs: bool) -> Path:
    """DATA_DIR/<name>[/<config>]/<split>.<ext>: where an offline copy of a hub split lives."""
    folder = Path(os.environ["DATA_DIR"]) / name
    if several_configs:
        folder = folder / config
    for suffix in LOCAL_SUFFIXES:
        if (folder / f"{split}{suffix}").is_file():
            return folder / f"{split}{suffix}"
    raise FileNotFoundError(f"DATA_DIR is set but {folder}/{split}.{{jsonl,json,parquet}} does not exist")


def _load_hub(path: str, config: str | None, split: str, name: str):
    from datasets import load_dataset

    try:
        return load_dataset(path, config, split=split)
    except Exception as err:  # no network, no cached copy, a moved dataset: say what to do instead
        raise ValueError(
            f"could not load {path} from the hub ({type(err).__name__}). Offline, use a local file "
            f"(--dataset path/to/{name}.jsonl), or DATA_DIR=<folder> with {name}/<split>.jsonl, or "
            f"HF_DATASETS_OFFLINE=1 with a copy already in the datasets cache"
        ) from None


def _load_registered(name: str, split: str) -> list[dict]:
    spec = DATASETS[name]
    if split not in spec.splits:
        raise ValueError(f"unknown split {split!r} for {name}; choose from: {', '.join(spec.splits)}")
    rows = []
    for config in spec.configs:
        if os.environ.get("DATA_DIR"):
            path = _local_copy(name, config, split, len(spec.configs) > 1)
            records, source = _read_file(path), str(path)
        else:
            records, source = (
                _load_hub(spec.path, config, spec.splits[split], name),
                f"{spec.path}[{config or 'default'}/{spec.splits[split]}]",
            )
        rows += _to_rows(records, source, spec.question, spec.answer, spec.extract, spec.extras)
    return rows


def _load_local(path: Path, question_key: str | None, answer_key: str | None) -> list[dict]:
    records = _read_file(path)
    question = (question_key,) if question_key else ("question", "problem")
    columns = records.column_names if hasattr(records, "column_names") else {key for record in records for key in record}
    extras = {key: key for key in ("level", "subject") if key in columns}
    return _to_rows(records, str(path), question, (answer_key or "answer",), as_is, extras)


def check_template(template: str) -> str:
    """A prompt template holds {problem}, where the question goes, and nothing else to fill; else one line."""
    how = "it must hold {problem} (where the question goes) and no other field; write a literal brace as {{ or }}"
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        if fields == {"problem"}:
            template.format(problem="")  # a conversion or format spec that str.format refuses
    except (ValueError, KeyError, IndexError, AttributeError) as err:
        raise SystemExit(f"error: --template {template!r} cannot be filled ({err}): {how}") from None
    if fields != {"problem"}:
        found = ", ".join(sorted("{" + f + "}" for f in fields)) or "no field"
        raise SystemExit(f"error: --template {template!r} holds {found}: {how}")
    return template


def drop_long_prompts(rows: list[dict], tokenizer, template: str, config, max_new_tokens: int, what: str) -> list[dict]:
    """The rows whose prompt leaves room for a response of max_new_tokens in the model's positions
    (config.max_position_embeddings), each with its prompt's token ids added ("prompt_ids": what the rollout
    reads); the others are dropped here, at load time, with a count, rather than sampled past the model's
    positions."""
    positions = getattr(config, "max_position_embeddings", None)
    room = None if positions is None else positions - max_new_tokens
    if room is not None and room < 1:
        raise SystemExit(
            f"error: --max-new-tokens {max_new_tokens} leaves no room for a prompt in the model's {positions} positions"
        )
    encoded = [
        dict(row, prompt_ids=tokenizer.encode(build_prompt(tokenizer, row["question"], template), add_special_tokens=False))
        for row in rows
    ]
    check_vocabulary(tokenizer, config, [row["prompt_ids"] for row in encoded])
    kept = [row for row in encoded if room is None or len(row["prompt_ids"]) <= room]
    if len(kept) < len(rows):
        warnings.warn(
            f"{what}: dropped {len(rows) - len(kept)} of {len(rows)} prompts longer than {room} tokens "
            f"(the model's positions minus --max-new-tokens)"
        )
    if not kept:
        raise SystemExit(f"error: {what}: every prompt is longer than {room} tokens; lower --max-new-tokens")
    return kept


def check_vocabulary(tokenizer, config, prompts):
    """Every token id the model will read (the prompts', EOS, padding) is in its vocabulary, or one line: a
    tokenizer with more tokens than the model's embedding (another model's, or one grown by added tokens) would
    fail inside the model with an IndexError."""
    vocab = getattr(config, "vocab_size", None)
    ids = [i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None] + [i for p in prompts for i in p]
    if vocab is not None and ids and max(ids) >= vocab:
        raise SystemExit(
            f"error: the tokenizer gives token id {max(ids)} ({len(tokenizer)} tokens), but the model's vocabulary has "
            f"{vocab}: the tokenizer is not the model's (copy the tokenizer files from the model's own folder)"
        )


def _subset(rows: list[dict], limit: int | None, seed: int) -> list[dict]:
    """A seeded random subset of `limit` rows in their original order (same seed -> same subset)."""
    if limit is None or limit >= len(rows):
        return rows
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    keep = sorted(random.Random(seed).sample(range(len(rows)), limit))
    return [rows[i] for i in keep]


def load_problems(
    name: str,
    split: str = "test",
    limit: int | None = None,
    seed: int = 0,
    question_key: str | None = None,
    answer_key: str | None = None,
) -> list[dict]:
    """Rows {"question", "answer"[, "level", "subject"]} of a short-named dataset or a local file.

    For a local file `split` is ignored (a file is one split) and question_key/answer_key name its columns
    (defaults: "question", or "problem" when a row has no "question"; "answer"). The answer column is used
    as is, so it must hold short gold answers, not worked solutions.
    """
    if is_toy(name):
        from tasks import toytask  # lazy: the math sets do not need it

        if split == "train":
            return toytask.load_problems(name, "train", limit, seed)  # `limit` fresh problems, drawn with `seed`
        rows = toytask.load_problems(name, split)
    elif name == "arith":
        from tasks import arith

        rows = arith.load_problems(split)
    elif name in DATASETS:
        rows = _load_registered(name, split)
    elif name.lower().endswith(LOCAL_SUFFIXES):
        rows = _load_local(Path(name), question_key, answer_key)
    elif os.path.isdir(name):
        raise ValueError(f"--dataset {name} is a folder: give one of its .jsonl/.json/.parquet files")
    else:
        choices = ", ".join([*DATASETS, "toy", "toy-aligned", "arith"])
        raise ValueError(f"unknown dataset {name!r}; choose from: {choices}, or a .jsonl/.json/.parquet file path")
    return _subset(rows, limit, seed)


def load_or_exit(*args, **kwargs) -> list[dict]:
    """load_problems for the command-line scripts: a bad name, split, file or column stops with one line."""
    try:
        return load_problems(*args, **kwargs)
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}")


def default_template(name: str) -> str:
    """The prompt template for a dataset: the toy and arith tasks have their own; every math set shares COT_TEMPLATE."""
    if is_toy(name):
        from tasks import toytask

        return toytask.PROMPT_TEMPLATE
    if name == "arith":
        from tasks import arith

        return arith.PROMPT_TEMPLATE
    return COT_TEMPLATE


def build_prompt(tokenizer, question: str, template: str = COT_TEMPLATE) -> str:
    """The formatted template as the user turn of the tokenizer's chat template, ready for generation.

    No system message is passed, as in the authors' pipeline. Some templates add one anyway: Qwen2.5's
    inserts "You are Qwen, created by Alibaba Cloud. You are a helpful assistant." when none is given. That
    is the template's own behaviour, and the authors' models saw it too, so we keep it.
    A tokenizer without a chat template (the toy model, base models) gets the plain formatted text.
    """
    text = template.format(problem=question)
    if getattr(tokenizer, "chat_template", None) is None:
        return text
    messages = [{"role": "user", "content": text}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
