"""
The roads to p^alpha as evaluate.py's samplers (power_sample.py holds the roads themselves): the options that pick
one, --power-sample (Metropolis-Hastings), --power-smc and --scalable-power, each with its own settings; the check
that one road at a time is chosen and that every setting comes with its road; and RoadSampler, which draws each
response by the chosen road in place of one plain draw, counting the tokens that cost.
"""

from family.power_sample import ROADS, smc_rollout
from plumbing import options

# each road's flag: (its name in power_sample.ROADS, the settings only it reads)
ROAD_OPTIONS = {
    "power_sample": ("mh", ("blocks", "mcmc_steps")),
    "power_smc": ("smc", ("particles", "ess_threshold")),
    "scalable_power": ("scalable", ("candidates", "rollouts")),
}


def add_road_options(p):
    p.add("--power-sample", action="store_true", help="draw the n samples by power sampling (power_sample.py): pi^alpha")
    p.add("--power-smc", action="store_true", help="draw them from pi^alpha by Power-SMC (power_sample.py)")
    p.add("--scalable-power", action="store_true", help="draw them from pi^alpha by scalable power sampling (power_sample.py)")
    p.add("--alpha", type=options.POSITIVE, default=4.0, help="the roads' exponent (each starts from temperature 1/alpha)")
    p.add("--blocks", type=options.COUNT, default=4, help="--power-sample: blocks the response grows in")
    p.add("--mcmc-steps", type=options.NATURAL, default=4, help="--power-sample: Metropolis-Hastings steps per block")
    p.add("--particles", type=options.COUNT, default=8, help="--power-smc: particles per answer")
    p.add("--ess-threshold", type=options.TOP_P, default=0.5, help="--power-smc: resample when ESS < this x particles")
    p.add("--candidates", type=options.COUNT, default=4, help="--scalable-power: top-K tokens weighed at each step")
    p.add("--rollouts", type=options.COUNT, default=4, help="--scalable-power: futures per candidate (jackknife from 2)")


def check_roads(given):
    """One road at a time, and each road's settings only with it: a setting no road reads would be ignored."""
    roads = [flag for flag in ROAD_OPTIONS if flag in given]
    if len(roads) > 1:
        raise SystemExit(f"error: choose one of {', '.join('--' + r.replace('_', '-') for r in roads)}")
    for flag, (_, settings) in ROAD_OPTIONS.items():
        for setting in settings:
            if setting in given and flag not in roads:
                raise SystemExit(
                    f"error: --{setting.replace('_', '-')} is a setting of --{flag.replace('_', '-')}: add that flag"
                )
    if "alpha" in given and not roads:
        raise SystemExit("error: --alpha needs a road to p^alpha: --power-sample, --power-smc or --scalable-power")


def road_of(args):
    """RoadSampler's road: the chosen one and its settings (None: plain sampling)."""
    for flag, (road, settings) in ROAD_OPTIONS.items():
        if getattr(args, flag):
            return dict(road=road, alpha=args.alpha, **{s: getattr(args, s) for s in settings})
    return None


def road_sampler(args, plain, vocab_size):
    """What evaluate.py samples its n answers with: `plain` (rollout.sample's sampler), or a RoadSampler around it
    when a road is chosen (refused: more --candidates than the vocabulary has tokens)."""
    road = road_of(args)
    if road is None:
        return plain
    if road["road"] == "scalable" and args.candidates > vocab_size:
        raise SystemExit(f"error: --candidates {args.candidates} exceeds the vocabulary ({vocab_size} tokens)")
    return RoadSampler(road, plain)


class RoadSampler:
    """A sampler with rollout's signature that draws each response by a road to p^alpha (power_sample.ROADS: "mh"
    with blocks, mcmc_steps; "smc" with particles, ess_threshold; "scalable" with candidates, rollouts), in place of
    one plain draw; `proposal` is the plain sampler that MH's proposal and the scalable futures use. `sampled`
    counts the tokens it has sampled: its cost."""

    def __init__(self, road, proposal):
        self.settings = dict(road)
        self.draw = ROADS[self.settings.pop("road")]
        if self.draw is not smc_rollout:  # Power-SMC decodes on its own cache: resampling moves it
            self.settings["sampler"] = proposal
        self.sampled = 0

    def __call__(self, model, prompt_ids, max_new_tokens, eos, pad, temperature, top_k, top_p, ignore_eos, generator):
        roll, sampled = self.draw(model, prompt_ids, max_new_tokens, eos, pad, generator=generator, **self.settings)
        self.sampled += sampled
        return roll
