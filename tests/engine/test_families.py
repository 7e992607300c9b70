"""Every family against transformers (the reference), through a Hugging Face folder.

For each family a tiny model with seeded random weights is made by transformers
(`from_config`, eager attention, a large initializer_range so the next-token distribution
is peaked, norms randomised too), saved as safetensors and loaded by llmtui. Prompts are
longer than every sliding window. Checked: next-token probabilities within 1e-4,
attention weights within 1e-5, and 20 greedy tokens decoded with the KV cache identical
to transformers' `generate`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from llmtui.engine.generation import GenerationSession
from llmtui.engine.lm import LanguageModel, load_tokenizer
from llmtui.engine.loading.load import load_weights
from llmtui.engine.model.transformer import Transformer
from llmtui.engine.settings import SamplingSettings

transformers = pytest.importorskip("transformers")

VOCAB = 96
SHAPE = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64, initializer_range=1.0,
             bos_token_id=None, eos_token_id=None, pad_token_id=None)  # fmt: skip
WINDOW = 6
PROMPT = 14  # longer than every window below; + 20 generated tokens stays inside max_position_embeddings

FAMILIES: dict[str, tuple[str, dict]] = {
    "llama": ("LlamaConfig", {}),
    "llama3 rope": ("LlamaConfig", dict(rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                                           high_freq_factor=4.0, original_max_position_embeddings=16))),
    "linear rope": ("LlamaConfig", dict(rope_scaling=dict(rope_type="linear", factor=4.0))),
    "dynamic rope": ("LlamaConfig", dict(rope_scaling=dict(rope_type="dynamic", factor=2.0))),
    "yarn rope": ("LlamaConfig", dict(rope_scaling=dict(rope_type="yarn", factor=4.0,
                                                         original_max_position_embeddings=16))),
    "llama biases": ("LlamaConfig", dict(attention_bias=True, mlp_bias=True)),
    "mistral": ("MistralConfig", dict(sliding_window=WINDOW)),
    "qwen2": ("Qwen2Config", dict(use_sliding_window=True, sliding_window=WINDOW, max_window_layers=1)),
    "qwen3": ("Qwen3Config", dict(head_dim=16)),
    "gemma2": ("Gemma2Config", dict(head_dim=8, sliding_window=WINDOW, query_pre_attn_scalar=12,
                                    attn_logit_softcapping=3.0, final_logit_softcapping=10.0)),
    "gemma3": ("Gemma3TextConfig", dict(head_dim=8, num_hidden_layers=4, sliding_window=WINDOW,
                                        layer_types=["sliding_attention", "sliding_attention", "full_attention",
                                                     "sliding_attention"],
                                        rope_parameters={"full_attention": dict(rope_type="linear", factor=4.0,
                                                                                rope_theta=1e6),
                                                         "sliding_attention": dict(rope_type="default",
                                                                                   rope_theta=1e4)})),
    "phi3 longrope": ("Phi3Config", dict(original_max_position_embeddings=20, sliding_window=WINDOW,
                                         partial_rotary_factor=0.5,
                                         rope_scaling=dict(rope_type="longrope", short_factor=[1.0, 1.5],
                                                           long_factor=[2.0, 7.0]))),
    "olmo2": ("Olmo2Config", {}),
    "gpt-neox": ("GPTNeoXConfig", dict(num_key_value_heads=None, rotary_pct=0.5)),
    "gpt-neox sequential": ("GPTNeoXConfig", dict(num_key_value_heads=None, rotary_pct=0.5,
                                                  use_parallel_residual=False)),
}  # fmt: skip


def make_reference(folder: Path, config_class: str, overrides: dict, seed: int):
    """A transformers model with random weights (norms included), saved in folder; returned in eval mode."""
    fields = {**SHAPE, **overrides}  # an override of None drops the key (GPT-NeoX has no num_key_value_heads)
    kept = {k: v for k, v in fields.items() if k not in overrides or v is not None}
    config = getattr(transformers, config_class)(**kept)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:  # ones or zeros would hide a norm loaded in the wrong place
                p.add_(torch.randn(p.shape, generator=generator) * 0.3)
    model.save_pretrained(folder)
    return model


@pytest.fixture(scope="module", params=list(FAMILIES))
def pair(request, tmp_path_factory):
    name = request.param
    config_class, overrides = FAMILIES[name]
    folder = tmp_path_factory.mktemp(name.replace(" ", "-"))
    theirs = make_reference(folder, config_class, overrides, seed=len(name))
    weights = load_weights(str(folder))
    ours = Transformer(weights.config)
    ours.load_state_dict(weights.state_dict, strict=True)
    return name, ours.eval(), theirs


def prompt(n: int = PROMPT) -> torch.Tensor:
    return torch.randint(0, VOCAB, (1, n), generator=torch.Generator().manual_seed(7))


def test_probabilities_and_attention_match(pair):
    name, ours, theirs = pair
    ids = prompt()
    with torch.no_grad():
        mine = ours(ids, capture={"attn_weights"})
        ref = theirs(ids, output_attentions=True)
        plain = ours(ids)
    p_ours, p_ref = mine.logits.softmax(-1), ref.logits.softmax(-1)
    assert p_ref.max(-1).values.mean() > 0.4, "the reference distribution should be peaked"
    torch.testing.assert_close(p_ours, p_ref, atol=1e-4, rtol=0)
    torch.testing.assert_close(plain.logits.softmax(-1), p_ref, atol=1e-4, rtol=0)  # the fused path too
    assert len(mine.attentions) == len(ref.attentions)
    for a, b in zip(mine.attentions, ref.attentions, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_greedy_decoding_with_the_cache_matches(pair, tiny_hf_llama_dir):
    """20 greedy tokens through GenerationSession (the app's decoder, KV cache and all) equal transformers'."""
    name, ours, theirs = pair
    ids = prompt()
    with torch.no_grad():
        expected = theirs.generate(ids, max_new_tokens=20, min_new_tokens=20, do_sample=False, pad_token_id=0)
    # These folders hold no tokenizer: the session shows token texts from the conftest's (only ids < VOCAB occur).
    tokenizer = load_tokenizer(tiny_hf_llama_dir, vocab_size=1 << 20)
    lm = LanguageModel(name=name, source=name, model=ours, tokenizer=tokenizer, device=torch.device("cpu"))
    session = GenerationSession(lm, ids[0].tolist(), SamplingSettings(temperature=0.0, max_new_tokens=20), stop_ids=[])
    while session.step() is not None:
        pass
    assert session.ids == expected[0].tolist()


def test_gemma3_multimodal_checkpoint_reads_as_its_text_model(tmp_path):
    """gemma-3-4b and up ship as Gemma3ForConditionalGeneration: llmtui reads the language model, drops vision."""
    text = {**SHAPE, "head_dim": 8, "sliding_window": WINDOW, "num_hidden_layers": 2}
    vision = dict(hidden_size=16, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2, image_size=16,
                  patch_size=8)  # fmt: skip
    config = transformers.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4,
                                       image_token_index=95, boi_token_index=93, eoi_token_index=94)  # fmt: skip
    torch.manual_seed(0)
    theirs = transformers.Gemma3ForConditionalGeneration(config).eval()
    theirs.save_pretrained(tmp_path)
    weights = load_weights(str(tmp_path))
    ours = Transformer(weights.config).eval()
    ours.load_state_dict(weights.state_dict, strict=True)
    with torch.no_grad():
        expected = theirs(input_ids=prompt()).logits.softmax(-1)
        torch.testing.assert_close(ours(prompt()).logits.softmax(-1), expected, atol=1e-4, rtol=0)
    assert weights.config.family == "gemma3" and weights.config.n_layer == 2
