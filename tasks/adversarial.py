"""An adversarial set for the task reward: answers built to be scored 1 without being right.

Every case is (prediction, gold, expected) with expected = 1 only where the two are mathematically equal
(expressions in variables: equal as real functions, the same domain and the same values on it).
Here, beside the grader, for anyone to hold a grader against: tests/test_grader_adversarial.py (the built-in
grader must get every case right) and bench/bench_grader_vs_math_verify.py (agreement with HF math-verify, the
paper's grader) read it.
"""

# Values that overflow a float, are infinite or undefined, or are astronomically small: none of them is
# any ordinary gold answer.
OVERFLOWING = [
    r"\pi^{1000}",
    r"-\pi^{1000}",
    r"e^{2000x}",
    r"(1+\sqrt2)^{2000}",
    r"10^{400}\sqrt2",
    r"e^{10000}",
    r"2^{10000}\pi",
    r"\sqrt{3}^{9999}",
    r"e^{e^{9}}",
    r"\frac{1}{e^{-5000}}",
    r"e^{-5000}",
    r"10^{-400}\pi",
    r"\frac{1}{0}",
    r"0^{-1}",
    r"\infty",
    r"-\infty",
    r"\frac{0}{0}",
    r"\pi^{1000}x",
    r"x^{9999}",
    r"9^{9999}",
]
ORDINARY_GOLDS = ["5", "0", r"\frac{1}{2}", r"\sqrt{2}", "2x+1", r"\pi", "-3", "100"]

BIG_EQUAL = [
    ("2^{100}", "1267650600228229401496703205376"),
    ("10^{400}", "10^{400}"),
    ("2^{1000}", "4^{500}"),
    (r"(1+\sqrt2)^{2000}", r"(3+2\sqrt{2})^{1000}"),
    (r"\sqrt{2}^{2000}", "2^{1000}"),
    ("3^{2000}", "9^{1000}"),
    ("e^{2000}", "(e^{1000})^2"),
    (r"\pi^{1000}", r"\pi^{1000}"),
    (r"10^{400}\sqrt2", r"\sqrt{2}\cdot 10^{400}"),
    (r"\frac{10^{400}}{2}", r"5\cdot10^{399}"),
    (r"e^{1000}e^{1000}", "e^{2000}"),
    ("2^{1024}", "2^{1024}"),
    ("10^{-400}", r"\frac{1}{10^{400}}"),
    (r"\frac{2^{3000}}{2^{2999}}", "2"),
    ("(2^{500})^2", "2^{1000}"),
    ("30!", "265252859812191058636308480000000"),
    (r"\pi^{500}\pi^{500}", r"\pi^{1000}"),
    (r"(\sqrt{5}+2)^{300}(\sqrt{5}-2)^{300}", "1"),
    ("2^{64}-1", "18446744073709551615"),
    ("7^{222}", "7^{111}\\cdot 7^{111}"),
]

BIG_DIFFERENT = [
    ("2^{1024}", "2^{1024}+1"),
    ("10^{400}", "10^{400}+1"),
    (r"\pi^{1000}", r"\pi^{1000}+1"),
    (r"(1+\sqrt2)^{2000}", r"(1+\sqrt2)^{2000}+1"),
    (r"10^{400}\sqrt2", r"10^{400}\sqrt2+1"),
    ("e^{2000}", "e^{2000}+10^{-50}"),
    ("3^{2000}", "9^{1000}-1"),
    ("2^{1000}", "2^{1001}"),
    (r"\pi+10^{-100}", r"\pi"),
    (r"\sqrt{10^{600}+1}", "10^{300}"),
    (r"e^{\pi\sqrt{163}}", "640320^3+744"),
    ("2^{64}", "18446744073709551615"),
    (r"\pi^{1000}", r"-\pi^{1000}"),
    ("10^{-400}", "0"),
    (r"e^{-5000}", "0"),
    (r"(10^{300}+\pi)^2-10^{600}-2\cdot10^{300}\pi+10^{-50}\sqrt2", r"\pi^2"),
    (r"\frac{10^{400}+1}{10^{400}}", "1"),
    (r"\sqrt{2}^{2001}", "2^{1000}"),
    ("31!", "30!"),
    (r"(\sqrt{5}+2)^{300}(\sqrt{5}-2)^{299}", "1"),
]

IDENTITIES = [  # (prediction, gold, are they equal as functions?)
    ("(x+1)^{9999}-x^{9999}", "9999x^{9998}", 0),
    ("(1+1/x)^{10000}", "e", 0),
    ("(x+1)^{50}", "x^{50}+1", 0),
    ("x^{1000}", "x^{999}", 0),
    (r"\sin x", "x", 0),
    ("(x-1)(x-2)(x-3)+x", "x", 0),
    (r"\frac{x^{100}-1}{x-1}", "x^{99}", 0),
    ("(x+y)^2", "x^2+y^2", 0),
    (r"e^{x}", "1+x+x^2/2+x^3/6", 0),
    ("(x+1)^{1000}-x^{1000}", "1000x^{999}", 0),
    (r"\frac{1}{x}+\frac{1}{y}", r"\frac{1}{x+y}", 0),
    ("(x-1)(x-2)(x-3)(x-4)(x-5)+2x+1", "2x+1", 0),
    (r"\log(x+y)", r"\log x+\log y", 0),
    (r"\sqrt{x+y}", r"\sqrt x+\sqrt y", 0),
    ("x^2-2x+1", "(x-1)^2", 1),
    (r"\sin^2 x+\cos^2 x", "1", 1),
    (r"\frac{x^2-1}{x-1}", "x+1", 1),
    ("(x+1)^{500}", "(x^2+2x+1)^{250}", 1),
    ("(x+y)^3", "x^3+3x^2y+3xy^2+y^3", 1),
    (r"\frac{x^{100}-1}{x-1}", r"\frac{x^{100}-1}{x-1}", 1),
    (r"2\sin x\cos x", r"\sin(2x)", 1),
    (r"e^{x+1}", r"e\cdot e^{x}", 1),
    (r"\log(xy)", r"\log x+\log y", 0),  # x, y < 0: only the left side is defined
    (r"\log|xy|", r"\log|x|+\log|y|", 1),
]

# Identities that hold on part of the real line only (equal for x > 0, say): a grader that samples x > 0 alone,
# or compares complex principal values, or ignores where a side is defined, passes them. Equal as real functions
# means the same domain and the same values on it.
BRANCHES = [  # (prediction, gold, are they equal as real functions?)
    (r"\sqrt{x^2}", "x", 0),
    (r"|x|", "x", 0),
    ("x", r"\sqrt{x^2}", 0),
    (r"\sqrt{(x-3)^2}", "x-3", 0),
    (r"\sqrt{x^2-6x+9}", "3-x", 0),
    (r"\sqrt{x^6}", "x^3", 0),
    (r"\sqrt{x^2y^2}", "xy", 0),
    (r"\frac{|x|}{x}", "1", 0),
    (r"\frac{x}{\sqrt{x^2}}", "1", 0),
    (r"\log(x^2)", r"2\log x", 0),
    (r"\ln(x^4)", r"4\ln x", 0),
    (r"\log(x^3)", r"3\log x", 1),  # both defined for x > 0 only
    (r"\sqrt{x}\sqrt{y}", r"\sqrt{xy}", 0),
    (r"\frac{\sqrt{x}}{\sqrt{y}}", r"\sqrt{\frac{x}{y}}", 0),
    (r"e^{\ln x}", "x", 0),
    (r"\sqrt{x}^2", "x", 0),
    (r"\sin(\arcsin x)", "x", 0),
    (r"\arcsin(\sin x)", "x", 0),
    (r"\arccos(\cos x)", "x", 0),
    (r"\arctan(\tan x)", "x", 0),
    (r"x^{1/3}x^{1/3}x^{1/3}", "x", 1),
    (r"\sqrt[3]{x^3}", "x", 1),
    (r"\sqrt[4]{x^4}", "x", 0),
    (r"\sqrt{-x^2-1}", r"\sqrt{-x^2-2}", 0),  # defined nowhere on the real line: not shown equal
    (r"\log(-x^2)", r"\log(-x^2)+1", 0),
    (r"\sqrt{x^2}+0i", "x", 0),  # an i switches to complex principal values: |x| != x there too
    (r"x+|x-10^6|+x-10^6", "x", 0),  # equal below 10^6 only
    (r"|x-10^{12}|", r"10^{12}-x", 0),
    (r"|x^2-2|", "x^2-2", 0),  # differs on (-sqrt2, sqrt2) only
    (r"x\frac{\sqrt{10^{12}-x^2}}{\sqrt{10^{12}-x^2}}", "x", 0),  # defined for |x| <= 10^6 only
    (r"\sqrt{x^2}", "|x|", 1),
    (r"\sqrt{(x-3)^2}", "|3-x|", 1),
    (r"\sqrt{x^6}", "|x|^3", 1),
    (r"\log(x^2)", r"2\log|x|", 1),
    (r"\sqrt{x^2y^2}", "|xy|", 1),
    (r"|x|^2", "x^2", 1),
    (r"\ln(e^{x})", "x", 1),
    (r"\tan(\arctan x)", "x", 1),
    (r"\arcsin x+\arccos x", r"\frac{\pi}{2}", 0),  # defined for |x| <= 1 only
    (r"\arcsin x+\arccos x", r"\frac{\pi}{2}+0\sqrt{1-x^2}", 1),
    (r"\frac{\sqrt{x}}{x}", r"x^{-1/2}", 1),
]

HEDGES = [  # a response that names several answers has not answered; gold is "3" unless said otherwise
    (r"\boxed{3 \text{ or } 5}", "3"),
    (r"\boxed{3, 5}", "3"),
    (r"\boxed{3} or \boxed{5}", "3"),
    (r"\boxed{5} then \boxed{3}", "3"),
    (r"\boxed{4 \pm 1}", "3"),
    (r"\boxed{\{3, 5\}}", "3"),
    (r"\boxed{x=3 \text{ or } x=5}", "3"),
    (r"\boxed{3 \text{ and } 5}", "3"),
    (r"\boxed{3 \lor 5}", "3"),
    (r"\boxed{3 \vee 5}", "3"),
    (r"\boxed{[3, 5]}", "3"),
    (r"\boxed{x \in \{3, 5\}}", "3"),
    (r"\boxed{3\ \text{or}\ 5}", "3"),
    (r"\boxed{3 \mathrm{ or } 5}", "3"),
    (r"\boxed{3;5}", "3"),
    (r"The answer is 3 or 5.", "3"),
    (r"\boxed{3}\boxed{3.5}", "3"),
    (r"\boxed{3 \text{ to } 5}", "3"),
    (r"\boxed{3 \le x \le 5}", "3"),
    (r"\boxed{(3, 5)}", "3"),
    (r"\boxed{3 \quad 5}", "3"),
    (r"\boxed{3 \text{ (or 5)}}", "3"),
    (r"\boxed{3/5}", "3"),
    (r"\boxed{\pm 3}", "3"),
    (r"\boxed{1, 2, 3, 4, 5}", "3"),
    (r"\boxed{3, 3}", "(3, 5)"),
    (r"\boxed{1 \text{ or } 2}", r"\frac{1}{2}"),
]

# Spellings that a lenient reader of numbers scores as another number: an e read as Euler's number in
# scientific notation, a LaTeX one-digit exponent in plain text, digits run together across a space, a
# truncated decimal taken as exact, "+-" (typed for ±) taken as a minus, a range's dash taken as a minus, a
# middle dot (a decimal point in some countries) taken as a product, a mixed number multiplied out, a variable
# taken for a unit. Each is graded both ways (the spelling as the answer and as the gold).
SPELLINGS = [  # (a, b, are they equal?)
    ("25e", "1e25", 0),
    ("1e3", "3e", 0),
    ("1e25", "10^{25}", 1),
    ("2.5e-3", "0.0025", 1),
    ("1e-99999", "0", 0),
    ("10^25", "500", 0),
    ("2^10", "0", 0),
    ("2^100000", "0", 0),
    ("1 2", "12", 0),
    (r"1\,2", "12", 0),
    ("10 00", "1000", 0),
    ("1, 234", "1234", 0),
    ("2 1/2", "21/2", 0),
    ("0.333...", "0.333", 0),
    ("0.333...", r"\frac{1}{3}", 0),
    (r"0.\overline{3}", r"\frac{1}{3}", 1),
    ("0.(3)", "0", 0),
    ("0.1(6)", "0.6", 0),
    ("+-5", "-5", 0),
    ("3+-2", "1", 0),
    ("−5", "-5", 1),
    ("−5", "5", 0),
    ("3–5", "-2", 0),
    ("2·5", "10", 0),
    (r"2\frac{1}{2}\pi", r"\pi", 0),
    ("2m", "2", 0),
]


def cases():
    """Every case as (response, gold, expected reward)."""
    out = [(rf"\boxed{{{p}}}", g, 0) for p in OVERFLOWING for g in ORDINARY_GOLDS if p != g]
    out += [(rf"\boxed{{{p}}}", g, 1) for p, g in BIG_EQUAL]
    out += [(rf"\boxed{{{g}}}", p, 1) for p, g in BIG_EQUAL]  # and the other way round
    out += [(rf"\boxed{{{p}}}", g, 0) for p, g in BIG_DIFFERENT]
    out += [(rf"\boxed{{{g}}}", p, 0) for p, g in BIG_DIFFERENT]
    out += [(rf"\boxed{{{p}}}", g, e) for p, g, e in IDENTITIES + BRANCHES]
    out += [(response, gold, 0) for response, gold in HEDGES]
    out += [(rf"\boxed{{{a}}}", b, e) for a, b, e in SPELLINGS]
    out += [(rf"\boxed{{{b}}}", a, e) for a, b, e in SPELLINGS]
    return out
