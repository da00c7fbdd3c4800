"""memory.py's parts against the bytes real tensors take on a small model, and its shapes against the
published model sizes."""

import pytest
import torch
from transformers import StaticCache

from conftest import tiny_qwen
from plumbing import memory


def test_parameter_count_equals_a_built_model():
    model = tiny_qwen()
    total, layer = memory.parameters(model.config)
    assert total == sum(p.numel() for p in model.parameters())
    assert layer == sum(p.numel() for p in model.model.layers[0].parameters())


@pytest.mark.parametrize(
    "name,billions",
    [
        ("Qwen/Qwen2.5-0.5B-Instruct", 0.49),
        ("Qwen/Qwen2.5-3B-Instruct", 3.09),
        ("meta-llama/Llama-3.2-3B-Instruct", 3.21),
        ("Qwen/Qwen3-4B-Instruct-2507", 4.02),
    ],
)
def test_shapes_give_the_published_sizes(name, billions):
    total, _ = memory.parameters(memory.model_config(name))
    assert total / 1e9 == pytest.approx(billions, abs=0.005)


def test_policy_and_optimizer_bytes_equal_the_tensors_after_a_step():
    model = tiny_qwen()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(input_ids=torch.tensor([[5, 6, 7]])).logits.sum().backward()
    opt.step()
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters())
    moments = sum(t.numel() * t.element_size() for s in opt.state.values() for k, t in s.items() if k != "step")
    one, _ = memory.per_gpu(model.config, 1, fsdp=False)
    assert one["policy"] == params + grads and one["optimizer"] == moments
    four, _ = memory.per_gpu(model.config, 4, fsdp=True)
    assert four["policy"] == one["policy"] / 4 and four["optimizer"] == one["optimizer"] / 4


def test_kv_cache_bytes_equal_a_filled_static_cache():
    model = tiny_qwen(num_key_value_heads=2)
    rows, length = 3, 20
    cache = StaticCache(config=model.config, max_cache_len=length)
    model(input_ids=torch.ones((rows, 4), dtype=torch.long), cache=cache)
    held = sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
    assert held == memory.kv_cache_bytes(model.config, rows, length, dtype_bytes=4)  # fp32 here, bf16 on a GPU
