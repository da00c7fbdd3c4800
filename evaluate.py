"""
Evaluate a model: n samples per problem, then pass@1, unbiased pass@k, maj@k, greedy accuracy, length.

    python evaluate.py --model toy_models/toy --dataset toy --n 16
    python evaluate.py --model Qwen/Qwen2.5-0.5B-Instruct --dataset math500 --n 16 --max-new-tokens 2048
    python evaluate.py --dataset toy --compare base=toy_models/toy sharpen=runs/sharpen task=runs/task

Metrics, for a problem with n samples of which c are correct:
    pass@1   mean accuracy over all samples (the paper's `accuracy`)
    pass@k   1 - C(n-c, k) / C(n, k): the chance that at least one of k samples is right, estimated
             without bias from all n samples (Chen et al. 2021), for k = 1, 2, 4, ..., n
    maj@k    draw k of the n samples, majority-vote over their extracted answers (ties broken at random,
             no answer = no vote), averaged over `trials` random k-subsets
    greedy   accuracy of one temperature-0 response
pass@k at large k measures what the model *can* do; pass@1 and maj@k what it *does*. Sharpening is the
hypothesis that RL moves mass toward answers the base model already had, raising pass@1 but not pass@n.

--compare evaluates several models side by side and, for those that are training runs (a folder with a
log.jsonl), plots their training curves next to each other (needs matplotlib).
"""

import argparse
import json
import math
import os
from collections import Counter, defaultdict

import numpy as np
import torch

import distributed
from data import build_prompt, default_template, load_or_exit
from model import autocast, eos_ids, load_model, load_tokenizer, pick_device, resolve_model_path
from rewards import TaskGrader
from rollout import rollout


def pass_at_k(n, c, k):
    """Unbiased pass@k = 1 - C(n-c, k)/C(n, k), as a stable product."""
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def maj_at_k(answers, correct, k, rng, trials=1000):
    """
    answers: the n extracted answers of one problem (None = no answer); correct: their 0/1 grades.
    Mean accuracy of a majority vote over random k-subsets.
    """
    ids = {a: i for i, a in enumerate(sorted({a for a in answers if a is not None}))}
    if not ids:
        return 0.0
    answer_id = np.array([ids.get(a, -1) for a in answers])
    id_correct = np.zeros(len(ids), dtype=bool)
    for a, c in zip(answers, correct):
        if a is not None:
            id_correct[ids[a]] |= bool(c)
    subsets = rng.random((trials, len(answers))).argsort(1)[:, :k]
    picked = answer_id[subsets]  # [trials, k]
    votes = np.stack([(picked == i).sum(1) for i in range(len(ids))], 1).astype(float)
    votes[votes.sum(1) == 0] = -1  # nobody answered: the vote is lost
    winner = (votes + rng.random(votes.shape) * 0.5).argmax(1)  # the jitter breaks ties at random
    won = id_correct[winner] & (votes.max(1) > 0)
    return float(won.mean())


# -----------------------------------------------------------------------------
# sampling


@torch.no_grad()
def sample_and_grade(model, tokenizer, rows, grader, n, template, max_new_tokens, temperature=1.0, top_p=1.0,
                     top_k=0, batch_size=256, seed=0):
    """n responses per problem, graded. Returns one record per problem."""
    model.eval()
    prompts = [tokenizer.encode(build_prompt(tokenizer, r["question"], template), add_special_tokens=False) for r in rows]
    flat = [(i, p) for i, p in enumerate(prompts) for _ in range(n)]
    gen = torch.Generator(model.device).manual_seed(seed)
    records = [dict(row, responses=[], scores=[], answers=[], lengths=[], truncated=[]) for row in rows]
    for start in range(0, len(flat), batch_size):
        chunk = flat[start : start + batch_size]
        with autocast(model.device):
            roll = rollout(model, [p for _, p in chunk], max_new_tokens, eos_ids(tokenizer, model),
                           tokenizer.pad_token_id, temperature, top_k, top_p, generator=gen)
        texts = decode_responses(tokenizer, roll)
        for (i, _), text, length, trunc in zip(chunk, texts, roll.lengths.tolist(), roll.truncated.tolist()):
            rec = records[i]
            rec["responses"].append(text)
            score, answer = grader.check(text, rec["answer"])
            rec["scores"].append(score)
            rec["answers"].append(answer)
            rec["lengths"].append(length)
            rec["truncated"].append(trunc)
    return records


def decode_responses(tokenizer, roll):
    ids = roll.responses.masked_fill(~roll.response_mask, tokenizer.pad_token_id)
    return tokenizer.batch_decode(ids, skip_special_tokens=True)


def summarize(records, greedy=None, trials=1000, seed=0):
    """Aggregate metrics over problems; `greedy` holds the records of a temperature-0 pass."""
    n = len(records[0]["scores"])
    ks = [2**i for i in range(int(math.log2(n)) + 1)]
    rng = np.random.default_rng(seed)
    out = {"problems": len(records), "n": n, "pass@1": float(np.mean([np.mean(r["scores"]) for r in records]))}
    for k in ks[1:]:
        out[f"pass@{k}"] = float(np.mean([pass_at_k(n, int(sum(r["scores"])), k) for r in records]))
    for k in ks:
        out[f"maj@{k}"] = float(np.mean([maj_at_k(r["answers"], r["scores"], k, rng, trials) for r in records]))
    if greedy is not None:
        out["greedy"] = float(np.mean([r["scores"][0] for r in greedy]))
    out["length"] = float(np.mean([np.mean(r["lengths"]) for r in records]))
    out["truncated"] = float(np.mean([np.mean(r["truncated"]) for r in records]))
    out["no_answer"] = float(np.mean([np.mean([a is None for a in r["answers"]]) for r in records]))
    for key in ("level", "subject"):  # MATH-style breakdowns, where the dataset has them
        groups = defaultdict(list)
        for r in records:
            if r.get(key) is not None:
                groups[r[key]].append(np.mean(r["scores"]))
        if groups:
            out[f"pass@1_by_{key}"] = {str(g): float(np.mean(v)) for g, v in sorted(groups.items())}
    return out


def evaluate_model(path, args, dist):
    tokenizer = load_tokenizer(path)
    model = load_model(path, dist.device)
    rows = load_or_exit(args.dataset, args.split, args.limit, args.seed, args.question_key, args.answer_key)
    mine = rows[dist.rank :: dist.world]  # each rank evaluates its own slice of the problems
    grader = TaskGrader(args.dataset, args.grader)
    template = args.template or default_template(args.dataset)
    common = dict(max_new_tokens=args.max_new_tokens, top_p=args.top_p, top_k=args.top_k, batch_size=args.batch_size)
    records = sample_and_grade(model, tokenizer, mine, grader, args.n, template, temperature=args.temperature,
                               seed=args.seed + dist.rank, **common)
    greedy = sample_and_grade(model, tokenizer, mine, grader, 1, template, temperature=0.0, **common)
    records, greedy = dist.gather_lists(records), dist.gather_lists(greedy)
    return summarize(records, greedy, args.trials, args.seed) if dist.is_main else None


# -----------------------------------------------------------------------------
# comparing runs


def model_path_of(run):
    """A training run folder evaluates its final model; anything else is a model path or hub id."""
    final = os.path.join(run, "final")
    return final if os.path.isdir(final) else run


def print_table(results):
    names = list(results)
    keys = [k for k in results[names[0]] if isinstance(results[names[0]][k], float)]
    width = max(10, *(len(n) + 2 for n in names))
    print("metric".ljust(12) + "".join(n.rjust(width) for n in names))
    for k in keys:
        cells = "".join((f"{results[n][k]:.1f}" if k in ("length",) else f"{results[n][k]:.3f}").rjust(width) for n in names)
        print(k.ljust(12) + cells)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="hub id or folder (default: the toy model of a toy dataset)")
    p.add_argument("--compare", nargs="+", metavar="NAME=PATH", help="evaluate several models/runs side by side")
    p.add_argument("--dataset", default="toy", help="short name (toy, math500, gsm8k, ...) or a local file")
    p.add_argument("--split", default="test")
    p.add_argument("--question-key", help="question column of a local data file")
    p.add_argument("--answer-key", help="answer column of a local data file")
    p.add_argument("--limit", type=int, help="evaluate a seeded random subset of this many problems")
    p.add_argument("--n", "--samples", dest="n", type=int, default=16,
                   help="samples per problem (under torchrun spell it --samples: torchrun claims --n)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--max-new-tokens", type=int, help="default: 48 on the toy, 2048 otherwise")
    p.add_argument("--batch-size", type=int, default=256, help="sequences per rollout call")
    p.add_argument("--template", help="prompt template with {problem} (default: the dataset's)")
    p.add_argument("--grader", default="builtin", help="builtin or math_verify")
    p.add_argument("--trials", type=int, default=1000, help="random k-subsets per problem for maj@k")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the metrics as JSON here (and the comparison plot next to it)")
    args = p.parse_args()
    if args.max_new_tokens is None:
        args.max_new_tokens = 48 if args.dataset.startswith("toy") else 2048
    if args.n < 1 or args.n & (args.n - 1):
        raise SystemExit(f"--n (--samples) must be a power of two (1, 2, 4, ...), got {args.n}")
    dist = distributed.setup(pick_device())
    torch.manual_seed(args.seed)

    runs = dict(item.split("=", 1) if "=" in item else (item, item) for item in args.compare or [])
    runs = runs or {"model": resolve_model_path(args.model, args.dataset)}
    results = {}
    for name, path in runs.items():
        results[name] = evaluate_model(model_path_of(path), args, dist)
        if dist.is_main:
            print(f"{name}: {json.dumps({k: v for k, v in results[name].items() if not isinstance(v, dict)})}")
    if dist.is_main:
        print()
        print_table(results)
        for name, res in results.items():
            for key in ("pass@1_by_level", "pass@1_by_subject"):
                if key in res:
                    print(f"{name} {key}: " + ", ".join(f"{g}: {v:.3f}" for g, v in res[key].items()))
        if args.out:
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            with open(args.out, "w") as f:
                json.dump(results, f, indent=1)
            logs = {name: os.path.join(path, "log.jsonl") for name, path in runs.items()}
            logs = {name: log for name, log in logs.items() if os.path.exists(log)}
            if logs:
                import plot

                png = plot.plot_runs(logs, os.path.splitext(args.out)[0] + ".png")
                print(f"wrote {args.out}" + (f" and {png}" if png else ""))
    dist.close()


if __name__ == "__main__":
    main()
