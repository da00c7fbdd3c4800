import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def tiny_qwen(vocab_size=64, seed=0, **overrides):
    """A randomly initialised stock Qwen2, small enough for CPU tests (eos = 1, pad = 0)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  eos_token_id=1, pad_token_id=0, bos_token_id=None)
    config.update(overrides)
    return Qwen2ForCausalLM(Qwen2Config(**config)).eval()


@pytest.fixture
def model():
    return tiny_qwen()


@pytest.fixture(scope="session")
def toy_path():
    return os.path.join(ROOT, "toy_models", "toy")
