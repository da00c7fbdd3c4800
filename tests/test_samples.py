"""What the model writes, seen while it trains (plumbing/samples.py): at each evaluation a run appends the held-out
responses to its first problems and the group of the step just taken, with the reward each sample was trained on,
to samples.jsonl and to TensorBoard's Text tab; `python -m plumbing.samples RUN` prints the latest ones."""

import json
import os

import pytest

from conftest import run_loop, trainer_setup
from plumbing import samples
from plumbing.run_folder import RunFolder

SMALL = ["--device", "cpu", "--steps", "2", "--prompts-per-step", "2", "--group-size", "4", "--max-new-tokens", "16"]
SMALL += ["--eval-problems", "6", "--eval-every", "1", "--micro-batch", "8"]


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_an_evaluation_writes_its_answers_and_the_steps_group(tmp_path, keep_signals):
    out = str(tmp_path / "run")
    setup = trainer_setup("train_task.py", *SMALL, "--out", out)
    run = setup["run"]
    run.log(0, run.evaluate(0))  # the base model: its answers, no group yet
    step = run_loop("train_task.py", setup, step=0)
    rows = read(os.path.join(out, "samples.jsonl"))
    assert [(row["step"], row["split"]) for row in rows] == [(0, "eval")] * 4 + [(1, "eval")] * 4 + [(1, "train")] * 4
    eval_rows, group = rows[4:8], rows[8:]
    assert [row["question"] for row in eval_rows] == [x["question"] for x in run.eval_rows[:4]]
    assert [row["gold"] for row in eval_rows] == [x["answer"] for x in run.eval_rows[:4]]
    # the group: the step's first prompt, its G responses as the grader read them, each with its r and its R
    problem = step["problems"][0]
    assert all(row["question"] == problem["question"] and row["gold"] == problem["answer"] for row in group)
    assert [row["response"] for row in group] == step["texts"][:4]
    assert [row["answer"] for row in group] == step["answers"][:4]
    assert [row["correct"] for row in group] == step["r"][:4].tolist()
    assert [row["reward"] for row in group] == step["R"][:4].tolist()
    assert [row["length"] for row in group] == step["roll"].lengths[:4].tolist()
    assert all("reward" not in row for row in eval_rows)


def test_a_resume_drops_the_samples_of_the_steps_it_runs_again(tmp_path):
    folder = RunFolder(str(tmp_path))
    with open(folder.log_path, "w") as f:
        f.writelines(json.dumps({"step": s}) + "\n" for s in (0, 1, 2, 3, 4))
    with open(folder.samples_path, "w") as f:
        f.writelines(json.dumps({"step": s, "split": "eval"}) + "\n" for s in (0, 2, 4))
    folder.keep_log_until(2)
    assert [row["step"] for row in read(folder.samples_path)] == [0, 2]


def write(tmp_path, rows):
    with open(tmp_path / "samples.jsonl", "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)


ROW = dict(
    split="eval", question="What is 7 times 8?", gold="56", response="7 times 8 is 56.", answer=None, correct=0.0, length=9
)


def test_the_command_prints_the_latest_step(tmp_path, capsys):
    write(tmp_path, [dict(ROW, step=0), dict(ROW, step=10, response="The answer is \\boxed{56}.", answer="56", correct=1.0)])
    samples.main([str(tmp_path)])
    shown = capsys.readouterr().out
    assert "[step 10, eval] What is 7 times 8?  (gold 56)" in shown and "-> answer 56: right, 9 tokens" in shown
    assert "step 0" not in shown
    samples.main([str(tmp_path), "--step", "0"])
    assert "-> answer None: wrong" in capsys.readouterr().out
    samples.main([str(tmp_path), "--all"])
    assert capsys.readouterr().out.count("[step") == 2


@pytest.mark.parametrize(
    "argv, says", [(["--step", "5"], "has no samples at step 5: it has steps 0"), ([], "holds no samples yet")]
)
def test_the_command_refuses_with_one_line(tmp_path, argv, says):
    write(tmp_path, [dict(ROW, step=0)] if argv else [])
    with pytest.raises(SystemExit) as err:
        samples.main([str(tmp_path), *argv])
    assert says in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(SystemExit, match="does not exist: a run writes it at its first evaluation"):
        samples.main([str(tmp_path / "absent")])


def test_tensorboard_shows_them_as_text(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install tensorboard)")
    from tensorboard.util import tensor_util
    from test_tracking import tensorboard_reader

    from plumbing import tracking

    tracker = tracking.start("tensorboard", str(tmp_path), "run", {})
    tracker.samples(10, [dict(ROW, step=10, response="a | b")])
    tracker.close()
    (event,) = tensorboard_reader(str(tmp_path / "tensorboard")).Tensors("samples/text_summary")
    text = tensor_util.make_ndarray(event.tensor_proto).item().decode()
    assert event.step == 10 and "| What is 7 times 8? | 56 | a \\| b |" in text
