"""transformers' tokenizers as references: `from_transformers`, and chat templates and conversations for
comparing llmtui's chat ids with `apply_chat_template`.

Used by tests/engine/test_tokenizer.py (byte-level BPE) and test_sentencepiece.py. Each template puts
a message after ordinary template text, where encoding the pieces apart would cut tokens differently
(and SentencePiece would put a ▁ in front of each piece); Llama 3's and Gemma's trim the message.
`{bos}` and `{eos}` are filled with the tokenizer's own special-token texts.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

def from_transformers(location: Path, **kwargs) -> dict[bool, Any]:
    """{allow_special: transformers tokenizer}; split_special_tokens=True reads special text as plain text."""
    from transformers import AutoTokenizer

    return {
        allow: AutoTokenizer.from_pretrained(str(location), split_special_tokens=not allow, **kwargs)
        for allow in (False, True)
    }


def with_bos_post_processor(tokenizer: Any, bos: str) -> Any:
    """A copy of a byte-level `tokenizers.Tokenizer` with Llama 3's post-processor: ByteLevel, then a
    template putting `bos` first (the only place Llama 3's files say that BOS is added)."""
    from tokenizers import Tokenizer, processors

    copy = Tokenizer.from_str(tokenizer.to_str())
    bos_id = copy.token_to_id(bos)
    copy.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]),
        ]
    )
    return copy


TEMPLATES = {
    "role_then_space": (
        "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{{ eos_token }}{% endfor %}"
        "{% if add_generation_prompt %}[assistant]{% endif %}"
    ),
    "llama2_inst": (
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
        "{% else %} {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
    ),
    "trims_like_llama3": (
        "{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>\n\n{{ m['content'] | trim }}{{ eos_token }}"
        "{% endfor %}{% if add_generation_prompt %}<assistant>\n\n{% endif %}"
    ),
}

CONVERSATIONS = [
    [{"role": "user", "content": "The capital of France is"}],
    [{"role": "user", "content": "  two spaces in front, one behind "}],
    [
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello, how are you today?"},
        {"role": "user", "content": "I love 🍕 and 東京\nthen a new line"},
    ],
]


def transformers_chat_ids(reference, messages: list[dict[str, str]], template: str) -> list[int]:
    """transformers' ids for the conversation with a generation prompt (a BatchEncoding in transformers 5)."""
    out = reference.apply_chat_template(messages, chat_template=template, tokenize=True, add_generation_prompt=True)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def assert_chat_ids_equal(ours, reference, eos_text: str) -> None:
    """llmtui's chat ids equal transformers' for every template and conversation; a typed EOS stays text."""
    for name, template in TEMPLATES.items():
        ours = copy.copy(ours)  # the caller's tokenizer keeps its template
        ours.chat_template = template
        ours.__dict__.pop("_compiled_template", None)  # compiled once per tokenizer
        for messages in CONVERSATIONS:
            assert ours.encode_chat(messages) == transformers_chat_ids(reference, messages, template), (name, messages)
        typed = [{"role": "user", "content": f"stop{eos_text}here"}]
        plain = [{"role": "user", "content": "stop here"}]
        assert ours.encode_chat(typed).count(ours.eos_id) == ours.encode_chat(plain).count(ours.eos_id), name
