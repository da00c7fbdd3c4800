"""Numbers as people write them: each row is graded both ways (the answer as the gold and the gold as the
answer), so a spelling is read the same on both sides. The rules are in grader.py's docstring:

- scientific notation `1e25`, `2.5E-3` (mantissa, e or E, integer exponent, no spaces) is a number;
  an e anywhere else is Euler's number (`25e` is 25e);
- `a^23` without braces takes the whole number as the exponent (`10^25` = 10^{25}), as people type it;
- the minus sign U+2212 (and the full-width hyphen-minus) is `-`; an en dash is not (`3–5` is a range);
- a space (or \\, ~ \\; ...) between digits is a thousands separator only in groups of three (`12 345`);
  `1 2` is no number; `2 1/2` is the mixed number 5/2, as `2\\frac{1}{2}` is; a comma then a space is a list;
- `0.\\overline{3}` and `0.(3)` are 1/3; `0.333...` is no exact value: it equals only its own digits;
- two signs in a row (`+-5`, `3+-2`) are no number (`+-` is how people type ±);
- a single-letter unit (m, g) is a unit only when set apart (`2 m`, `2\\text{ m}`); `2m` is 2 times m."""

import pytest

from tasks.grader import grade, normalize_answer

STRICT = dict(timeout=30.0, strict=True)  # a hang is a failure here, not a 0

NUMBERS = [  # (a, b, are they equal?)
    # scientific notation
    ("25e", "1e25", 0),
    ("1e25", "10^{25}", 1),
    ("1e25", "10^25", 1),
    ("1e25", "1E25", 1),
    ("1e25", r"1\times10^{25}", 1),
    ("1e25", r"1 \times 10^{25}", 1),
    ("1e25", "1×10^{25}", 1),
    ("1e25", "10000000000000000000000000", 1),
    ("1e25", "1e24", 0),
    ("1e5", "100000", 1),
    ("2.5e-3", "0.0025", 1),
    ("2.5e-3", r"2.5 \cdot 10^{-3}", 1),
    ("1.0e3", "1000", 1),
    ("1E+03", "1000", 1),
    ("-1e3", "-1000", 1),
    ("$1e5$", "100000", 1),
    ("1e5.", "100000", 1),
    ("1e400", "10^{400}", 1),
    ("1e3", "3e", 0),  # not 1*e*3
    ("2e-3", "2e - 3", 0),  # 0.002; with spaces it is 2e minus 3
    ("25e", r"25\cdot e", 1),
    ("1e-99999", "0", 0),  # too small to build: equal to its own spelling only
    ("(1e3, 2)", "(1000,2)", 1),
    ("[-1e3, 1e3]", "[-1000, 1000]", 1),
    ("1/2e3", "0.0005", 1),  # one number: 1/(2e3)
    ("2e3x", "2000x", 1),
    ("3e^2", "300", 0),  # 3 times e^2
    # a power without braces takes the whole number
    ("10^25", "500", 0),
    ("2^10", "1024", 1),
    ("2^10", "0", 0),
    ("2^100000", "0", 0),
    ("x^23", "x^{23}", 1),
    (r"x^{2}3", "3x^2", 1),
    ("1.5×10³", "1500", 1),
    # minus signs
    ("−5", "-5", 1),
    ("x−1", "x-1", 1),
    ("x^{−1}", r"\frac{1}{x}", 1),
    (r"−\frac{1}{2}", "-0.5", 1),
    ("－5", "-5", 1),
    ("−5", "5", 0),
    ("3–5", "-2", 0),  # an en dash is a range, not a minus
    # digits apart
    ("1 2", "12", 0),
    (r"1\,2", "12", 0),
    ("1~2", "12", 0),
    ("10 00", "1000", 0),
    ("1 0000", "10000", 0),
    ("0.123 456", "0.123456", 0),
    ("1 2x", "12x", 0),
    ("１２ ３４５", "12345", 1),
    ("12 345", "12345", 1),
    ("1 000 000", "1000000", 1),
    (r"1\,000", "1000", 1),
    ("1\u00a0000", "1000", 1),
    (r"11,\! 111,\! 111,\! 100", "11111111100", 1),
    ("1, 234", "1234", 0),  # a list of two numbers
    ("1,234", "1234", 1),
    ("(1,2)", "12", 0),
    ("2 1/2", "5/2", 1),
    ("2 1/2", "21/2", 0),
    ("2 3/4", "2.75", 1),
    (r"\frac 1 2", "0.5", 1),
    # repeating decimals
    (r"0.\overline{3}", r"\frac{1}{3}", 1),
    (r"0.1\overline{6}", r"\frac16", 1),
    (r"0.\overline{142857}", r"\frac17", 1),
    (r"1.\overline{9}", "2", 1),
    (r"0.\bar{3}", "1/3", 1),
    ("0.(3)", "1/3", 1),
    ("0.(3)", r"0.\overline{3}", 1),
    ("0.(3)", "0", 0),  # not 0 times 3
    ("-0.(3)", "-1/3", 1),
    ("(0.(3), 1)", "(1/3, 1)", 1),
    (r"x+0.\overline{3}", "x+1/3", 1),
    ("0.1(6)", "0.6", 0),  # 0.1(6): 0.1666... or 0.1 times 6? No number
    ("0.1(6)x", "0.6x", 0),
    (r"0.\overline{3}", "0.333", 0),
    ("0.333...", "0.333", 0),
    ("0.333...", r"\frac{1}{3}", 0),
    ("0.333...", r"0.\overline{3}", 0),
    ("0.333...", "0.3333...", 0),
    (r"0.333\ldots", "0.333...", 1),
    ("0.333…", r"0.333\dots", 1),
    # signs
    ("+5", "5", 1),
    ("+-5", "-5", 0),
    ("+-5", "5", 0),
    ("3+-2", "1", 0),
    ("--5", "5", 0),
    ("±5", r"\pm 5", 1),
    # multiplication signs
    ("2×3", "6", 1),
    ("2⋅3", "6", 1),
    ("2·5", "10", 0),  # a middle dot is also a decimal point: no number
    ("2·5", "2.5", 0),
    # mixed numbers
    (r"2\frac{1}{2}", "2.5", 1),
    (r"-2\frac{1}{2}", "-2.5", 1),
    (r"2\frac{1}{2}\pi", r"\pi", 0),  # a mixed number inside an expression: no number
    (r"2\frac{1}{2}+1", "2", 0),
    (r"2\cdot 3\frac{1}{2}", "3", 0),
    (r"2\frac{x}{2}", "x", 1),
    # percent, units, unicode digits and constants
    ("50%", "50", 1),
    (r"50\%", "0.5", 0),
    ("2m", "2", 0),  # 2 times m
    ("3g", "3", 0),
    ("2 m", "2", 1),
    ("5m^2", "5", 0),
    ("5 m^2", "5", 1),
    (r"2 \text{ m}", "2", 1),
    ("15cm", "15", 1),
    ("１２", "12", 1),
    ("１２", "13", 0),
    ("2π", r"2\pi", 1),
    ("2π", "2", 0),
    ("∞", r"\infty", 1),
    ("x²", "x^2", 1),
    ("10²⁵", "1e25", 1),
    ("10⁻³", "0.001", 1),
    ("2³", "9", 0),
    ("2½", "2.5", 1),
    ("½", "0.5", 1),
    ("2½", "1", 0),  # a mixed number, not 2 times 1/2
]


@pytest.mark.parametrize("a,b,expected", NUMBERS)
def test_number_spellings_both_ways(a, b, expected):
    assert grade(rf"\boxed{{{a}}}", b, **STRICT) == float(expected)
    assert grade(rf"\boxed{{{b}}}", a, **STRICT) == float(expected)


def test_the_number_table_is_balanced():
    assert 0.35 < sum(e for *_, e in NUMBERS) / len(NUMBERS) < 0.65


@pytest.mark.parametrize(
    "spellings",
    [
        ["1e25", "1E25", "10^{25}", "10^25", r"1\times10^{25}", "1×10^{25}", "10000000000000000000000000"],
        ["2.5e-3", "0.0025", r"2.5\cdot10^{-3}", r"\frac{1}{400}"],
        [r"0.\overline{3}", r"0.\bar{3}", "0.(3)", r"\frac13", "1/3"],
        ["−5", "-5", "－5"],
        [r"2\frac12", "2 1/2", "2.5", r"\frac{5}{2}"],
        ["0.333...", r"0.333\ldots", "0.333…", r"0.333\cdots"],
    ],
)
def test_normalize_groups_number_spellings(spellings):
    # the voting key: equal numbers share one, whatever the spelling
    assert len({normalize_answer(s) for s in spellings}) == 1, [normalize_answer(s) for s in spellings]


def test_normalize_keeps_different_numbers_apart():
    answers = ["25e", "1e25", "1 2", "12", "0.333...", "0.333", "1/3", "2 1/2", "21/2", "+-5", "-5", "2m", "2", "0"]
    answers += ["2^10", "500", "0.1(6)", "0.6"]
    keys = [normalize_answer(a) for a in answers]
    assert len(set(keys)) == len(answers), keys
