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
2. `normalize_answer`: a cheap canonical string (LaTeX spellings, units, thousands commas,
   exact numbers as "p/q"). Equal strings are a match; the same strings drive maj@k voting.
3. `answers_match`: compare structures (tuples, intervals, sets, matrices, equations) and then
   scalars: exact fractions first, then sympy. The LaTeX is parsed by a small parser here that
   builds sympy objects directly (model output is never `eval`-ed), with size guards (input length,
   nesting, exponents, factorials) so that no absurd number is ever built. Values are equal exactly
   where their difference is rational (integers of any size, fractions; identities in variables are
   checked at random rational points, where polynomials evaluate exactly); otherwise to 60 significant
   digits, both sides finite, at a precision raised until the difference is resolved. An infinite,
   undefined or overflowing value never equals a finite gold.

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

import sympy

import timelimit

GRADERS = ("builtin", "math_verify")

MAX_RESPONSE_CHARS = 100_000  # only a response's last 100k characters are read (~25k tokens): bounded work

_MAX_ANSWER_CHARS = 1000  # longer "answers" are compared as raw strings only
_MAX_SYMBOLIC_CHARS = 400  # longer answers never reach sympy
_MAX_DEPTH = 50  # parser nesting limit (also keeps us far from RecursionError)
_MAX_EXPONENT = 10_000  # |n| in x^n
_MAX_DIGITS = 10_000  # digits of any number we let sympy build


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
_TRAILING_UNIT_RE = re.compile(r"^(.*?)\s*(?<![a-zA-Z\\])([a-zA-Z]+)\.?(\^\{?[23]\}?)?$")
_ASSIGN_RE = re.compile(r"^(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?\w+\}?)?(?:=(?!=)|\\in(?![a-zA-Z]))(.+)$")
_THOUSANDS_RE = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_NUMBER_RE = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")
_SLASH_RE = re.compile(r"(-?\d+)/(\d+)")
_FRAC_RE = re.compile(r"(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}")
_MIXED_RE = re.compile(r"(-?)(\d+)\\frac\{(\d+)\}\{(\d+)\}")  # 2\frac{1}{2} means 2.5


def _text_or_unit(m: re.Match) -> str:
    """\\text{ cm} after a quantity is a unit (dropped); any other \\text{...} is unwrapped."""
    word = m.group(1).strip()
    if m.string[: m.start()].strip() and all(w in _UNITS for w in word.lower().split()):
        return ""
    return word + (m.group(2) or "")


def _strip_units(s: str) -> str:
    """'5 cm', '12 square feet', '15cm^2' -> the quantity (only when a quantity is left)."""
    t = s
    while (m := _TRAILING_UNIT_RE.match(t)) and m.group(2).lower() in _UNITS:
        t = m.group(1)
    return t if re.search(r"[\d}]$", t) else s


def _clean(ans: str) -> str:
    """LaTeX-level cleanup shared by voting and grading; the result has no spaces except
    between letters (so that '\\sin x' keeps its meaning)."""
    s = _unbox(ans.strip())
    s = s.replace("\\$", "").replace("$", "")
    s = re.sub(r"(?<!\\)\\[()\[\]]", "", s)  # \( \) \[ \] math delimiters (not after \\)
    s = _TEXT_RE.sub(_text_or_unit, s)
    s = _SPACING_RE.sub("", s)
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = _DEGREES_RE.sub("", s)
    s = s.replace("\\%", "").replace("%", "").replace("{,}", ",")
    s = _strip_units(s.strip())
    s = re.sub(r"(?<![A-Za-z])\s+|\s+(?![A-Za-z])", "", s)
    s = re.sub(r"([_^])\{(\w)\}", r"\1\2", s)  # x^{2} -> x^2, 52_{8} -> 52_8
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)  # \frac12
    s = re.sub(r"\\frac(\d)\{", r"\\frac{\1}{", s)
    s = re.sub(r"\\frac(\{[^{}]*\})(\d)", r"\\frac\1{\2}", s)
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)
    if s.count("=") <= 1 and (m := _ASSIGN_RE.match(s)):
        s = m.group(1)  # "x = 5", "x \in [1,2]": a bare variable on the left is not the answer
    s = re.sub(r"^\(([A-Z])\)$", r"\1", s.rstrip(".").lstrip("+"))  # "(C)" -> "C"
    if _THOUSANDS_RE.fullmatch(s):
        s = s.replace(",", "")
    return s


def _as_fraction(s: str) -> Fraction | None:
    """Exact value of a plain number: '025', '-0.50', '3/4', '\\frac{3}{4}', '2\\frac{1}{2}'."""
    try:
        if _NUMBER_RE.fullmatch(s) or _SLASH_RE.fullmatch(s):
            return Fraction(s)
        if m := _FRAC_RE.fullmatch(s):
            return Fraction(int(m[2]), int(m[3])) * (-1 if m[1] else 1)
        if m := _MIXED_RE.fullmatch(s):
            return (int(m[2]) + Fraction(int(m[3]), int(m[4]))) * (-1 if m[1] else 1)
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
        return _sympy_equal(_Parser(p).parse(), _Parser(g).parse())
    except (_Unparsable, ArithmeticError, TypeError, ValueError, RecursionError):
        return False


# --------------------------------------------------------------------------- LaTeX -> sympy
_TOKEN_RE = re.compile(r"\d+(?:\.\d*)?|\.\d+|\\[a-zA-Z]+|\\.|[a-zA-Z]|\S")
_FUNCS = {f"\\{name}": getattr(sympy, name) for name in "sin cos tan sec csc cot sinh cosh tanh exp log".split()}
_FUNCS.update({"\\ln": sympy.log, "\\arcsin": sympy.asin, "\\arccos": sympy.acos, "\\arctan": sympy.atan})
_CONSTANTS = {"\\pi": sympy.pi, "\\infty": sympy.oo, "e": sympy.E, "i": sympy.I}
_GREEK = set("alpha beta gamma delta epsilon theta lambda mu phi psi omega rho sigma tau".split())


class _Parser:
    """Recursive descent over the LaTeX of final answers (no eval, depth-limited):
    expr := unary ((+|-) unary)* ;  unary := (-|+) unary | power ((*|/|\\cdot|implicit) power)*
    power := atom [!] [^ arg] ;  atom := number | letter | (expr) | {expr} | \\frac | \\sqrt | ..."""

    def __init__(self, text: str):
        self.toks, self.i, self.depth = _TOKEN_RE.findall(text), 0, 0

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
        e = self.power()
        while (tok := self.peek()) is not None:  # the term loop: products and quotients
            if tok in ("*", "\\cdot", "\\times"):
                self.take()
                e = e * self.power()
            elif tok in ("/", "\\div"):
                self.take()
                e = e / self.power()
            elif (
                tok[0].isalnum() or tok in ("(", "{") or tok in _FUNCS or tok in ("\\frac", "\\sqrt", "\\pi") or tok[1:] in _GREEK
            ):
                e = e * self.power()  # implicit product: 2x, 2\sqrt{3}, x(x+1)
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
            return _guarded_pow(base, self.arg(signed=True))
        return base

    def arg(self, signed: bool = False) -> sympy.Expr:
        """One LaTeX argument: {group} or a single token; '\\frac12', 'x^23' take one digit."""
        tok = self.peek()
        if tok == "{":
            return self.atom()
        if signed and tok == "-":
            self.take()
            return -self.arg()
        if tok is not None and tok[0].isdigit() and len(tok) > 1:
            self.toks[self.i] = tok[1:]
            return sympy.Integer(tok[0])
        return self.atom()

    def atom(self) -> sympy.Expr:
        tok = self.take()
        if tok[0].isdigit() or tok[0] == ".":
            if len(tok) > _MAX_DIGITS:
                raise _Unparsable("long number")
            return sympy.Rational(tok)  # exact, so 0.5 == 1/2
        if tok in ("(", "{"):
            e = self.expr()
            self.take(")" if tok == "(" else "}")
            return e
        if tok in _CONSTANTS:
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
            if self.peek() == "[":
                self.take()
                n = self.expr()
                self.take("]")
                return _guarded_pow(self.arg(), 1 / n)
            return sympy.sqrt(self.arg())
        if tok in _FUNCS:
            exponent = None
            if self.peek() == "^":  # \sin^2 x
                self.take()
                exponent = self.arg(signed=True)
            # \sin(x)^2 is (sin x)^2: parentheses right after the name hold the argument; \sin x^2 is sin(x^2)
            value = _FUNCS[tok](self.atom() if self.peek() == "(" else self.power())
            return value if exponent is None else _guarded_pow(value, exponent)
        raise _Unparsable(tok)


def _guarded_pow(base: sympy.Expr, exp: sympy.Expr) -> sympy.Expr:
    """base**exp, refusing anything that would build a huge number (10^{10^{10}})."""
    if exp.is_Number:
        if abs(exp) > _MAX_EXPONENT:
            raise _Unparsable("huge exponent")
        if base.is_Number and abs(exp) * len(str(base)) > _MAX_DIGITS:
            raise _Unparsable("huge power")
    return sympy.Pow(base, exp)


# Equality of two sympy values. Exact where the difference is a rational number (integers of any size,
# fractions, polynomial identities evaluated at rational points); otherwise numerical, but only where the
# numbers mean something: both values finite and below 10^_MAX_MAGNITUDE, compared to _AGREE_DIGITS
# significant digits at a working precision that sympy raises until the difference is resolved (so huge
# values and cancellations are computed, never rounded to a float that overflows or loses them).
_MAX_MAGNITUDE = 20_000  # decimal digits of |value|; bigger values equal only themselves (same expression)
_AGREE_DIGITS = 60  # significant digits two values must share to be called equal
_MAX_WORKING_DIGITS = 40_000  # the most digits sympy may work with while resolving a difference
_POINTS_PER_CHECK = 3  # random rational points at which an expression in variables is compared
_LOG10_2 = 0.30102999566398120


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


def _equal_numbers(a: sympy.Expr, b: sympy.Expr) -> bool:
    """a == b for two constant expressions (no free symbols)."""
    d = a - b
    if d == 0:
        return True
    if d.is_Rational:  # exact values that differ (2^1024 vs 2^1024 + 1)
        return False
    mags = [_log10_abs(x.evalf(15, maxn=1000)) for x in (a, b)]
    if None in mags or max(mags) > _MAX_MAGNITUDE:
        return False  # not finite, or too big to compare: only the very same expression is equal to it
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


def _rational_points(a: sympy.Expr, b: sympy.Expr, symbols: list, count: int) -> list[dict]:
    """`count` points with rational coordinates p/q in [1/4, 4), q a 17-bit number, drawn from a generator
    seeded by the two expressions: the same verdict every time, yet points that an answer cannot be written
    to vanish at. A nonzero rational function of degree D vanishes at such a point with probability about
    D / 10^10 (Schwartz-Zippel); small denominators keep exact arithmetic cheap at high degree."""
    seed = int.from_bytes(hashlib.sha256(f"{sympy.srepr(a)}|{sympy.srepr(b)}".encode()).digest()[:8], "big")
    rng = random.Random(seed)
    points = []
    for _ in range(count):
        point = {}
        for s in symbols:
            q = rng.randrange(1 << 16, 1 << 17)
            point[s] = sympy.Rational(rng.randrange(q // 4, 4 * q), q)
        points.append(point)
    return points


def _sympy_equal(a: sympy.Expr, b: sympy.Expr) -> bool:
    if a == b:
        return True
    special = (sympy.oo, -sympy.oo, sympy.zoo, sympy.nan)
    if a.has(*special) or b.has(*special):
        return False  # infinities are compared as strings only; an infinite value never equals a finite one
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    if not symbols:
        return _equal_numbers(a, b)
    # An identity must hold everywhere: compare at several random rational points. A polynomial or rational
    # function then evaluates exactly (a false identity of any degree is caught); anything else is compared
    # as numbers there, with the same care.
    return all(_equal_numbers(a.subs(point), b.subs(point)) for point in _rational_points(a, b, symbols, _POINTS_PER_CHECK))


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
        return timelimit.worker("grader").call(func, *args, timeout=timeout)
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
