"""A binary math-answer grader: the *task reward* R(y) in {0, 1}.

The paper compares RL with a task reward (is the final answer right?) against RL with a
likelihood reward (sharpening the model's own distribution). The task reward is only as good
as the grader behind it, and a grader can fail in two directions:

* too lenient (partial matches, "3 or 5" accepted, several boxed guesses accepted if one is
  right): the policy learns to hedge, and the reward climbs without any real skill;
* too strict ("\\dfrac{1}{2}" != "0.5", "025" != "25", "5 \\text{ cm}" != "5"): correct answers
  score 0, so real gains are hidden and the two rewards look more alike than they are.

The grader here is binary: no partial credit, no format credit. It works in three steps:

1. `extract_answer`: take the last ``\\boxed{...}`` (else ``#### N``, else "the answer is N").
   A response with several boxed answers must commit: every one must match the gold.
2. `normalize_answer`: a cheap canonical string (LaTeX spellings, units, thousands separators,
   exact numbers as "p/q"). Equal strings are a match; the same strings drive maj@k voting.
3. `answers_match`: compare structures (tuples, intervals, sets, matrices, equations) and then
   scalars: exact fractions first, then sympy. The LaTeX is parsed by a small parser here that
   builds sympy objects directly (model output is never `eval`-ed), with size guards (input length,
   nesting, exponents, factorials) so that no absurd number is ever built. Numbers are equal exactly
   where their difference is rational (integers of any size, fractions); otherwise to 60 significant
   digits, both sides finite, at a precision raised until the difference is resolved. An infinite,
   undefined or overflowing value never equals a finite gold. Expressions in variables are equal as real
   functions: the same domain and the same values on it (sqrt(x^2) = |x| but not x; log(x^2) = 2 log|x|
   but not 2 log x), checked at random rational points of both signs and |x| from 10^-3 to 10^5, and along each
   variable's axis also between every two zeros of what is under a |.|, root or logarithm. Rational functions
   are compared exactly, modulo a random 61-bit prime.

Numbers are read as people write them, the same way on the gold's side and the answer's. A spelling that reads
as two different numbers is no number: it equals only the same spelling.

* `1e25`, `2.5E-3` (a mantissa, e or E and an integer exponent, nothing glued before, no space inside) is
  scientific notation and equals `10^{25}`, `1\\times10^{25}`, `1×10^{25}`; an e anywhere else is Euler's
  number: `25e` is 25e, `2e - 3` is 2e minus 3. An exponent without braces is the whole number after `^`:
  `10^25` is 10^{25} and `2^10` is 1024, as people type them (never 10^2 times 5).
* The minus sign U+2212 and the full-width and small hyphen-minus are `-`; `×` and `⋅` are products; `±`,
  `π`, `∞`, `½`, `x²` are `\\pm`, `\\pi`, `\\infty`, `\\frac{1}{2}`, `x^{2}`. An en dash (`3–5`, a range) and a middle
  dot (`2·5`, a decimal point in some countries) are no sign and no product.
* Digits apart are one number only as thousands: `12 345`, `1\\,000`, `1~000`, `1{,}000`, `10,\\!080`, and a comma
  without a space when it is the whole answer (`1,234`; in `(1,234)` it separates). `1 2` is no number, and
  `1, 234` is a list. `2 1/2` and `2\\frac{1}{2}` are the mixed number 5/2; inside an expression
  (`2\\frac{1}{2}\\pi`) a mixed number is no number (it also reads as 2 times 1/2).
* `0.\\overline{3}`, `0.\\bar{3}` and `0.(3)` are 1/3; `0.1(6)` is no number (0.1666... or 0.1 times 6).
  `0.333...` (or `\\ldots`, `…`) is digits cut short, no exact value: it equals only the same digits cut short,
  never 0.333 nor 1/3 (a gold written so accepts only itself).
* A leading `+` is dropped; two signs in a row (`+-5`, `3+-2`, how people type ±) are no number. `25\\%` is 25
  (the percent sign is dropped, never read as /100). A unit after the number is dropped (`5 cm`, `15cm^2`,
  `2\\text{ m}`, `2 m`), but a one-letter unit glued to the number is a variable: `2m` is 2 times m.

The whole check, extraction included, runs in a worker process under a hard time limit (timelimit.py),
so the bound and the verdict are the same on every thread. The reference grader of the paper is HF
`math-verify`; `grade(..., backend="math_verify")` calls it (in the same worker) when it is installed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import random
import re
from fractions import Fraction
from typing import NamedTuple

import sympy

from tasks import timelimit

GRADERS = ("builtin", "math_verify")

MAX_RESPONSE_CHARS = 100_000  # only a response's last 100k characters are read (~25k tokens): bounded work

_MAX_ANSWER_CHARS = 1000  # longer "answers" are compared as raw strings only
_MAX_SYMBOLIC_CHARS = 400  # longer answers never reach sympy
_MAX_DEPTH = 50  # parser nesting limit (also keeps us far from RecursionError)
_MAX_EXPONENT = 10_000  # |n| in x^n
_MAX_DIGITS = 10_000  # digits of any number we let sympy build
_MAX_PLAIN_DIGITS = 100  # 1e25, 10^{25}, 2.5\times10^{-3} are written out as exact numbers up to this many digits


class _Unparsable(Exception):
    """The answer is outside the LaTeX subset we parse (or too big): compare it as a string."""


# --------------------------------------------------------------------------- extraction
_BOX_RE = re.compile(r"\\(?:boxed|fbox|framebox)\s*\{")


def _closing_brace(text: str, start: int) -> int | None:
    """Index of the '}' that closes text[start] == '{' (escaped \\{ \\} do not count)."""
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        depth += (c == "{") - (c == "}")
        if depth == 0:
            return i
        i += 1
    return None


def boxed_contents(text: str) -> list[str]:
    """The non-empty contents of every top-level \\boxed{...} / \\fbox{...}, in order."""
    found, pos = [], 0
    while (m := _BOX_RE.search(text, pos)) is not None:
        end = _closing_brace(text, m.end() - 1)
        if end is None:  # truncated box: nothing after it can close either
            break
        content = _unbox(text[m.end() : end].strip())
        if content:  # an empty \boxed{} (e.g. the prompt's instruction echoed) is no answer
            found.append(content)
        pos = end + 1
    return found


def _unbox(s: str) -> str:
    """'\\boxed{\\boxed{3}}' -> '3': a box around the whole answer is decoration.
    (A few levels only: each level rescans the string.)"""
    for _ in range(3):
        m = _BOX_RE.match(s)
        if m is None or _closing_brace(s, m.end() - 1) != len(s) - 1:
            break
        s = s[m.end() : -1].strip()
    return s


def extract_answer(text: str) -> str | None:
    """The final answer of a response: last \\boxed{} / \\fbox{}, else '#### N', else
    'the answer is N'. None when there is none. This is what maj@k votes on; grade() is
    stricter and also requires any earlier boxed answers to match the gold."""
    if not isinstance(text, str):
        return None
    boxes = boxed_contents(text)
    if boxes:
        return boxes[-1]
    hashes = text.rfind("####")
    if hashes >= 0:
        return text[hashes + 4 :].strip().split("\n")[0].strip() or None
    said = text.lower().rfind("answer is")
    if said >= 0:
        line = text[said + len("answer is") :].split("\n")[0]
        line = re.split(r"\.\s", line)[0]  # end of the sentence, not a decimal point
        return line.strip(" :$").rstrip(".").strip(" $") or None
    return None


# --------------------------------------------------------------------------- normalization
_UNITS = set(
    """cm centimeter centimeters m meter meters metre metres km kilometer kilometers
mm inch inches ft foot feet yard yards mile miles mph sq square cubic unit units degree degrees
dollar dollars cent cents hour hours hr hrs minute minutes min mins second seconds sec day days
week weeks month months year years gram grams g kg pound pounds lb lbs ounce ounces oz liter
liters litre litres ml gallon gallons percent""".split()
)
_TEXT_RE = re.compile(
    r"\\(?:text|textbf|textit|textrm|mbox|mathrm|mathbf|mathit)\s*"
    r"\{([^{}]*)\}(\^\{?[23]\}?)?"
)
_SPACING_RE = re.compile(
    r"\\(?:left|right)[.]|\\(?:left|right|big|Big|bigg|Bigg|displaystyle"
    r"|quad|qquad)(?![a-zA-Z])|(?<!\\)\\[!,;: ]|~"
)  # not the \\ row break
_DEGREES_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|\\degree|°")
_TRAILING_UNIT_RE = re.compile(r"^(.*?)(\s*)(?<![a-zA-Z\\])([a-zA-Z]+)\.?(\^\{?[23]\}?)?$")
_ASSIGN_RE = re.compile(r"^(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?\w+\}?)?(?:=(?!=)|\\in(?![a-zA-Z]))(.+)$")
_THOUSANDS_RE = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_NUMBER_RE = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")
_SLASH_RE = re.compile(r"(-?\d+)/(\d+)")
_FRAC_RE = re.compile(r"(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}")
_MIXED_RE = re.compile(r"(-?)(\d+)(?:\\frac\{(\d+)\}\{(\d+)\}| (\d+)/(\d+))")  # 2\frac{1}{2} and 2 1/2 mean 2.5
_REPEATING_RE = re.compile(r"(\d*)\.(\d*)(?:\\overline\{(\d+)\}|\((\d+)\))")  # 0.1\overline{6}, 0.(3)
_POWER_OF_TEN_RE = re.compile(r"(-?)(\{)?(?:(\d+\.?\d*|\.\d+)\\(?:cdot|times))?10\^(?:\{([+-]?\d+)\}|(\d+))(?(2)\})")
# What people paste: the minus sign and the full-width and small hyphen-minus are '-' (an en dash is not: 3–5 is a
# range); x and the dot operator are products (a middle dot is not: 2·5 is also a decimal point); ± ∓ … π ∞.
_UNICODE = str.maketrans(
    {"\u2212": "-", "\uff0d": "-", "\ufe63": "-", "\u00d7": r"\times ", "\u22c5": r"\cdot ", "\u00b1": r"\pm "}
    | {"\u2213": r"\mp ", "\u2026": r"\ldots ", "\u03c0": r"\pi ", "\u221e": r"\infty "}
    | {"\u00bd": r"\frac{1}{2}", "\u00bc": r"\frac{1}{4}", "\u00be": r"\frac{3}{4}", "\u2153": r"\frac{1}{3}"}
    | {"\u2154": r"\frac{2}{3}"}
)
_SUPERSCRIPT_RE = re.compile("[\u2070\u00b9\u00b2\u00b3\u2074-\u2079\u207a\u207b]+")  # x², 10²⁵, 10⁻³
_SUPERSCRIPTS = str.maketrans("\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079\u207a\u207b", "0123456789+-")
_ELLIPSIS_RE = re.compile(r"\.\.\.|\\[lc]?dots(?![a-zA-Z])")
# 1e25, 2.5E-3: a number (mantissa, e or E, an integer exponent, no space inside), as in every programming
# language; nothing glued before it, and no digit after it. An e elsewhere is Euler's number.
_SCIENTIFIC_RE = re.compile(r"(?<![\w.^])(\d+\.?\d*|\.\d+)[eE]([+-]?)0*(\d+)(?!\d|\.\d)")
_E_AFTER_NUMBER_RE = re.compile(r"(?<![\w.^])(\d+\.?\d*|\.\d+)\s*([eE])(?=\s*[+-]?\s*\d)")  # 2e - 3: 2 times e
_GAP = r"(?:\s|(?<!\\)\\[,;: !]|~)+"  # what people put between digit groups: spaces, thin spaces, \, \! ~
_DIGIT_RUN_RE = re.compile(rf"(?<![\d.])\d+(?:{_GAP}\d+)+")
_LIST_COMMA_RE = re.compile(rf"\d,{_GAP}\d")  # 1, 234: a list of two numbers
_SPACE_RE = re.compile(r"\s+")


def _text_or_unit(m: re.Match) -> str:
    """\\text{ cm} after a quantity is a unit (dropped); any other \\text{...} is unwrapped."""
    word = m.group(1).strip()
    if m.string[: m.start()].strip() and all(w in _UNITS for w in word.lower().split()):
        return ""
    return word + (m.group(2) or "")


def _strip_units(s: str) -> str:
    """'5 cm', '12 square feet', '15cm^2', '2 m' -> the quantity (only when a quantity is left). A one-letter unit
    glued to the number is a variable: 2m is 2 times m."""
    t = s
    while (m := _TRAILING_UNIT_RE.match(t)) and m.group(3).lower() in _UNITS and (m.group(2) or len(m.group(3)) > 1):
        t = m.group(1)
    return t if re.search(r"[\d}]$", t) else s


def _scientific(m: re.Match) -> str:
    """'2.5e-3' -> '{2.5\\cdot10^{-3}}' (in braces: 1/2e3 is 1/2000)."""
    return rf"{{{m[1]}\cdot10^{{{'-' if m[2] == '-' else ''}{m[3]}}}}}"


def _digit_groups(m: re.Match) -> str:
    """Digits apart: '12 345', '1\\,000' are thousands (groups of three after the first); '1 2' is no number,
    and keeps one space (which nothing reads as a number)."""
    groups = re.split(_GAP, m[0])
    if len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:]):
        return "".join(groups)
    return " ".join(groups)


def _squeeze(m: re.Match) -> str:
    """Whitespace goes, except between two letters ('\\sin x') or two digits ('1 2', no number)."""
    before, after = m.string[m.start() - 1 : m.start()], m.string[m.end() : m.end() + 1]
    letters = re.fullmatch("[A-Za-z]", before) and re.fullmatch("[A-Za-z]", after)
    return " " if letters or (re.fullmatch(r"\d", before) and re.fullmatch(r"\d", after)) else ""


def _clean(ans: str) -> str:
    """LaTeX-level cleanup shared by voting and grading; the result has no spaces except between letters (so that
    '\\sin x' keeps its meaning) and between digits that are no number ('1 2')."""
    s = _unbox(ans.strip()).translate(_UNICODE)
    s = _SUPERSCRIPT_RE.sub(lambda m: "^{" + m[0].translate(_SUPERSCRIPTS) + "}", s)
    s = s.replace("\\$", "").replace("$", "")
    s = re.sub(r"(?<!\\)\\[()\[\]]", "", s)  # \( \) \[ \] math delimiters (not after \\)
    s = _TEXT_RE.sub(_text_or_unit, s)
    s = _ELLIPSIS_RE.sub(r"\\ldots ", s)  # 0.333...: digits cut short, no exact value
    s = _SCIENTIFIC_RE.sub(_scientific, s)
    s = _E_AFTER_NUMBER_RE.sub(r"\1*\2", s)  # 2e - 3 is 2e minus 3: no later step may glue it into 2e-3
    s = re.sub(r"\\([dt]?frac)\s*(\d)\s*(\d)", r"\\\1{\2}{\3}", s)  # \frac 1 2: not digits apart
    s = re.sub(r"(?<=\d)(?:,\\!|\{,\})\s*(?=\d)", ",", s)  # 10,\!080 and 1{,}000: a thousands comma
    list_comma = _LIST_COMMA_RE.search(s) is not None
    s = _DIGIT_RUN_RE.sub(_digit_groups, s)
    s = _SPACING_RE.sub("", s)
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = _DEGREES_RE.sub("", s)
    s = s.replace("\\%", "").replace("%", "").replace("{,}", ",")
    s = re.sub(r"\\bar\s*(?=[{\d])", r"\\overline", s)
    s = re.sub(r"\\overline\s*(\d)", r"\\overline{\1}", s)
    s = _strip_units(s.strip())
    s = _SPACE_RE.sub(_squeeze, s)
    s = re.sub(r"([_^])\{(\w)\}(?!\d)", r"\1\2", s)  # x^{2} -> x^2, 52_{8} -> 52_8 (x^{2}3 stays)
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)  # \frac12
    s = re.sub(r"\\frac(\d)\{", r"\\frac{\1}{", s)
    s = re.sub(r"\\frac(\{[^{}]*\})(\d)", r"\\frac\1{\2}", s)
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)
    if s.count("=") <= 1 and (m := _ASSIGN_RE.match(s)):
        s = m.group(1)  # "x = 5", "x \in [1,2]": a bare variable on the left is not the answer
    s = re.sub(r"^\(([A-Z])\)$", r"\1", s.rstrip("."))  # "(C)" -> "C"
    s = re.sub(r"^\+(?![+-])", "", s)  # +5 is 5; +-5 is how people type ±5
    if _THOUSANDS_RE.fullmatch(s) and not list_comma:
        s = s.replace(",", "")
    return s


def _repeating(m: re.Match) -> Fraction | None:
    """0.1\\overline{6} = 1/6, 0.(3) = 1/3. 0.1(6) is none (0.1666... or 0.1 times 6?): only 0.(3) with nothing
    between the point and the parenthesis is read."""
    whole, fixed, period = m[1], m[2], m[3] or m[4]
    if (m[4] and fixed) or len(m[0]) > _MAX_DIGITS:
        return None
    shift = 10 ** len(fixed)
    return int(whole or 0) + Fraction(int(fixed or 0), shift) + Fraction(int(period), (10 ** len(period) - 1) * shift)


def _as_fraction(s: str) -> Fraction | None:
    """Exact value of a plain number: '025', '-0.50', '3/4', '\\frac{3}{4}', '2\\frac{1}{2}', '2 1/2', '0.(3)',
    '1e25' (cleaned to '{1\\cdot10^{25}}'), '10^{25}', '2.5\\times10^{-3}'."""
    try:
        if _NUMBER_RE.fullmatch(s) or _SLASH_RE.fullmatch(s):
            return Fraction(s)
        if m := _FRAC_RE.fullmatch(s):
            return Fraction(int(m[2]), int(m[3])) * (-1 if m[1] else 1)
        if m := _MIXED_RE.fullmatch(s):
            return (int(m[2]) + Fraction(int(m[3] or m[5]), int(m[4] or m[6]))) * (-1 if m[1] else 1)
        negative = s.startswith("-")
        if (m := _REPEATING_RE.fullmatch(s[negative:])) and (value := _repeating(m)) is not None:
            return -value if negative else value
        if (m := _POWER_OF_TEN_RE.fullmatch(s)) and len(m[4] or m[5]) <= 3:
            exponent = int(m[4] or m[5])
            if abs(exponent) + len(m[3] or "") <= _MAX_PLAIN_DIGITS:  # longer ones are left to the parser
                return Fraction(m[3] or 1) * Fraction(10) ** exponent * (-1 if m[1] else 1)
    except (ValueError, ZeroDivisionError):
        pass
    return None


def normalize_answer(ans: str) -> str:
    """Canonical string for an answer (used for maj@k voting and as the grader's fast path).
    Exact numbers become 'p' or 'p/q', so '\\dfrac{1}{2}', '\\frac12', '1/2', '0.5' all -> '1/2'."""
    if not isinstance(ans, str):
        return ""
    if len(ans) > _MAX_ANSWER_CHARS:
        return ans.strip()
    s = _clean(ans)
    value = _as_fraction(s)
    return s if value is None else str(value)


# --------------------------------------------------------------------------- structure
def _split_top(s: str, sep: str) -> list[str]:
    """Split at `sep` outside any brackets; (1,2] style mixed brackets count as a pair."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(s):
        depth += (c in "([{") - (c in ")]}")
        if depth == 0 and s.startswith(sep, i):
            parts.append(s[start:i])
            start = i + len(sep)
    return parts + [s[start:]]


def _wrapped(s: str) -> bool:
    """Does the bracket opening s close only at its very end? '(1,2]' yes, '(1)+(2)' no."""
    depth = 0
    for i, c in enumerate(s):
        depth += (c in "([{") - (c in ")]}")
        if depth == 0:
            return i == len(s) - 1
    return False


def _structure(s: str) -> tuple[str, list]:
    """('scalar', [s]) or a container kind with its items: 'matrix', 'set' (order-free),
    'list' (bare commas or a \\pm, order-free), 'union', or the bracket pair of a tuple/interval."""
    if m := re.fullmatch(r"\\begin\{([pbvB]?matrix)\}(.*)\\end\{\1\}", s):
        rows = [r.split("&") for r in m[2].split("\\\\") if r] or [[""]]
        return f"matrix{len(rows)}x{len(rows[0])}", [cell for row in rows for cell in row]
    if len(parts := _split_top(s, "\\cup")) > 1:
        return "union", parts
    if s.startswith("\\{") and s.endswith("\\}") and _wrapped(s[1:]):
        return "set", _split_top(s[2:-2], ",")
    if s[0] in "([" and s[-1] in ")]" and _wrapped(s) and len(_split_top(s[1:-1], ",")) > 1:
        return s[0] + s[-1], _split_top(s[1:-1], ",")
    if len(parts := _split_top(s, ",")) > 1:
        return "list", parts
    if len(parts := _split_top(s, "\\pm")) == 2:  # 1 \pm \sqrt{2}: both roots, as a list
        return "list", [f"{parts[0]}+({parts[1]})", f"{parts[0]}-({parts[1]})"]
    return "scalar", [s]


def _match_items(ps: list[str], gs: list[str], ordered: bool, depth: int) -> bool:
    if len(ps) != len(gs) or (not ordered and len(ps) > 32):  # the greedy pairing is O(n^2)
        return False
    if ordered:
        return all(_match_clean(p, g, depth) for p, g in zip(ps, gs))
    unused = list(gs)
    for p in ps:  # greedy matching is exact here because matching is an equivalence
        hit = next((g for g in unused if _match_clean(p, g, depth)), None)
        if hit is None:
            return False
        unused.remove(hit)
    return True


def _match_clean(p: str, g: str, depth: int = 0) -> bool:
    """Compare two cleaned answers: structure first, then scalars."""
    p, g = normalize_answer(p), normalize_answer(g)
    if p == g:
        return True
    if not p or not g or depth > 5:
        return False
    (kp, ip), (kg, ig) = _structure(p), _structure(g)
    if kp == kg == "scalar":
        return _scalar_match(p, g)
    if kp == kg:
        return _match_items(ip, ig, kp not in ("set", "list"), depth + 1)
    if {kp, kg} in ({"set", "list"}, {"list", "()"}):  # "1, 2" also reads as {1, 2} or (1, 2)
        return _match_items(ip, ig, "()" in (kp, kg), depth + 1)
    return False


def _scalar_match(p: str, g: str) -> bool:
    fp, fg = _as_fraction(p), _as_fraction(g)
    if fp is not None and fg is not None:
        return fp == fg
    if re.search(r"\d_\{?\w", p + " " + g):  # base-n numbers like 52_8: strings only
        return False
    if "=" in p or "=" in g:  # equations: compare side by side
        ps, gs = p.split("="), g.split("=")
        return len(ps) == len(gs) and all(_scalar_match(a, b) for a, b in zip(ps, gs))
    if max(len(p), len(g)) > _MAX_SYMBOLIC_CHARS:
        return False
    words = re.sub(r"\\[a-zA-Z]+", " ", p + " " + g)
    if re.search(r"[a-zA-Z]{3,}", words):  # text answers ("Evelyn" is not E*v*e*l*y*n)
        return p.lower() == g.lower()
    try:
        return _sympy_equal(_parse(p), _parse(g))
    except (_Unparsable, ArithmeticError, TypeError, ValueError, RecursionError):
        return False


# --------------------------------------------------------------------------- LaTeX -> sympy
_TOKEN_RE = re.compile(r"\d*\.\d*(?:\\overline\{\d+\}|\(\d+\))|\d+(?:\.\d*)?|\.\d+|\\[a-zA-Z]+|\\.|[a-zA-Z]|\S")
_FUNCS = {f"\\{name}": getattr(sympy, name) for name in "sin cos tan sec csc cot sinh cosh tanh exp log".split()}
_FUNCS.update({"\\ln": sympy.log, "\\arcsin": sympy.asin, "\\arccos": sympy.acos, "\\arctan": sympy.atan})
_CONSTANTS = {"\\pi": sympy.pi, "\\infty": sympy.oo, "e": sympy.E, "i": sympy.I}
_GREEK = set("alpha beta gamma delta epsilon theta lambda mu phi psi omega rho sigma tau".split())
_BARS = {"\\lvert": "|", "\\rvert": "|", "\\vert": "|"}  # |x| in every spelling (\left| lost its \left in _clean)
_DOMAINS = {"\\log": "log", "\\ln": "log", "\\arcsin": "unit", "\\arccos": "unit"}  # functions real only on part of R


class _Answer(NamedTuple):
    """A parsed answer: its value, and where it is defined as a real function: the conditions (kind, argument,
    exponent) that every logarithm, root, non-integer power and inverse sine/cosine in it puts on its argument,
    recorded as written (sympy may simplify sqrt(x)^2 to x, but x < 0 is still outside its domain). `complex`:
    the answer writes i, so it is compared as a complex function (principal branches) instead."""

    value: sympy.Expr
    conditions: tuple
    complex: bool


def _parse(text: str) -> _Answer:
    parser = _Parser(text)
    value = parser.parse()
    return _Answer(value, tuple(parser.conditions), parser.complex)


class _Parser:
    """Recursive descent over the LaTeX of final answers (no eval, depth-limited):
    expr := unary ((+|-) unary)* ;  unary := (-|+) unary | power ((*|/|\\cdot|implicit) power)*
    power := atom [!] [^ arg] ;  atom := number | letter | (expr) | {expr} | \\frac | \\sqrt | ..."""

    def __init__(self, text: str):
        if re.search(r"\d\s+\d|[+-]\s*[+-]", text):  # 1 2 (digits apart), +-5 and 3+-2 (typed for ±): no number
            raise _Unparsable(text)
        self.toks, self.i, self.depth = [_BARS.get(t, t) for t in _TOKEN_RE.findall(text)], 0, 0
        self.bars = 0  # |...| open around the current position (within the innermost parentheses)
        self.conditions, self.complex = [], False

    def parse(self) -> sympy.Expr:
        e = self.expr()
        if self.i != len(self.toks):
            raise _Unparsable(self.toks[self.i])
        return e

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok != expected):
            raise _Unparsable(f"expected {expected!r}, got {tok!r}")
        self.i += 1
        return tok

    def expr(self) -> sympy.Expr:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _Unparsable("too deep")
        e = self.unary()
        while self.peek() in ("+", "-"):
            e = e + self.unary() if self.take() == "+" else e - self.unary()
        self.depth -= 1
        return e

    def unary(self) -> sympy.Expr:
        if self.peek() in ("-", "+"):
            return -self.unary() if self.take() == "-" else self.unary()
        start, e = self.i, self.power()  # start: where the last factor began
        while (tok := self.peek()) is not None:  # the term loop: products and quotients
            if tok == "\\frac" and self.i == start + 1 and self.toks[start][0].isdigit() and self._digit_fraction():
                raise _Unparsable("a mixed number inside an expression")  # 2\frac{1}{2}\pi: 5/2 pi or pi?
            if tok in ("*", "\\cdot", "\\times"):
                self.take()
                start, e = self.i, e * self.power()
            elif tok in ("/", "\\div"):
                self.take()
                start, e = self.i, e / self.power()
            elif (
                tok[0].isalnum()
                or tok in ("(", "{")
                or tok in _FUNCS
                or tok in ("\\frac", "\\sqrt", "\\pi")
                or tok[1:] in _GREEK
                or (tok == "|" and not self.bars)  # inside |...| a bar closes it
            ):
                start, e = self.i, e * self.power()  # implicit product: 2x, 2\sqrt{3}, x(x+1), 2|x|
            else:
                return e
        return e

    def power(self) -> sympy.Expr:
        base = self.atom()
        if self.peek() == "!":
            self.take()
            if not (base.is_Integer and 0 <= base <= 1000):
                raise _Unparsable("factorial")
            base = sympy.factorial(base)
        if self.peek() == "^":
            self.take()
            return self.pow(base, self.arg(exponent=True))
        return base

    def _digit_fraction(self) -> bool:
        """Is \\frac{digits}{digits} next?"""
        t = self.toks[self.i : self.i + 7]
        return len(t) == 7 and t[1::3] == ["{", "{"] and t[3::3] == ["}", "}"] and t[2].isdigit() and t[5].isdigit()

    def arg(self, exponent: bool = False) -> sympy.Expr:
        """One LaTeX argument: {group} or a single token; '\\frac12' takes one digit. An exponent may be signed and
        takes a whole number: x^23 is x^{23} and 10^25 is 10^{25}, as people type them (never x^2 times 3)."""
        tok = self.peek()
        if tok == "{":
            return self.atom()
        if exponent and tok == "-":
            self.take()
            return -self.arg(exponent=True)
        if not exponent and tok is not None and tok[0].isdigit() and len(tok) > 1:
            self.toks[self.i] = tok[1:]
            return sympy.Integer(tok[0])
        return self.atom()

    def atom(self) -> sympy.Expr:
        tok = self.take()
        if tok[0].isdigit() or tok[0] == ".":
            if len(tok) > _MAX_DIGITS:
                raise _Unparsable("long number")
            if m := _REPEATING_RE.fullmatch(tok):  # 0.(3), 0.1\overline{6}
                value = _repeating(m)
                if value is None:
                    raise _Unparsable(tok)
                return sympy.Rational(value.numerator, value.denominator)
            return sympy.Rational(tok)  # exact, so 0.5 == 1/2
        if tok in ("(", "{"):
            bars, self.bars = self.bars, 0  # |(|x|+1)|: a bar inside parentheses opens
            e = self.expr()
            self.take(")" if tok == "(" else "}")
            self.bars = bars
            return e
        if tok == "|":
            self.bars += 1
            e = self.expr()
            self.take("|")
            self.bars -= 1
            return sympy.Abs(e)
        if tok in _CONSTANTS:
            self.complex |= tok == "i"
            return _CONSTANTS[tok]
        if tok.isalpha() or tok[1:] in _GREEK:
            name = tok.lstrip("\\")
            if self.peek() == "_":  # x_1, a_{n}
                self.take()
                name += "_" + str(self.arg())
            return sympy.Symbol(name)
        if tok == "\\frac":
            return self.arg() / self.arg()
        if tok == "\\sqrt":
            n = sympy.Integer(2)
            if self.peek() == "[":
                self.take()
                n = self.expr()
                self.take("]")
            return self.pow(self.arg(), 1 / n)
        if tok in _FUNCS:
            exponent = None
            if self.peek() == "^":  # \sin^2 x
                self.take()
                exponent = self.arg(exponent=True)
            # \sin(x)^2 is (sin x)^2: parentheses right after the name hold the argument; \sin x^2 is sin(x^2)
            argument = self.atom() if self.peek() == "(" else self.power()
            if tok in _DOMAINS:
                self.conditions.append((_DOMAINS[tok], argument, None))
            value = _FUNCS[tok](argument)
            return value if exponent is None else self.pow(value, exponent)
        raise _Unparsable(tok)

    def pow(self, base: sympy.Expr, exp: sympy.Expr) -> sympy.Expr:
        """base^exp as a real function, refusing anything that would build a huge number (10^{10^{10}}).
        An odd root is the real one, \\sqrt[3]{-8} = -2 and x^{1/3} = sign(x) |x|^{1/3}, as in school algebra;
        any other non-integer power needs a base > 0 (or 0 with a positive exponent): a condition."""
        if exp.is_Number:
            if abs(exp) > _MAX_EXPONENT:
                raise _Unparsable("huge exponent")
            if base.is_Number and abs(exp) * len(str(base)) > _MAX_DIGITS:
                raise _Unparsable("huge power")
        if exp.is_Integer:
            return sympy.Pow(base, exp)
        if exp.is_Rational and exp.q % 2 == 1 and not base.has(sympy.I):  # x^{p/q} = sign(x)^p |x|^{p/q}, q odd
            return sympy.sign(base) ** (exp.p % 2) * sympy.Pow(sympy.Abs(base), exp)
        if not base.is_positive:
            self.conditions.append(("pow", base, exp))
        return sympy.Pow(base, exp)


# Equality of two sympy values. Exact where the difference is a rational number (integers of any size,
# fractions, polynomial identities evaluated at rational points); otherwise numerical, but only where the
# numbers mean something: both values finite and below 10^_MAX_MAGNITUDE, compared to _AGREE_DIGITS
# significant digits at a working precision that sympy raises until the difference is resolved (so huge
# values and cancellations are computed, never rounded to a float that overflows or loses them).
_MAX_MAGNITUDE = 20_000  # decimal digits of |value|; bigger values equal only themselves (same expression)
_AGREE_DIGITS = 60  # significant digits two values must share to be called equal
_MAX_WORKING_DIGITS = 40_000  # the most digits sympy may work with while resolving a difference
_LOG10_2 = 0.30102999566398120
# Where an expression in variables is compared: |coordinate| in each of these ranges, with both signs.
_BANDS = [
    (Fraction(1, 1000), Fraction(1, 10)),
    (Fraction(1, 10), Fraction(1)),
    (Fraction(1), Fraction(10)),
    (10, 1000),
    (1000, 10**5),
]
_POINTS = 2 * len(_BANDS)
_SIGN_MASKS = [1, 3, 5]  # coordinate k is negative at point j when j & mask has odd parity: see _points
_PRIME_BITS = 61  # rational functions are compared modulo a prime of this size at random points (_mod_prime)
_MAX_KINK_DEGREE = 40  # the highest degree whose real zeros are isolated to place a point between each two
_KINK_AXES = 3  # variables along whose axis (the others held) the zeros are isolated
_UNKNOWN = object()  # a sign or a value that did not resolve at a point: the point says nothing


def _log10_abs(value: sympy.Expr) -> float | None:
    """log10 |value| of an evaluated number (-inf for zero), or None if it is not a finite number.
    An unresolved Float (sympy's '0.e-165': zero to within a bound) counts as its bound."""
    worst = -float("inf")
    for part in value.as_real_imag():
        if part == 0 and not part.is_Float:
            continue
        if not part.is_Float:
            return None  # nan, an infinity, or something that did not evaluate
        _, man, exp, bc = part._mpf_
        if man == 0:
            if bc < 0:  # mpmath's inf / nan
                return None
            continue  # an exact zero
        worst = max(worst, (exp + bc) * _LOG10_2)
    return worst


def _magnitude(value: sympy.Expr) -> float | None:
    return _log10_abs(value.evalf(15, maxn=1000))


def _equal_numbers(a: sympy.Expr, b: sympy.Expr, mags: tuple | None = None) -> bool | None:
    """a == b for two constant expressions (no free symbols). `mags`: their _magnitude when known; None (no
    verdict) when both are finite but too big to compare, False when only one is."""
    d = a - b
    if d == 0:
        return True
    if d.is_Rational:  # exact values that differ (2^1024 vs 2^1024 + 1)
        return False
    mags = mags or (_magnitude(a), _magnitude(b))
    if None in mags:
        return False  # not finite: only the very same expression is equal to it
    if max(mags) > _MAX_MAGNITUDE:
        return None if min(mags) > _MAX_MAGNITUDE else False
    scale = max(mags)
    # Two close algebraic numbers can differ far below their magnitude (sqrt(10^600 + 1) - 10^300 is about
    # 10^-301): their separation is bounded by the size of the integers that define them, so sympy may use
    # twice their digits on top of the value's own.
    literal_digits = sum(len(str(abs(n.p))) + len(str(n.q)) for n in d.atoms(sympy.Rational))
    digits = int(max(scale, 0)) + _AGREE_DIGITS + 40 + 2 * literal_digits
    while digits <= _MAX_WORKING_DIGITS:
        v = d.evalf(30, maxn=digits)
        if not v.is_number:
            return False
        if any(p.is_Float and p._prec > 1 and p != 0 for p in v.as_real_imag()):
            return False  # sympy resolved a nonzero difference: the values differ
        bound = _log10_abs(v)
        if bound is None:
            return False
        if bound <= scale - _AGREE_DIGITS:  # zero to within _AGREE_DIGITS digits of the larger value
            return True
        digits *= 4  # cancellation hid the difference: look closer
    return False


def _points(a: _Answer, b: _Answer, symbols: list) -> list[dict]:
    """_POINTS points with rational coordinates p/q, q a 17-bit number, drawn from a generator seeded by the two
    expressions: the same verdict every time, yet points that an answer cannot be written to vanish at. A
    nonzero rational function of degree D vanishes at such a point with probability about D / 10^10
    (Schwartz-Zippel); small denominators keep exact arithmetic cheap at high degree. Every coordinate takes
    both signs in every band of _BANDS (|x| from 10^-3 to 10^5), and the first three take every sign pattern
    (x < 0 < y, ...): a branch (a root, a logarithm, |x|) shows wherever the real line has one. Along each of the
    first _KINK_AXES variables (the others held at the first point), also a point in every interval between the
    real zeros of what is under |.|, a root or a logarithm (_kinks): on that line both sides are analytic there, so
    a difference beyond the sampled bands (|y - 10^6| in x + y) still shows. In one variable that covers the line."""
    seed = int.from_bytes(hashlib.sha256(f"{sympy.srepr(a.value)}|{sympy.srepr(b.value)}".encode()).digest()[:8], "big")
    rng = random.Random(seed)
    masks = _SIGN_MASKS + [2 * rng.randrange(1 << 8) + 1 for _ in symbols[len(_SIGN_MASKS) :]]
    points = []
    for j in range(_POINTS):
        point = {}
        for k, s in enumerate(symbols):
            low, high = _BANDS[(j // 2 + k) % len(_BANDS)]
            q = rng.randrange(1 << 16, 1 << 17)
            sign = -1 if bin(j & masks[k]).count("1") % 2 else 1
            point[s] = sign * sympy.Rational(rng.randrange(int(low * q), int(high * q)), q)
        points.append(point)
    for x in symbols[:_KINK_AXES]:  # along each axis, the other variables at the first point's coordinates
        fixed = {s: v for s, v in points[0].items() if s != x}
        zeros = _kinks([a, b], x, fixed)  # disjoint intervals (low, high), each around one zero, in order
        ends = (
            [-abs(zeros[0][0]) - 1 if zeros else -1]
            + [z for interval in zeros for z in interval]
            + [abs(zeros[-1][1]) + 1 if zeros else 1]
        )
        for low, high in zip(ends[::2], ends[1::2]):  # the gaps between zeros, and beyond the outer ones
            q = rng.randrange(1 << 16, 1 << 17)
            points.append(fixed | {x: low + (high - low) * sympy.Rational(rng.randrange(q // 4, 3 * q // 4), q)})
    return points


def _kinks(answers: list, x: sympy.Symbol, fixed: dict) -> list:
    """Isolating intervals of the real zeros in x, the other variables at `fixed`, of every argument of |.|, sign,
    a root, a logarithm, arcsin/arccos (at +-1): where a side can stop being one analytic function along that
    line. Arguments that are not rational functions of x with rational coefficients of degree <= _MAX_KINK_DEGREE
    are left to the sampled points."""
    arguments = []
    for answer in answers:
        for kind, argument, _ in answer.conditions:
            arguments += [argument - 1, argument + 1] if kind == "unit" else [argument]
        for e in [answer.value] + [argument for _, argument, _ in answer.conditions]:
            arguments += [f.args[0] for f in e.atoms(sympy.Abs, sympy.sign)]
    polys = []
    for argument in arguments:
        argument = argument.subs(fixed) if fixed else argument
        if not argument.is_rational_function(x):
            continue
        for part in sympy.fraction(sympy.together(argument)):
            if not 0 < _degree(part) <= _MAX_KINK_DEGREE:
                continue
            poly = sympy.Poly(part, x)
            if poly.domain.is_ZZ or poly.domain.is_QQ:
                polys.append(poly)
    if not polys:
        return []
    return sorted(interval for interval, _ in sympy.intervals(polys, eps=sympy.Rational(1, 10**6)))


def _sign(value: sympy.Expr):
    """-1, 0 or 1 for a real number; _UNKNOWN if it is not real or its sign does not resolve."""
    if value.is_Rational:
        return (value.p > 0) - (value.p < 0)
    real, imag = value.evalf(30, maxn=1000).as_real_imag()
    if imag != 0 or not real.is_Float or real._prec <= 1 or real == 0:
        return _UNKNOWN  # not real (only after an earlier condition failed), or zero to within 1000 digits
    return 1 if real > 0 else -1


def _holds(condition: tuple, point: dict):
    """Is the real function defined here, by one condition of _Answer? True, False or _UNKNOWN."""
    kind, argument, exponent = condition
    x = _sign(argument.xreplace(point))
    if x is _UNKNOWN:
        return _UNKNOWN
    if kind == "log":
        return x > 0
    if kind == "unit":  # arcsin, arccos: -1 <= x <= 1
        value = argument.xreplace(point)
        low, high = _sign(value + 1), _sign(1 - value)
        return _UNKNOWN if _UNKNOWN in (low, high) else low >= 0 and high >= 0
    e = exponent.xreplace(point)  # "pow": base^exponent, real for a base > 0, an integer exponent, or 0^(e > 0)
    if x > 0 or e.is_Integer:
        return True
    if x < 0:
        return False
    return _UNKNOWN if _sign(e) is _UNKNOWN else _sign(e) > 0


def _mod_prime(e: sympy.Expr, point: dict, prime: int) -> int | None:
    """e at the point in the integers modulo `prime`, for a rational function with rational coefficients (sums,
    products, integer powers); None for anything else (a root, a function, pi, i) or a pole modulo the prime."""
    if e.is_Rational:
        return None if e.q % prime == 0 else e.p * pow(e.q, -1, prime) % prime
    if e.is_Symbol:
        return point[e]
    if e.is_Add or e.is_Mul or (e.is_Pow and e.exp.is_Integer):
        parts = [_mod_prime(arg, point, prime) for arg in (e.args[:1] if e.is_Pow else e.args)]
        if None in parts:
            return None
        if e.is_Pow:
            return None if parts[0] == 0 and e.exp < 0 else pow(parts[0], int(e.exp), prime)
        total = 0 if e.is_Add else 1
        for part in parts:
            total = (total + part if e.is_Add else total * part) % prime
        return total
    return None


def _degree(e: sympy.Expr) -> int:
    """The degree of a polynomial as written, without expanding it ((x+1)^{9999} has 10^4 terms)."""
    if e.is_Add:
        return max(_degree(arg) for arg in e.args)
    if e.is_Mul:
        return sum(_degree(arg) for arg in e.args)
    if e.is_Pow:
        return _degree(e.base) * abs(int(e.exp))
    return 1 if e.is_Symbol else 0


def _value_at(answer: _Answer, point: dict, as_complex: bool):
    """(value, magnitude) of the answer at the point; None where it is undefined (a real function outside its
    domain, or an infinite value), _UNKNOWN where that did not resolve."""
    if not as_complex:
        for condition in answer.conditions:  # inner conditions first, as recorded: an argument is real once they hold
            held = _holds(condition, point)
            if held is not True:
                return None if held is False else _UNKNOWN
    value = answer.value.xreplace(point)
    mag = _magnitude(value)
    return None if mag is None else (value, mag)


def _sympy_equal(a: _Answer, b: _Answer) -> bool:
    special = (sympy.oo, -sympy.oo, sympy.zoo, sympy.nan)
    if a.value.has(*special) or b.value.has(*special):
        return a.value == b.value  # infinities are compared as strings only; an infinite value never equals a finite one
    symbols = sorted(a.value.free_symbols | b.value.free_symbols, key=str)
    if not symbols:
        return _equal_numbers(a.value, b.value) is True
    if a.value == b.value and set(a.conditions) == set(b.conditions):
        return True
    if not (a.conditions or b.conditions):
        # Two rational functions (polynomials of any degree included): exact and cheap modulo a prime. A nonzero
        # one of degree D vanishes at a random point there with probability D / 2^61 (Schwartz-Zippel). The prime
        # is drawn from the answers too: a fixed one would let x + 2^61 - 1 equal x.
        rng = random.Random(f"{sympy.srepr(a.value)}|{sympy.srepr(b.value)}")
        prime = sympy.nextprime(rng.randrange(1 << (_PRIME_BITS - 1), 1 << _PRIME_BITS))
        points = [{s: rng.randrange(prime) for s in symbols} for _ in range(3)]
        values = [(_mod_prime(a.value, point, prime), _mod_prime(b.value, point, prime)) for point in points]
        if all(None not in pair for pair in values):
            return all(va == vb for va, vb in values)
    # An identity must hold as real functions: the same domain, and the same values on it. Compare at points of
    # both signs and wide magnitude: a point where one side is defined and the other is not (log(x^2) and
    # 2 log x at x < 0), or where both are and differ (sqrt(x^2) and x at x < 0), makes them unequal. A
    # polynomial or rational function evaluates exactly there (a false identity of any degree is caught);
    # anything else is compared as numbers, with the same care. An answer that writes i is compared as a
    # complex function (principal branches) instead.
    as_complex = a.complex or b.complex
    compared = 0
    for point in _points(a, b, symbols):
        va, vb = _value_at(a, point, as_complex), _value_at(b, point, as_complex)
        if _UNKNOWN in (va, vb) or va is vb is None:
            continue  # this point says nothing
        if va is None or vb is None:
            return False  # defined on one side only
        same = _equal_numbers(va[0], vb[0], (va[1], vb[1]))
        if same is False:
            return False
        compared += same is True
    return compared > 0  # no point where both are defined and comparable: not shown equal


# --------------------------------------------------------------------------- public API
def _is_disjunction(ans: str) -> bool:
    """'3 or 5', '3 \\text{ or } 5': a hedge, not an answer."""
    return re.search(r"\bor\b", ans) is not None


def _match(pred: str, gold: str) -> bool:
    if _is_disjunction(pred) and not _is_disjunction(gold):
        return False
    if max(len(pred), len(gold)) > _MAX_ANSWER_CHARS:
        return pred.strip() == gold.strip()
    return _match_clean(pred, gold)


def _boxed_answers(response: str) -> list[str]:
    """The distinct answers a response commits to: its boxed answers, else the one extract_answer finds."""
    answers = list(dict.fromkeys(boxed_contents(response)))  # distinct, in order
    return answers or [a for a in [extract_answer(response)] if a is not None]


def _grade_math_verify(response: str, gold: str) -> float:
    import math_verify

    try:  # as in the paper: gold wrapped in \boxed{}, prediction parsed with the defaults
        gold_parsed = math_verify.parse(f"\\boxed{{{gold}}}")
        pred_parsed = math_verify.parse(response)
        return float(math_verify.verify(gold_parsed, pred_parsed))
    except Exception:
        return 0.0


# What the worker process runs (timelimit.py): the whole check, extraction included, under one hard limit.
def _grade_here(response: str, gold: str, backend: str) -> list:
    """[reward, the answer for voting (or None)] of one response."""
    answers = _boxed_answers(response)
    key = normalize_answer(answers[-1]) if answers else None
    if backend == "math_verify":
        return [_grade_math_verify(response, gold), key]
    return [float(bool(answers) and all(_match(a, gold) for a in answers)), key]


def _in_worker(func: str, *args, timeout: float, default, strict: bool):
    """func(*args) in the grader's worker process; `default` if it fails or overruns `timeout` seconds,
    unless `strict`, where the TimeoutError / RuntimeError is raised (a test's 0 must be a verdict, not a crash)."""
    timeout = float(timeout)  # a bad timeout is a bug in the caller: raise here, not silently 0
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
    try:
        return timelimit.worker("tasks.grader").call(func, *args, timeout=timeout)
    except (TimeoutError, RuntimeError):  # overran, or failed inside (parser, sympy, memory): no reward
        if strict:
            raise
        return default


def answers_match(pred: str, gold: str, timeout: float = 1.0, strict: bool = False) -> bool:
    """Is the answer `pred` equivalent to `gold`? At most `timeout` seconds, on any thread; never raises
    unless `strict` (see grade_and_answer)."""
    if not isinstance(pred, str) or not isinstance(gold, str):
        return False
    return _in_worker("_match", pred[-MAX_RESPONSE_CHARS:], gold, timeout=timeout, default=False, strict=strict)


def grade_and_answer(response: str, gold: str, backend: str = "builtin", timeout: float = 1.0, strict: bool = False):
    """(task reward, the answer the response commits to in canonical form for voting, or None).

    Reward 1.0 if the response's final answer equals `gold`, else 0.0. With several boxed answers, *every*
    one must match the gold: a response that boxes '3' and then '5' has not committed to an answer (and
    would otherwise be a free hedge). Only the last MAX_RESPONSE_CHARS characters are read. Everything,
    extraction included, runs in a worker process under a hard `timeout` (0.0 and None when it overruns),
    so the verdict and the bound are the same on every thread. With `strict` (for tests), an overrun raises
    TimeoutError and a failure inside the worker RuntimeError instead of scoring 0."""
    if backend not in GRADERS:
        raise ValueError(f"unknown grader backend {backend!r}; choose one of {GRADERS}")
    if backend == "math_verify" and importlib.util.find_spec("math_verify") is None:
        raise ImportError("grade(backend='math_verify') needs the optional package: pip install math-verify")
    if not isinstance(response, str) or not isinstance(gold, str):
        return 0.0, None
    score, key = _in_worker(
        "_grade_here", response[-MAX_RESPONSE_CHARS:], gold, backend, timeout=timeout, default=[0.0, None], strict=strict
    )
    return score, key


def grade(response: str, gold: str, backend: str = "builtin", timeout: float = 1.0, strict: bool = False) -> float:
    """Task reward: 1.0 if the response's final answer equals `gold`, else 0.0 (see grade_and_answer)."""
    return grade_and_answer(response, gold, backend, timeout, strict)[0]
