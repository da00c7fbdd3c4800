"""The hand-written rollouts (rollout.py, the reference, and fast_rollout.py, its faster twin) against
model.generate, against teacher forcing, and against each other."""

import math

import pytest
import torch

import rollout as plain_rollout
from conftest import tiny_qwen
from model import micro_batches, position_ids_from_mask, response_logprobs
from plumbing import fast_rollout
from plumbing.fast_rollout import _decoding_step, _model_step, draw, llama_step
from plumbing.fast_rollout import rollout as fast
from rollout import left_pad, sampling_logprobs

SAMPLERS = pytest.mark.parametrize("rollout", [plain_rollout.rollout, fast], ids=["plain", "fast"])
rollout = fast  # tests of what only the fast path has

PROMPTS = [[5, 6, 7], [8, 9, 10, 11, 12, 13], [14], [20, 21, 22, 23]]


def generate_greedy(model, prompts, max_new_tokens):
    ids, mask = left_pad(prompts, 0, "cpu")
    out = model.generate(
        input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=1, pad_token_id=0
    )
    return out[:, ids.shape[1] :]


@SAMPLERS
@pytest.mark.parametrize("vocab_size", [64, 151936])
def test_greedy_equals_generate(rollout, vocab_size):
    # A real-sized vocabulary too: 151936 is Qwen2's.
    model = tiny_qwen(vocab_size=vocab_size)
    roll = rollout(model, PROMPTS, 24, [1], 0, temperature=0)
    expected = generate_greedy(model, PROMPTS, 24)
    R = roll.responses.shape[1]
    assert torch.equal(roll.responses, expected[:, :R])
    assert (expected[:, R:] == 0).all()  # whatever we trimmed was padding


def test_a_group_shares_one_prefill():
    model = tiny_qwen()
    prefill_rows = []
    model.model.register_forward_pre_hook(
        lambda module, args, kwargs: prefill_rows.append(kwargs["input_ids"].shape), with_kwargs=True
    )
    roll = rollout(model, [p for p in PROMPTS for _ in range(3)], 16, [1], 0, temperature=0)
    assert prefill_rows[0] == (len(PROMPTS), 6)  # one prefill row per distinct prompt, not per sample
    expected = generate_greedy(model, [p for p in PROMPTS for _ in range(3)], 16)
    assert torch.equal(roll.responses, expected[:, : roll.responses.shape[1]])


def test_greedy_equals_generate_when_rows_stop_early():
    # Bias EOS so that rows finish at different times and the finished rows are dropped from the batch.
    model = tiny_qwen(seed=3)
    with torch.no_grad():
        model.lm_head.weight[1] += 0.3 * torch.randn(model.config.hidden_size)
    prompts = [[i + 2, i + 3] for i in range(40)]
    roll = rollout(model, prompts, 40, [1], 0, temperature=0, sync_every=2)
    assert 0 < roll.truncated.sum() < len(prompts), "the test needs rows that stop and rows that do not"
    expected = generate_greedy(model, prompts, 40)
    assert torch.equal(roll.responses, expected[:, : roll.responses.shape[1]])


def other_architecture(name):
    """Small random stock models of the other Llama-style families the written-out decoding step covers."""
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    shape = dict(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=1,
        pad_token_id=0,
        bos_token_id=None,
    )
    if name == "llama3-rope":  # Llama 3's frequency-dependent rotary scaling, and biases on q/k/v/o
        rope = dict(
            rope_type="llama3",
            rope_theta=500000.0,
            factor=8.0,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
            original_max_position_embeddings=16,
        )
        return LlamaForCausalLM(LlamaConfig(**shape, rope_parameters=rope, attention_bias=True)).eval()
    if name == "qwen3":  # per-head RMSNorm of queries and keys, head_dim set apart from hidden / heads
        return Qwen3ForCausalLM(Qwen3Config(**shape, head_dim=16)).eval()
    return MistralForCausalLM(MistralConfig(**shape, sliding_window=None)).eval()


@pytest.mark.parametrize("name", ["llama3-rope", "qwen3", "mistral"])
def test_written_out_step_on_other_architectures(name):
    model = other_architecture(name)
    assert _decoding_step(model, own_mask=True) is llama_step
    roll = rollout(model, PROMPTS, 24, [1], 0, temperature=0)
    expected = generate_greedy(model, PROMPTS, 24)
    assert torch.equal(roll.responses, expected[:, : roll.responses.shape[1]])
    roll = rollout(model, PROMPTS * 4, 20, [1], 0, generator=torch.Generator().manual_seed(0))
    logp, _ = response_logprobs(model, roll.sequences, roll.attention_mask, roll.response_mask)
    torch.testing.assert_close(logp, roll.logprobs, atol=1e-5, rtol=0)


def test_written_out_step_outside_fp32_uses_the_models_own_norms():
    # In float64 the fused F.rms_norm is not the arithmetic of transformers' RMSNorm; the plan keeps the modules.
    model = tiny_qwen().double()
    roll = rollout(model, PROMPTS, 16, [1], 0, temperature=0)
    expected = generate_greedy(model, PROMPTS, 16)
    assert torch.equal(roll.responses, expected[:, : roll.responses.shape[1]])


def test_models_the_written_out_step_does_not_cover_take_their_own_forward():
    sliding = tiny_qwen(use_sliding_window=True, sliding_window=4, max_window_layers=1)
    assert _decoding_step(sliding, own_mask=False) is _model_step
    dynamic_rope = tiny_qwen(rope_parameters=dict(rope_type="dynamic", rope_theta=10000.0, factor=2.0))
    assert _decoding_step(dynamic_rope, own_mask=True) is _model_step
    wrapped = tiny_qwen()
    wrapped.model.layers[1].self_attn.q_proj = torch.nn.Sequential(wrapped.model.layers[1].self_attn.q_proj)  # e.g. an adapter
    assert _decoding_step(wrapped, own_mask=True) is _model_step
    assert _decoding_step(tiny_qwen(), own_mask=True) is llama_step


def test_draw_samples_each_token_with_its_probability():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0])
    logp = probs.log().expand(200_000, -1)
    tokens = draw(logp.exp(), None, torch.Generator().manual_seed(0))
    freq = torch.bincount(tokens, minlength=5) / len(tokens)
    torch.testing.assert_close(freq, probs, atol=0.004, rtol=0)  # 4 standard errors at most
    assert freq[4] == 0  # a banned token is never drawn
    probs = torch.rand(32, 1000, generator=torch.Generator().manual_seed(1)) ** 4
    probs[:, :100] = 0
    probs /= probs.sum(-1, keepdim=True)
    expected = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(5)).squeeze(-1)
    assert torch.equal(draw(probs, None, torch.Generator().manual_seed(5)), expected)  # torch's own draw, on a CPU
    # Running rows in a compacted order (9, 1, 30, 4) each get what multinomial gives them over the rows in order.
    rows = torch.tensor([9, 1, 30, 4])
    in_order = torch.multinomial(probs[rows.sort().values], 1, generator=torch.Generator().manual_seed(5)).squeeze(-1)
    rank = rows.argsort().argsort()
    assert torch.equal(draw(probs[rows], rank, torch.Generator().manual_seed(5)), in_order[rank])


@SAMPLERS
def test_logprobs_equal_teacher_forcing(rollout, model):
    gen = torch.Generator().manual_seed(0)
    roll = rollout(model, PROMPTS * 4, 20, [1], 0, generator=gen)
    logp, entropy = response_logprobs(model, roll.sequences, roll.attention_mask, roll.response_mask, entropy=True)
    torch.testing.assert_close(logp, roll.logprobs, atol=1e-5, rtol=0)
    assert (entropy[roll.response_mask] > 0).all()
    torch.testing.assert_close(entropy, roll.entropy, atol=1e-5, rtol=0)  # the rollout's entropies too


@SAMPLERS
def test_self_certainty_is_the_mean_negative_logprob_under_teacher_forcing(rollout, model):
    # logsumexp(z) - mean_j z_j = -(1/V) sum_j log softmax(z)_j: the same number from the full log-prob table,
    # even when sampling at another temperature (self-certainty is the model's own, at temperature 1).
    roll = rollout(model, PROMPTS * 2, 12, [1], 0, temperature=0.7, generator=torch.Generator().manual_seed(1))
    mask = roll.attention_mask
    logits = model(input_ids=roll.sequences, attention_mask=mask, position_ids=position_ids_from_mask(mask)).logits.float()
    width = roll.response_mask.shape[1]
    expected = -logits[:, -width - 1 : -1].log_softmax(-1).mean(-1) * roll.response_mask
    torch.testing.assert_close(roll.certainty, expected, atol=1e-4, rtol=0)
    assert (roll.certainty[roll.response_mask] >= math.log(model.config.vocab_size) - 1e-5).all()  # log V at uniform


def test_micro_batches_cover_every_row_once_and_score_like_the_whole_batch(model):
    gen = torch.Generator().manual_seed(2)
    roll = rollout(model, [[5], [6, 7, 8, 9, 10, 11, 12, 13]] * 6, 20, [1], 0, generator=gen)
    full, _ = response_logprobs(model, roll.sequences, roll.attention_mask, roll.response_mask)
    out, seen = torch.zeros_like(full), []
    for rows, seq, mask, response_mask in micro_batches(roll, 5):
        assert seq.shape[1] <= roll.sequences.shape[1] and mask[:, 0].any() and response_mask[:, -1].any()  # cut to fit
        out[rows, : response_mask.shape[1]] = response_logprobs(model, seq, mask, response_mask)[0]
        seen += rows.tolist()
    assert sorted(seen) == list(range(len(roll.sequences)))
    torch.testing.assert_close(out, full, atol=1e-5, rtol=0)


@SAMPLERS
def test_rollout_returns_ordinary_tensors(rollout, model):
    # The loop runs in inference mode; what it returns must be usable by training (autograd may save it).
    roll = rollout(model, PROMPTS, 8, [1], 0, generator=torch.Generator().manual_seed(0))
    fields = [roll.sequences, roll.attention_mask, roll.response_mask, roll.logprobs, roll.entropy, roll.truncated]
    assert not any(x.is_inference() for x in fields)
    logp, _ = response_logprobs(model, roll.sequences, roll.attention_mask, roll.response_mask)
    (logp * roll.logprobs).sum().backward()


@SAMPLERS
def test_chunked_logprobs_equal_unchunked(rollout, model):
    gen = torch.Generator().manual_seed(1)
    roll = rollout(model, PROMPTS, 12, [1], 0, generator=gen)
    args = (model, roll.sequences, roll.attention_mask, roll.response_mask)
    full, _ = response_logprobs(*args)
    chunked, no_entropy = response_logprobs(*args, chunk_elements=3 * model.config.vocab_size)
    assert no_entropy is None  # entropies only when asked
    torch.testing.assert_close(full, chunked)


@SAMPLERS
def test_eos_is_inside_the_response_mask(rollout, model):
    gen = torch.Generator().manual_seed(0)
    roll = rollout(model, PROMPTS * 8, 30, [1], 0, generator=gen)
    stopped = ~roll.truncated
    assert stopped.any()
    last = roll.lengths[stopped] - 1
    assert (roll.responses[stopped, last] == 1).all()  # the last masked token is EOS
    first_eos = (roll.responses[stopped] == 1).int().argmax(-1)
    assert torch.equal(first_eos, last)  # ...and the first one: the response ends at its first EOS
    assert not (roll.responses[roll.truncated] == 1).logical_and(roll.response_mask[roll.truncated]).any()
    assert (roll.lengths[roll.truncated] == 30).all()  # a row that never sampled EOS ran to the budget
    # Nothing after EOS is in the mask, and the mask is a prefix.
    assert torch.equal(roll.response_mask.long().cummin(-1).values, roll.response_mask.long())


@SAMPLERS
def test_same_seed_same_samples(rollout, model):
    a = rollout(model, PROMPTS, 16, [1], 0, generator=torch.Generator().manual_seed(7))
    b = rollout(model, PROMPTS, 16, [1], 0, generator=torch.Generator().manual_seed(7))
    c = rollout(model, PROMPTS, 16, [1], 0, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a.sequences, b.sequences)
    assert not torch.equal(a.sequences, c.sequences)


@SAMPLERS
def test_ignore_eos_gives_fixed_length(rollout, model):
    roll = rollout(model, PROMPTS * 4, 10, [1], 0, ignore_eos=True, generator=torch.Generator().manual_seed(0))
    assert (roll.lengths == 10).all()
    assert roll.response_mask.all()


@SAMPLERS
@pytest.mark.parametrize("top_k,top_p", [(5, 1.0), (0, 0.3), (4, 0.5)])
def test_top_k_top_p_only_draw_allowed_tokens(rollout, model, top_k, top_p):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 64, generator=gen)
    logp = sampling_logprobs(logits, 1.0, top_k, top_p)
    allowed = torch.isfinite(logp)
    probs = logits.softmax(-1)
    if top_k:
        assert (allowed.sum(-1) <= top_k).all()
    # every allowed token ranks at least as high as every banned one
    assert (probs.masked_fill(~allowed, 2).min(-1).values >= probs.masked_fill(allowed, -1).max(-1).values).all()
    # and a whole rollout draws only allowed tokens, each with its log-prob under the truncated distribution,
    # written out here from the teacher-forced logits: the top k, then the fewest of them that reach p, renormalised
    roll = rollout(model, PROMPTS * 4, 8, [1], 0, top_k=top_k, top_p=top_p, generator=gen)
    mask = roll.attention_mask
    width = roll.response_mask.shape[1]
    with torch.no_grad():
        out = model(input_ids=roll.sequences, attention_mask=mask, position_ids=position_ids_from_mask(mask))
    probs = out.logits[:, -width - 1 : -1].float().softmax(-1)
    for i, t in roll.response_mask.nonzero().tolist():
        ranked = probs[i, t].sort(descending=True)
        kept = ranked.values[: top_k or None]
        kept = kept / kept.sum()  # top-p reads the distribution that top-k left
        kept = kept[: int((kept.cumsum(0) - kept < top_p).sum())]
        token = roll.responses[i, t].item()
        place = ranked.indices.tolist().index(token)
        assert place < len(kept), f"row {i} drew token {token}, ranked {place + 1}: outside top-k {top_k}/top-p {top_p}"
        expected = math.log(kept[place] / kept.sum())
        assert roll.logprobs[i, t].item() == pytest.approx(expected, abs=1e-4), (i, t)


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isfinite(sampling_logprobs(logits, top_p=0.8)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(sampling_logprobs(logits, top_p=0.81)).tolist() == [[True, True, True, False]]
    # exactly p: the tokens above already hold it, so the next one is out (float32 holds these sums exactly)
    halves = torch.log(torch.tensor([[0.5, 0.25, 0.125, 0.125]]))
    assert torch.isfinite(sampling_logprobs(halves, top_p=0.75)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(sampling_logprobs(halves, top_p=0.5)).tolist() == [[True, False, False, False]]


@SAMPLERS
def test_a_top_p_that_rounds_to_zero_in_float32_samples_the_top_token(rollout, model):
    """1e-46 is below float32's smallest subnormal (1.4e-45): compared with the probabilities it is 0. It must still
    mean the smallest set reaching p, the top token alone, not an empty set (NaN: token 0 drawn, or a crash)."""
    logits = torch.log(torch.tensor([[0.2, 0.5, 0.3]]))
    assert sampling_logprobs(logits, top_p=1e-46).tolist() == [[-math.inf, 0.0, -math.inf]]
    roll = rollout(model, PROMPTS, 8, [1], 0, top_p=1e-46, generator=torch.Generator().manual_seed(0))
    greedy = rollout(model, PROMPTS, 8, [1], 0, temperature=0)
    assert torch.equal(roll.responses, greedy.responses) and (roll.logprobs == 0).all()


def test_cat_pads_prompts_left_and_responses_right(model):
    gen = torch.Generator().manual_seed(0)
    a = rollout(model, [[5, 6]], 6, [1], 0, generator=gen)
    b = rollout(model, [[5, 6, 7, 8, 9]], 9, [1], 0, ignore_eos=True, generator=gen)
    both = plain_rollout.cat_rollouts([a, b], 0)
    logp, _ = response_logprobs(model, both.sequences, both.attention_mask, both.response_mask)
    torch.testing.assert_close(logp, both.logprobs, atol=1e-5, rtol=0)


@SAMPLERS
def test_sliding_window_model_greedy_equals_generate(rollout):
    # A hybrid model (one full-attention layer, one sliding-window layer) keeps transformers' own masks.
    model = tiny_qwen(use_sliding_window=True, sliding_window=4, max_window_layers=1)
    assert model.config.layer_types == ["full_attention", "sliding_attention"]
    roll = rollout(model, PROMPTS, 16, [1], 0, temperature=0)
    expected = generate_greedy(model, PROMPTS, 16)
    assert torch.equal(roll.responses, expected[:, : roll.responses.shape[1]])


def test_finished_rows_leave_the_batch(monkeypatch):
    # The speed of long-tailed batches rests on this: once a row stops, later steps no longer compute it.
    rollout_module = fast_rollout
    model = tiny_qwen(seed=3)
    with torch.no_grad():
        model.lm_head.weight[1] += 0.3 * torch.randn(model.config.hidden_size)
    rows_per_step = []

    def counting_decode(model, token, *args):
        rows_per_step.append(len(token))
        return decode(model, token, *args)

    decode = rollout_module.llama_step
    monkeypatch.setattr(rollout_module, "llama_step", counting_decode)
    prompts = [[i + 2, i + 3] for i in range(24)]
    roll = rollout(model, prompts, 24, [1], 0, temperature=0)
    running = (roll.lengths[:, None] > torch.arange(1, len(rows_per_step) + 1)).sum(0)  # rows still going after step t
    assert rows_per_step == running.tolist()


def stops_early():
    model = tiny_qwen(seed=3)
    with torch.no_grad():
        model.lm_head.weight[1] += 0.3 * torch.randn(model.config.hidden_size)  # rows stop at different times
    return model


@pytest.mark.parametrize(
    "case",
    ["sampled", "greedy", "top-k/p", "fixed-length", "groups", "rows-stop-early", "qwen3", "llama3-rope", "sliding-window"],
)
def test_fast_rollout_equals_the_plain_one(case):
    """fp32: the same tokens (greedy and seeded samples), log-probs and entropies to 1e-5."""
    model = {
        "rows-stop-early": stops_early,
        "qwen3": lambda: other_architecture("qwen3"),
        "llama3-rope": lambda: other_architecture("llama3-rope"),
        "sliding-window": lambda: tiny_qwen(use_sliding_window=True, sliding_window=4, max_window_layers=1),
    }.get(case, tiny_qwen)()
    prompts = [[i + 2, i + 3] for i in range(24)] if case == "rows-stop-early" else PROMPTS * 3
    prompts = [p for p in PROMPTS for _ in range(4)] if case == "groups" else prompts
    kw = {
        "greedy": dict(temperature=0),
        "top-k/p": dict(top_k=6, top_p=0.8, temperature=0.7),
        "fixed-length": dict(ignore_eos=True),
    }.get(case, {})
    a = plain_rollout.rollout(model, prompts, 24, [1], 0, generator=torch.Generator().manual_seed(3), **kw)
    b = fast(model, prompts, 24, [1], 0, generator=torch.Generator().manual_seed(3), **kw)
    assert torch.equal(a.sequences, b.sequences) and torch.equal(a.response_mask, b.response_mask)
    assert torch.equal(a.attention_mask, b.attention_mask) and torch.equal(a.truncated, b.truncated)
    torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.entropy, b.entropy, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.certainty, b.certainty, atol=1e-5, rtol=0)
    if case == "rows-stop-early":
        assert 0 < a.truncated.sum() < len(prompts)


def test_every_eos_of_the_model_and_its_tokenizer_ends_a_response(toy_path):
    """A chat model often has several EOS (generation_config's list, e.g. <|im_end|> and <|endoftext|>) beside its
    tokenizer's: each one ends a response (here the toy's '#' made a second EOS), through rollout.sample."""
    from model import eos_ids
    from plumbing.loading import load_model, load_tokenizer

    tokenizer, model = load_tokenizer(toy_path), load_model(toy_path, "cpu")
    hash_id = tokenizer.convert_tokens_to_ids("#")
    for configured, expected in (([1, hash_id], [1, hash_id]), (hash_id, [1, hash_id]), (None, [1]), ([], [1])):
        model.generation_config.eos_token_id = configured
        assert sorted(eos_ids(tokenizer, model)) == expected, configured
    model.generation_config.eos_token_id = [hash_id]  # the tokenizer's EOS (1) is added
    prompts = [tokenizer.encode(f"{a}+{b}+3+4:") for a in range(1, 7) for b in range(2, 4)]
    for sampler in (plain_rollout.rollout, fast):
        roll, _ = plain_rollout.sample(
            model, tokenizer, prompts, 4, 40, generator=torch.Generator().manual_seed(0), sampler=sampler
        )
        ends = torch.isin(roll.responses, torch.tensor([1, hash_id])) & roll.response_mask
        stopped = ~roll.truncated
        assert torch.equal(ends.any(-1), stopped) and ends.sum(-1).max() == 1  # each stopped at its first EOS
        last = roll.responses[stopped, roll.lengths[stopped] - 1]
        assert (last == hash_id).sum() > 0.9 * stopped.sum(), "the toy writes '#' before its answer: most stop there"
