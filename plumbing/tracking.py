"""
Live curves for long runs, `--report-to tensorboard` or `--report-to wandb` (default none), rank 0 only:
every number of each log.jsonl row, under its log.jsonl name, at its step, as the row is written; the run's
options as hyper-parameters; evaluate.py's final table; what the model wrote at each evaluation (samples.py).
Neither package is in requirements.txt's core: a missing one stops the script with the pip command that
installs it, before anything is loaded. With the flag off nothing here is imported beyond this file, and
nothing runs.

    tensorboard   <folder>/tensorboard/   `tensorboard --logdir runs` shows every run under runs/
    wandb         <folder>/wandb/         online when logged in (`wandb login`); offline, for `wandb sync`
                                          later, under WANDB_MODE=offline, without a login, or when the
                                          server does not answer within wandb's init timeout
"""

import os

CHOICES = ("none", "tensorboard", "wandb")


def add_option(p):
    p.add("--report-to", choices=CHOICES, default="none", help="live curves in TensorBoard or W&B (tracking.py)")


def require(report_to):
    """Import the backend now, or stop with one line that says how to install it (every rank, before any work)."""
    try:
        if report_to == "tensorboard":
            import torch.utils.tensorboard  # noqa: F401  (needs the tensorboard package)
        elif report_to == "wandb":
            import wandb  # noqa: F401
    except ImportError as err:
        raise SystemExit(f"error: --report-to {report_to} needs the {report_to} package ({err}): pip install {report_to}")


def start(report_to, folder, name, config):
    """A tracker writing under `folder`, or None for none. `config`: the options, shown as hyper-parameters."""
    if report_to == "none":
        return None
    require(report_to)
    os.makedirs(folder, exist_ok=True)
    return (TensorBoard if report_to == "tensorboard" else WandB)(folder, name, dict(config))


class TensorBoard:
    def __init__(self, folder, name, config):
        self.logdir, self.config, self.writer = os.path.join(folder, "tensorboard"), config, None

    def _open(self, step):
        """The writer, made at the first step this process logs. purge_step hides every event an earlier process
        wrote at or after it: the steps a killed run logged past its checkpoint (which a --resume logs again),
        or a whole run that --overwrite replaced."""
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        self.writer = SummaryWriter(self.logdir, purge_step=step)
        shown = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in self.config.items()}
        for summary in hparams(shown, {}):  # the HParams tab: experiment, session start, session end
            self.writer.file_writer.add_summary(summary, step)

    def log(self, step, metrics):
        if self.writer is None:
            self._open(step)
        for key, value in metrics.items():  # float32, as TensorBoard's own data server reads no float64 scalar
            self.writer.add_scalar(key, value, step)
        self.writer.flush()  # on disk before the next step: a killed run keeps every step it logged

    def table(self, columns, rows):
        """A table (a list of rows, None where a cell is missing) in the Text tab, as markdown."""
        if self.writer is None:
            self._open(0)
        lines = [columns, ["---"] * len(columns)]
        lines += [[cell if isinstance(cell, str) else "-" if cell is None else f"{cell:.4g}" for cell in row] for row in rows]
        self.writer.add_text("evaluation", "\n".join("| " + " | ".join(line) + " |" for line in lines), 0)

    def samples(self, step, rows):
        """What the model wrote (plumbing/samples.py's rows), in the Text tab at `step`, as markdown."""
        if self.writer is None:
            self._open(step)
        keys = list(rows[0]) if rows else []
        lines = [keys, ["---"] * len(keys)] + [
            [str(row.get(k, "")).replace("|", "\\|").replace("\n", " ") for k in keys] for row in rows
        ]
        self.writer.add_text("samples", "\n".join("| " + " | ".join(line) + " |" for line in lines), step)
        self.writer.flush()

    def close(self):
        if self.writer is not None:
            self.writer.close()


class WandB:
    def __init__(self, folder, name, config):
        import wandb

        self.wandb = wandb
        kwargs = dict(project=os.environ.get("WANDB_PROJECT", "sharpening-vs-task"), name=name, dir=folder, config=config)
        mode = None  # wandb's own: WANDB_MODE, `wandb offline`, else online
        if wandb.setup().settings.mode in ("online", "run", "shared") and not wandb.login(verify=False, prompt=False):
            # without a login wandb would stop at an interactive prompt: a run left alone would wait forever
            print(
                f"warning: --report-to wandb: not logged in (wandb login): logging offline in {folder}/wandb; wandb sync uploads it"
            )
            mode = "offline"
        try:
            self.run = wandb.init(mode=mode, **kwargs)
        except wandb.errors.Error as err:  # the server did not answer within init_timeout (WANDB_INIT_TIMEOUT), ...
            reason = str(err).splitlines()[0]
            print(f"warning: --report-to wandb: {reason}: logging offline in {folder}/wandb; wandb sync uploads it")
            self.run = wandb.init(mode="offline", **kwargs)

    def log(self, step, metrics):
        self.run.log(metrics, step=step)

    def table(self, columns, rows):
        self.run.log({"evaluation": self.wandb.Table(columns=columns, data=rows)})

    def samples(self, step, rows):
        keys = list(rows[0]) if rows else []
        self.run.log({"samples": self.wandb.Table(columns=keys, data=[[row.get(k) for k in keys] for row in rows])}, step=step)

    def close(self):
        self.run.finish()
