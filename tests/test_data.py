"""data.py: short-named datasets (read from made-up fixtures in each hub format), local files, the prompt.

Offline: DATA_DIR points the loaders at tests/fixtures/hub, and the one hub test replaces
datasets.load_dataset with a fake. No test reads real data or the network.
"""

import json
from pathlib import Path

import datasets
import pytest

from tasks import data

FIXTURES = Path(__file__).parent / "fixtures"
HUB = FIXTURES / "hub"
LOCAL = FIXTURES / "local"


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """Short names read the fixture copies; the datasets cache goes to a temp folder."""
    monkeypatch.setenv("DATA_DIR", str(HUB))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


# name, split -> the rows the fixture must map to (answer, level, subject; None = the dataset has no such key)
EXPECTED = {
    ("math_lighteval", "test"): [
        ("\\frac{1}{2}", 1, "Prealgebra"),
        ("x^{2}+1", 3, "Algebra"),
        ("6", None, "Counting & Probability"),
    ],
    ("math500", "test"): [("1", 1, "Prealgebra"), ("3", 2, "Algebra"), ("(-2, 0)", 4, "Precalculus")],
    ("minerva", "test"): [("10",), ("2.5",), ("1",)],
    ("gsm8k", "test"): [("7",), ("1234",), ("-10",)],
    ("aime24", "test"): [("024",), ("001",), ("729",)],
    ("aime25", "test"): [("15",), ("001",), ("120",)],
    ("deepscaler", "train"): [("55",), ("5\\sqrt{2}",), ("\\frac{5}{6}",)],
}


def test_every_short_name_has_a_fixture():
    assert {name for name, _ in EXPECTED} == set(data.DATASETS)


@pytest.mark.parametrize("name,split", list(EXPECTED))
def test_short_name_maps_rows(name, split):
    rows = data.load_problems(name, split)
    expected = EXPECTED[name, split]
    assert [r["answer"] for r in rows] == [e[0] for e in expected]
    assert all(isinstance(r["question"], str) and r["question"] for r in rows)
    if len(expected[0]) == 3:
        assert [r["level"] for r in rows] == [e[1] for e in expected]
        assert [r["subject"] for r in rows] == [e[2] for e in expected]
    else:
        assert all(set(r) == {"question", "answer"} for r in rows)


def test_question_text_comes_through():
    assert data.load_problems("gsm8k")[0]["question"].startswith("Ann has 3 apples")
    assert data.load_problems("aime25")[2]["question"].startswith("How many subsets")  # AIME2025-II comes second
    assert data.load_problems("minerva")[0]["question"].startswith("A star has parallax")


def test_gsm8k_gold_and_last_boxed():
    assert data.gsm8k_gold("1000 + 234 = 1234\n#### 1,234") == "1234"
    assert data.gsm8k_gold("no final line") is None
    assert data.last_boxed("so $\\boxed{\\frac{1}{2}}$.") == "\\frac{1}{2}"
    assert data.last_boxed("\\boxed{1} then \\boxed{\\{a, b\\}^{2}}") == "\\{a, b\\}^{2}"
    assert data.last_boxed("\\fbox{7}") == "7"
    assert data.last_boxed("no box here") is None
    assert data.last_boxed("\\boxed{\\frac{1}{2}") is None  # unbalanced


def test_solution_without_boxed_is_dropped_with_a_warning(tmp_path, monkeypatch):
    folder = tmp_path / "math_lighteval"
    folder.mkdir()
    datasets.Dataset.from_list(
        [
            {"problem": "p1", "level": "Level 2", "type": "Algebra", "solution": "so \\boxed{4}"},
            {"problem": "p2", "level": "Level 2", "type": "Algebra", "solution": "the answer is 4"},
        ]
    ).to_parquet(folder / "test.parquet")
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    with pytest.warns(UserWarning, match="dropped 1 rows"):
        rows = data.load_problems("math_lighteval")
    assert [r["question"] for r in rows] == ["p1"]


def test_hub_path_calls_load_dataset_with_hub_ids(monkeypatch):
    """Without DATA_DIR the registry's hub id, config and hub split reach datasets.load_dataset."""
    monkeypatch.delenv("DATA_DIR")
    calls = []

    def fake_load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        return datasets.Dataset.from_list([{"question": f"q from {name}", "problem": "p", "answer": "025"}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert data.load_problems("aime24")[0]["answer"] == "025"
    rows = data.load_problems("aime25")
    assert [r["question"] for r in rows] == ["q from AIME2025-I", "q from AIME2025-II"]
    assert calls == [
        ("HuggingFaceH4/aime_2024", None, "train"),
        ("opencompass/AIME2025", "AIME2025-I", "test"),
        ("opencompass/AIME2025", "AIME2025-II", "test"),
    ]


@pytest.mark.parametrize("filename", ["custom.jsonl", "custom.json", "custom.parquet"])
def test_local_file_with_custom_keys(filename):
    rows = data.load_problems(str(LOCAL / filename), question_key="prompt", answer_key="target")
    assert [r["answer"] for r in rows] == ["4", "15", "3"]
    assert rows[0]["question"] == "What is 2 + 2?"


def test_local_file_keeps_level_and_falls_back_to_problem():
    assert [r["level"] for r in data.load_problems(str(LOCAL / "custom.jsonl"), question_key="prompt", answer_key="target")] == [
        1,
        2,
        1,
    ]
    rows = data.load_problems(str(LOCAL / "problem_only.jsonl"))
    assert rows == [{"question": "What is 6 / 3?", "answer": "2"}, {"question": "What is 9 - 1?", "answer": "8"}]


def test_missing_column_names_column_and_row():
    with pytest.raises(ValueError, match=r"row 2 has no 'answer' column") as err:
        data.load_problems(str(LOCAL / "missing_answer.jsonl"))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"row 0 has no 'nope' column"):
        data.load_problems(str(LOCAL / "custom.jsonl"), question_key="nope", answer_key="target")


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError) as err:
        data.load_problems("math5000")
    message = str(err.value)
    assert "\n" not in message and "math5000" in message
    for name in [*data.DATASETS, "toy", "toy-aligned"]:
        assert name in message


def test_unknown_split_names_the_splits():
    with pytest.raises(ValueError, match=r"unknown split 'validation' for gsm8k; choose from: train, test"):
        data.load_problems("gsm8k", "validation")
    with pytest.raises(ValueError, match=r"choose from: train"):
        data.load_problems("deepscaler", "test")


def test_missing_local_copy_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="gsm8k"):
        data.load_problems("gsm8k")
    with pytest.raises(FileNotFoundError, match="no such data file"):
        data.load_problems(str(tmp_path / "absent.jsonl"))


def test_limit_seed_gives_stable_subsets(tmp_path):
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps({"question": f"q{i}", "answer": str(i)}) + "\n" for i in range(50)))
    first = data.load_problems(str(path), limit=10, seed=3)
    assert first == data.load_problems(str(path), limit=10, seed=3)
    assert len(first) == 10
    ids = [int(r["answer"]) for r in first]
    assert ids == sorted(ids)  # original order kept
    assert first != data.load_problems(str(path), limit=10, seed=4)
    assert len(data.load_problems(str(path), limit=500)) == 50


def test_toy_names_are_delegated():
    from tasks import toytask

    subset = data.load_problems("toy", "test", limit=5, seed=1)
    everything = toytask.load_problems("toy", "test")
    assert subset == data._subset(everything, 5, 1) and len(subset) == 5
    assert [everything.index(r) for r in subset] == sorted(everything.index(r) for r in subset)  # in order
    assert data.default_template("toy-aligned") == toytask.PROMPT_TEMPLATE
    assert data.default_template("math500") == data.COT_TEMPLATE


def make_tokenizer(chat_template):
    """A tiny offline tokenizer; the chat template renders turns as <|role|>content."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    tok.chat_template = chat_template
    return tok


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def test_build_prompt_uses_chat_template():
    prompt = data.build_prompt(make_tokenizer(CHAT_TEMPLATE), "What is $1+1$?")
    cot = data.COT_TEMPLATE.format(problem="What is $1+1$?")
    assert prompt == f"<|user|>{cot}<|assistant|>"
    assert "<|system|>" not in prompt
    assert "Output your answer inside of \\boxed{} tags." in prompt  # single backslash, braces unescaped
    assert "What is $1+1$?\n\nLet's think step-by-step" in prompt


def test_build_prompt_without_chat_template():
    tok = make_tokenizer(None)
    assert data.build_prompt(tok, "2+3") == data.COT_TEMPLATE.format(problem="2+3")
    assert data.build_prompt(tok, "2+3", template="{problem}:") == "2+3:"
