"""
Evaluate a model: n samples per problem, then pass@1, unbiased pass@k, maj@k, greedy accuracy, length.

    python evaluate.py --model toy_models/toy --dataset toy --n 16
    python evaluate.py --model Qwen/Qwen2.5-0.5B-Instruct --dataset math500 --n 16 --max-new-tokens 2048
    python evaluate.py --dataset toy --compare base=toy_models/toy sharpen=runs/sharpen task=runs/task
    python evaluate.py --dataset toy --n 256 --limit 64 --out base.json     # pass@k up to k = 256
    python evaluate.py --dataset toy --power-sample --alpha 4 --out power.json   # pi^alpha, no training
    python evaluate.py --dataset toy --power-smc --alpha 4 --particles 8          # the same target by Power-SMC
    python evaluate.py --dataset toy --scalable-power --alpha 4 --candidates 4 --rollouts 4   # by scalable power sampling
    python evaluate.py --merge base.json power.json --out both.json            # earlier tables side by side

Metrics, for a problem with n samples of which c are correct:
    pass@1   mean accuracy over all samples (the paper's `accuracy`)
    pass@k   1 - C(n-c, k) / C(n, k): the chance that at least one of k samples is right, estimated
             without bias from all n samples (Chen et al. 2021), for k = 1, 2, 4, ..., n
    maj@k    draw k of the n samples, majority-vote over their extracted answers (ties broken at random,
             no answer = no vote), averaged over `trials` random k-subsets
    greedy   accuracy of one temperature-0 response
    cov_r_logp   will sharpening help? Per problem, the sample covariance (1/(n-1)) of r and log pi_ref(y|x) over
             its n samples, averaged over problems, with a 95% bootstrap interval over problems (_low, _high):
             the slope d/dalpha E_{pi_ref^alpha}[r] at alpha = 1 (theory.py checks the identity)
    likeliest@n  accuracy of each problem's sample with the highest log pi_ref: sharpening's limit, argmax pi_ref
             log pi_ref is the evaluated model's own log-probability of the sample (temperature 1, whole vocabulary,
             EOS included): each model is its own reference (a training run's final model, not its base model: would
             sharpening it help?); under a road to p^alpha, p's (the base model's), not the sampler's
    entropy  mean per-token entropy of the distribution sampled from (nan for power sampling: not tracked)
    tokens_per_answer   tokens sampled per answer: the length, or a power-sampling road's whole cost (the MH
             chain, every particle, every future rollout)
    seconds_per_answer  wall time of the sampling per answer (greedy pass and grading excluded)
    train_tokens, train_time   for a training run: tokens sampled in training and the summed step time (s)
pass@k at large k measures what the model *can* do; pass@1 and maj@k what it *does*. Sharpening is the
hypothesis that RL moves mass toward answers the base model already had, raising pass@1 but not pass@n.

--compare evaluates several models side by side and, for those that are training runs (a folder with a
log.jsonl), plots their training curves next to each other; with n > 1, the pass@k-vs-k curves of all of
them on one log-x figure, each crossing marked (needs matplotlib). Samples are drawn one batch at a time
(--batch-size), so n = 256 needs no more memory than n = 16.
"""

from plumbing import options  # first: a Ctrl-C while the imports below load exits quietly

# isort: split
import json
import math
import os
import time
from collections import defaultdict

import numpy as np
import torch

import rollout
from family.roads import add_road_options, check_roads, road_of, road_sampler
from model import rollout_logprobs, use_bf16
from plumbing import checkpoint, distributed, tracking
from plumbing.loading import load_model, load_tokenizer, pick_device, resolve_model_path
from plumbing.provenance import problems_checksum
from plumbing.run_folder import read_log
from plumbing.tables import check_out, compare_runs, figures_of, is_run, model_path_of, read_tables, training_cost, write_results
from rewards import TaskGrader
from tasks.data import check_template, default_template, drop_long_prompts, load_or_exit


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
# will sharpening help? Two predictors from the samples already drawn (the README's "predictor" section)
#
# For pi_alpha ∝ pi_ref^alpha, d/dalpha E_{pi_alpha}[r] = Cov_{pi_alpha}(r, log pi_ref) (theory.py checks it), so the
# covariance under the base model's own samples is the slope at alpha = 1; the likeliest of n samples estimates
# where sharpening ends, the mode of pi_ref. Neither alone decides: the slope can be 0 while the mode is wrong.


def cov_r_logp(scores, logp_ref):
    """One problem's Cov(r, log pi_ref) = 1/(n - 1) sum_i (r_i - mean r)(log pi_ref(y_i|x) - mean log pi_ref): the
    unbiased sample covariance (1/(n-1), so its mean over problems estimates E_x Cov_pi(r, log pi_ref) at any n)."""
    r, logp = np.asarray(scores, float), np.asarray(logp_ref, float)
    return float(((r - r.mean()) * (logp - logp.mean())).sum() / (len(r) - 1))


def likeliest(scores, logp_ref, tolerance=1e-4):
    """r of the sample with the highest log pi_ref. Samples within `tolerance` nats of the highest tie (the same
    response scored in two batch rows can differ in float32's last bits): their mean r, a uniform pick's chance."""
    logp = np.asarray(logp_ref, float)
    return float(np.asarray(scores, float)[logp >= logp.max() - tolerance].mean())


def bootstrap_interval(values, rng, resamples=1000, level=0.95):
    """Percentile bootstrap of the mean over problems: the (1 - level)/2 and (1 + level)/2 quantiles of the means
    of `resamples` draws of len(values) problems with replacement."""
    values = np.asarray(values, float)
    means = values[rng.integers(len(values), size=(resamples, len(values)))].mean(1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def predictors(records, seed):
    """likeliest@n and (n > 1) cov_r_logp with its 95% interval (1,000 resamples, seeded by `seed`), from records
    that hold each sample's log pi_ref ({} from records that do not)."""
    if not all("logp_ref" in rec for rec in records):
        return {}
    n = len(records[0]["scores"])
    out = {f"likeliest@{n}": float(np.mean([likeliest(rec["scores"], rec["logp_ref"]) for rec in records]))}
    if n > 1:
        covs = [cov_r_logp(rec["scores"], rec["logp_ref"]) for rec in records]
        low, high = bootstrap_interval(covs, np.random.default_rng(seed))
        out |= {"cov_r_logp": float(np.mean(covs)), "cov_r_logp_low": low, "cov_r_logp_high": high}
    return out


def reference_logp(model, roll, rescore, rows=64):
    """log pi_ref(y|x) = sum_t log pi_ref(y_t | x, y_<t) of each sample (EOS included), pi_ref the evaluated model at
    temperature 1. The sampler's own log-probs are that when it samples the model as it is, or walks a road (which
    carries log p, not its proposal's); under another temperature, top-k or top-p (`rescore`) they are the
    sampling distribution's, and one teacher-forced pass, `rows` samples at a time, scores the samples instead."""
    if not rescore:
        return roll.logprobs.sum(-1)
    return rollout_logprobs(model, roll, rows)[0].sum(-1)


# -----------------------------------------------------------------------------
# sampling and grading (rollout.sample, the same path as training; family/roads.py: the roads to p^alpha)


def sample_and_grade(model, tokenizer, rows, grader, n, generator=None, **sampling):
    """n responses to each row's prompt (rollout.sample's settings), graded: (Rollout, r, answers, texts, the tokens
    sampled to get them: the responses' lengths, or what a RoadSampler counted)."""
    counted = getattr(sampling["sampler"], "sampled", None)
    roll, texts = rollout.sample(model, tokenizer, [row["prompt_ids"] for row in rows], n, generator=generator, **sampling)
    r, answers = grader.grade(texts, [row["answer"] for row in rows for _ in range(n)], model.device)
    sampled = int(roll.lengths.sum()) if counted is None else sampling["sampler"].sampled - counted
    return roll, r, answers, texts, sampled


def records_of(rows, n, roll, r, answers, texts, sampled, seconds=None, logp_ref=None):
    """One record per problem: its row, plus its n responses, scores, answers, lengths, truncation flags, mean
    entropies per token (of the distribution sampled from), and its share of the tokens sampled (and of the
    seconds spent sampling, when timed; and each response's log pi_ref, when given)."""
    lengths, truncated, scores = roll.lengths.tolist(), roll.truncated.tolist(), r.tolist()
    entropy = ((roll.entropy * roll.response_mask).sum(-1) / roll.lengths.clamp(min=1)).tolist()
    return [
        dict(
            row,
            responses=texts[i * n : (i + 1) * n],
            scores=scores[i * n : (i + 1) * n],
            answers=answers[i * n : (i + 1) * n],
            lengths=lengths[i * n : (i + 1) * n],
            truncated=truncated[i * n : (i + 1) * n],
            entropy=entropy[i * n : (i + 1) * n],
            sampled=sampled / len(rows),
            **({} if seconds is None else dict(seconds=seconds / len(rows))),
            **({} if logp_ref is None else dict(logp_ref=logp_ref[i * n : (i + 1) * n].tolist())),
        )
        for i, row in enumerate(rows)
    ]


def summarize(records, greedy=None, trials=1000, seed=0):
    """Aggregate metrics over problems; `greedy` holds the records of a temperature-0 pass."""
    n = len(records[0]["scores"])
    ks = [2**i for i in range(int(math.log2(n)) + 1)]
    rng = np.random.default_rng(seed)
    out = {"problems": len(records), "n": n, "pass@1": float(np.mean([np.mean(rec["scores"]) for rec in records]))}
    for k in ks[1:]:
        out[f"pass@{k}"] = float(np.mean([pass_at_k(n, int(sum(rec["scores"])), k) for rec in records]))
    for k in ks:
        out[f"maj@{k}"] = float(np.mean([maj_at_k(rec["answers"], rec["scores"], k, rng, trials) for rec in records]))
    if greedy is not None:
        out["greedy"] = float(np.mean([rec["scores"][0] for rec in greedy]))
    out |= predictors(records, seed)
    out["length"] = float(np.mean([np.mean(rec["lengths"]) for rec in records]))
    out["entropy"] = float(np.mean([np.mean(rec["entropy"]) for rec in records]))  # nats per token (nan: not tracked)
    out["tokens_per_answer"] = float(np.mean([rec["sampled"] for rec in records]) / n)  # the inference cost
    if all("seconds" in rec for rec in records):
        out["seconds_per_answer"] = float(np.mean([rec["seconds"] for rec in records]) / n)
    out["truncated"] = float(np.mean([np.mean(rec["truncated"]) for rec in records]))
    out["no_answer"] = float(np.mean([np.mean([a is None for a in rec["answers"]]) for rec in records]))
    for key in ("level", "subject"):  # MATH-style breakdowns, where the dataset has them
        groups = defaultdict(list)
        for rec in records:
            if rec.get(key) is not None:
                groups[rec[key]].append(np.mean(rec["scores"]))
        if groups:
            out[f"pass@1_by_{key}"] = {str(g): float(np.mean(v)) for g, v in sorted(groups.items())}
    return out


def evaluate_model(path, args, dist):
    rows = load_or_exit(args.dataset, args.split, args.limit, args.seed, args.question_key, args.answer_key)
    template = check_template(args.template or default_template(args.dataset))
    tokenizer = load_tokenizer(path)
    model = load_model(path, dist.device)
    if args.bf16:
        use_bf16(model)
    rows = drop_long_prompts(rows, tokenizer, template, model.config, args.max_new_tokens, args.dataset)
    dist.check_share(len(rows), f"--dataset {args.dataset}" + (f" --limit {args.limit}" if args.limit else ""))
    probe = rows[0]["prompt_ids"]  # a fixed prompt whose logits must be finite: a diverged model is refused
    if not checkpoint.finite(model, torch.tensor([probe], device=dist.device)):
        raise SystemExit(NOT_FINITE.format(path))
    mine = rows[dist.rank :: dist.world]  # each rank evaluates its own slice of the problems
    grader = TaskGrader(args.dataset, args.grader)
    sampling = options.sampling_settings(args, args.batch_size)  # the sampler --plain-rollout picks, as in training
    drawn = road_sampler(args, sampling["sampler"], model.config.vocab_size)  # or a road to p^alpha around it
    gen = torch.Generator(dist.device).manual_seed(args.seed + dist.rank)
    rescore = road_of(args) is None and (args.temperature, args.top_k, args.top_p) != (1.0, 0, 1.0)  # see reference_logp
    records = []
    per_call = max(1, args.batch_size // args.n)  # problems per call: one batch of samples in memory at a time
    for i in range(0, len(mine), per_call):
        chunk = mine[i : i + per_call]
        start = time.perf_counter()
        sampled = sample_and_grade(model, tokenizer, chunk, grader, args.n, gen, **dict(sampling, sampler=drawn))
        seconds, sampled = time.perf_counter() - start, finite_samples(sampled, path)
        records += records_of(chunk, args.n, *sampled, seconds=seconds, logp_ref=reference_logp(model, sampled[0], rescore))
    greedy = sample_and_grade(model, tokenizer, mine, grader, 1, **dict(sampling, temperature=0.0))
    greedy = records_of(mine, 1, *finite_samples(greedy, path))
    records, greedy = dist.gather_lists(records), dist.gather_lists(greedy)
    if not dist.is_main:
        return None
    # what it was evaluated on, so that --merge joins only tables of the same problems
    return summarize(records, greedy, args.trials, args.seed) | {
        "dataset": args.dataset,
        "problems_checksum": problems_checksum(rows),
    }


NOT_FINITE = "error: {} gives non-finite weights or logits (a diverged run?): evaluate one of its earlier checkpoints"


def finite_samples(sampled, path):
    """sample_and_grade's output, once its log-probs are found finite (a diverged model samples garbage)."""
    roll = sampled[0]
    if not torch.isfinite(roll.logprobs).all():  # (power sampling leaves entropy and certainty NaN: not tracked)
        raise SystemExit(NOT_FINITE.format(path))
    return sampled


# -----------------------------------------------------------------------------
# comparing runs


FORMATS = {
    "problems": "{:.0f}",
    "n": "{:.0f}",
    "length": "{:.1f}",
    "tokens_per_answer": "{:.1f}",
    "train_tokens": "{:.0f}",
    "train_time": "{:.0f}",
}


def print_table(results):
    """One column per model, one row per metric ("-" where a model lacks it, e.g. pass@256 from n = 32), then
    where the pass@k curves of two models cross."""
    from plot import crossings, pass_at_k_curve

    names = list(results)
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    keys = list(dict.fromkeys(k for n in names for k, v in results[n].items() if number(v)))
    width = max(10, *(len(n) + 2 for n in names))
    print("metric".ljust(18) + "".join(n.rjust(width) for n in names))
    for k in keys:
        cells = (FORMATS.get(k, "{:.3f}").format(results[n][k]) if number(results[n].get(k)) else "-" for n in names)
        print(k.ljust(18) + "".join(c.rjust(width) for c in cells))
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for k, y in crossings(pass_at_k_curve(results[a]), pass_at_k_curve(results[b])):
                print(f"pass@k of {a} and {b} cross at k = {k:.1f} (pass@k {y:.3f})")


def report(results, out, logs):
    """Print the table; with `out`, write the metrics there as JSON, next to it the training curves of the runs
    in `logs` ({name: the rows of its log.jsonl}) and the pass@k-vs-k figure (figures_of)."""
    import plot

    print()
    print_table(results)
    for name, res in results.items():
        for key in ("pass@1_by_level", "pass@1_by_subject"):
            if key in res:
                print(f"{name} {key}: " + ", ".join(f"{g}: {v:.3f}" for g, v in res[key].items()))
    if not out:
        return
    write_results(results, out)
    print(f"wrote {out}")
    curves, pass_at_k_figure = figures_of(out, logs, max(res.get("n") or 1 for res in results.values()))
    if curves and plot.plot_runs(logs, curves):
        print(f"wrote {curves} (training curves)")
    if pass_at_k_figure and plot.plot_pass_at_k(results, pass_at_k_figure):
        print(f"wrote {pass_at_k_figure} (pass@k vs k)")


def track(results, args):
    """--report-to: the table print_table prints (its rows, unrounded) and the options, in a folder named after --out."""
    if args.report_to == "none":
        return
    tracker = tracking.start(args.report_to, os.path.splitext(args.out)[0], os.path.splitext(args.out)[0], vars(args))
    if tracker is not None:
        names = list(results)
        keys = dict.fromkeys(k for n in names for k, v in results[n].items() if isinstance(v, float))
        tracker.table(["metric", *names], [[k, *(results[n].get(k) for n in names)] for k in keys])
        tracker.close()


def parser():
    p = options.Parser(__doc__)
    p.add("--model", help="hub id, folder, .gguf file, or smollm2 (default: the toy model of a toy dataset)")
    p.add("--compare", nargs="+", metavar="NAME=PATH", help="evaluate several models/runs side by side")
    p.add("--dataset", default="toy", help="short name (toy, math500, gsm8k, ...) or a local file")
    p.add("--split", default="test")
    p.add("--question-key", help="question column of a local data file")
    p.add("--answer-key", help="answer column of a local data file")
    p.add("--limit", type=options.COUNT, help="evaluate a seeded random subset of this many problems")
    p.add(
        "--n",
        "--samples",
        dest="n",
        type=options.POWER_OF_TWO,
        default=16,
        help="samples per problem (under torchrun spell it --samples: torchrun claims --n)",
    )
    options.sampling_options(p)
    p.add("--batch-size", type=options.COUNT, default=256, help="sequences per rollout call")
    p.add("--bf16", action="store_true", help="bf16 autocast on a CPU too, as on CUDA (2-3x faster on CPUs with bf16 units)")
    p.add("--template", help="prompt template with {problem} (default: the dataset's)")
    p.add("--grader", default="builtin", choices=("builtin", "math_verify"))
    p.add("--trials", type=options.COUNT, default=1000, help="random k-subsets per problem for maj@k")
    add_road_options(p)  # --power-sample, --power-smc, --scalable-power and their settings
    p.add("--seed", type=options.SEED, default=0)
    p.add("--out", help="write the metrics as JSON here (and the training curves and pass@k figure next to it)")
    p.add(
        "--merge",
        nargs="+",
        metavar="JSON",
        help="print (and with --out, plot) tables written by earlier --out runs, side by side",
    )
    tracking.add_option(p)
    return p


def main():
    p = parser()
    args = p.parse_args()
    if args.report_to != "none" and not args.out:
        p.error("--report-to needs --out: its files go in a folder named after the JSON (runs/eval.json: runs/eval/)")
    tracking.require(args.report_to)
    given = p.given()
    check_roads(given)
    check_used(given, args)
    args.max_new_tokens = args.max_new_tokens or options.task_defaults(args.dataset)["max_new_tokens"]
    dist = distributed.setup(pick_device())
    torch.manual_seed(args.seed)

    if args.merge:  # tables written by earlier runs of this script, side by side
        results = read_tables(args.merge)
        if args.out:
            check_out(args.out, figures_of(args.out, {}, max(res.get("n") or 1 for res in results.values())))
        report(results, args.out, {})
        track(results, args)
        return
    runs = compare_runs(args.compare) or {"model": resolve_model_path(args.model, args.dataset)}
    # every run's log is read now: a bad line stops here, not after the evaluation (a torn last line is dropped)
    logs = {name: read_log(os.path.join(path, "log.jsonl")) for name, path in runs.items() if is_run(path)}
    if args.out:  # an --out that cannot be written, or would replace a file not ours, stops now: nothing has run
        check_out(args.out, figures_of(args.out, logs, args.n))
    models = {name: model_path_of(path) for name, path in runs.items()}  # a run without final/, or a damaged one: now
    results = {}
    for name, path in runs.items():
        results[name] = evaluate_model(models[name], args, dist)
        if dist.is_main:
            results[name] |= training_cost(path, logs.get(name))
            print(f"{name}: {json.dumps({k: v for k, v in results[name].items() if isinstance(v, (int, float))})}")
            if args.out:
                write_results(results, args.out)
    if dist.is_main:
        report(results, args.out, logs)
        track(results, args)
    dist.close()


MERGE_USES = {"merge", "out", "report_to"}


def check_used(given, args):
    """Every option given is used: --merge only prints (and writes) tables, --compare names its own models; and
    --temperature 0 draws one response, so n > 1 of them would only repeat it (pass@k = pass@1)."""
    if "merge" in given and given - MERGE_USES:
        unused = ", ".join(f"--{k.replace('_', '-')}" for k in sorted(given - MERGE_USES))
        raise SystemExit(f"error: --merge joins tables already evaluated: {unused} would not be used; drop it")
    if "compare" in given and "model" in given:
        raise SystemExit(
            "error: --compare names its models (NAME=PATH): --model would not be used; drop it, or add it to --compare"
        )
    if args.temperature == 0 and args.n > 1 and road_of(args) is None:
        raise SystemExit(
            f"error: --temperature 0 is greedy: its {args.n} samples would be one response {args.n} times (pass@k = pass@1); "
            f"give --n 1, or a temperature above 0"
        )


if __name__ == "__main__":
    main()
