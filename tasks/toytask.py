"""
The embedded toy task: add a chain of 4-6 single-digit numbers.

It is built to carry the one mechanism the paper is about, at a size a laptop CPU can train in minutes:

    prompt            3+5+2+7:
    long response     3+5=8,2+8=10,10+7=17#17<eos>     step by step, usually right
    short response    #20<eos>                          a bare estimate, usually wrong

* The long style writes running sums. Each step may put its two operands in either order ("3+5" or
  "5+3"); both are right, so the base model spreads probability over them. That harmless entropy makes
  every long response individually unlikely: about log(2) nats lost per step.
* The short style writes the sum rounded to the nearest ten: a confident guess that is right only when
  the sum happens to be a multiple of ten. Its two or three tokens carry almost no entropy.
* The base model is trained (build_toy.py) on a mixture of the two styles, so the short style has lower
  probability as a *style* but its responses are *each* far more likely than any single long response.
  The mode of pi_ref over whole sequences is therefore short and wrong; that is exactly the situation in
  which the paper says likelihood sharpening fails, while a correctness reward pushes toward the long
  style and fixes the arithmetic.
* In the long-style training data a step's sum is off by one with probability STEP_ERROR, so the base
  model makes arithmetic slips and its accuracy is imperfect (pass@1 ~ 0.3-0.6, pass@16 much higher).

The variant "toy-aligned" has no short style: the base model's most likely answer is then the correct
long one, and sharpening *does* help. What the toy does not show: anything about how real models
represent math, or how large the effects are on them. It shows the mechanism, not the magnitudes.
"""

import random
import re

PROMPT_TEMPLATE = "{problem}:"  # raw text: the toy tokenizer has no chat template
VARIANTS = {"toy": 0.35, "toy-aligned": 0.0}  # variant -> share of short-style responses in the base data
STEP_ERROR = 0.08  # chance that a step's running sum is off by one in the base model's training data
MIN_TERMS, MAX_TERMS = 4, 6
NUM_TEST = 256
TEST_SEED = 1234  # the test split is a fixed set of problems, whatever seed a run uses
CHARSET = "0123456789+=,#:"  # every character the task uses; the tokenizer has one token per character


def is_toy(dataset):
    """The embedded toy task (this file + toy_models/), named exactly: a file called toys.jsonl is not it."""
    return dataset in VARIANTS


def random_terms(rng):
    return [rng.randint(1, 9) for _ in range(rng.randint(MIN_TERMS, MAX_TERMS))]


def question_of(terms):
    return "+".join(map(str, terms))


def long_response(terms, rng, step_error=STEP_ERROR):
    """Running sums, operands in random order; a step may slip by one (and the slip propagates)."""
    total, steps = terms[0], []
    for t in terms[1:]:
        new_total = total + t
        if rng.random() < step_error:
            new_total += rng.choice([-1, 1])
        a, b = (total, t) if rng.random() < 0.5 else (t, total)
        steps.append(f"{a}+{b}={new_total}")
        total = new_total
    return ",".join(steps) + f"#{total}"


def short_response(terms):
    """A bare estimate: the sum rounded to the nearest ten (right only for multiples of ten)."""
    return f"#{10 * round(sum(terms) / 10)}"


def _test_questions():
    rng = random.Random(TEST_SEED)
    questions = []
    while len(questions) < NUM_TEST:
        q = question_of(random_terms(rng))
        if q not in questions:
            questions.append(q)
    return questions


TEST_QUESTIONS = _test_questions()
_TEST_SET = frozenset(TEST_QUESTIONS)


def train_terms(rng):
    """A random training problem; never one of the test problems."""
    while True:
        terms = random_terms(rng)
        if question_of(terms) not in _TEST_SET:
            return terms


def check_variant(variant):
    if variant not in VARIANTS:
        raise ValueError(f"unknown toy variant {variant!r}; expected one of {sorted(VARIANTS)}")


def load_problems(variant="toy", split="test", limit=None, seed=0):
    """Rows {"question", "answer"}: the fixed test set (data.load_problems takes its seeded subsets), or
    `limit` fresh training problems (default 4096) drawn with `seed`."""
    check_variant(variant)
    if split == "test":
        questions = list(TEST_QUESTIONS)
    elif split == "train":
        rng = random.Random(seed)
        questions = [question_of(train_terms(rng)) for _ in range(limit or 4096)]
    else:
        raise ValueError(f"unknown split {split!r} for {variant}; expected 'train' or 'test'")
    return [{"question": q, "answer": str(sum(map(int, q.split("+"))))} for q in questions]


def sft_example(variant, rng):
    """One (prompt, response) pair of the base model's training mixture."""
    terms = train_terms(rng)
    prompt = PROMPT_TEMPLATE.format(problem=question_of(terms))
    response = short_response(terms) if rng.random() < VARIANTS[variant] else long_response(terms, rng)
    return prompt, response


_ANSWER = re.compile(r"#(\d+)")


def extract_answer(text):
    """The number after the first '#': the point where the model commits to an answer."""
    m = _ANSWER.search(text)
    return m.group(1) if m else None


def grade(response, gold):
    answer = extract_answer(response)
    return float(answer is not None and int(answer) == int(gold))
