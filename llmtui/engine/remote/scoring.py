"""The probabilities a served model gives a text the user chose: a fork's new prefix, B's view of A's text.

A server draws tokens, but forks and same-text comparisons need the probability of each token of
a *given* text. Two dialects of the completions API give it, found once per server:

- `echo` with `logprobs` (vLLM, llama-cpp-python's server): the prompt comes back as tokens, each
  with its log-probability, its top candidates and its character offset (the legacy format);
- `prompt_logprobs` (vLLM): per prompt position a dict {token id: {logprob, rank, decoded_token}};
  which entry is the prompt's own token needs the ids, so the server's /tokenize cuts the text first.

A server with neither (SGLang, llama.cpp's `llama-server`) gets one line saying so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmtui.engine.errors import RemoteError
from llmtui.engine.generation import Step
from llmtui.engine.remote import transport
from llmtui.engine.remote.client import RemoteModel
from llmtui.engine.remote.session import Listed, step_record
from llmtui.engine.settings import SamplingSettings
from llmtui.engine.text import escape_controls

DIALECTS = ("echo", "prompt_logprobs")


class CannotScore(RemoteError):
    """The server answered, but gives no probabilities of this text (no dialect, misaligned, a token across the
    boundary): a fork may still go on from the text without them. A fault (down, malformed) is a plain RemoteError."""


@dataclass(frozen=True)
class Scored:
    """One token of the full text (context + text) with the distribution it was read from."""

    offset: int  # where the token starts in the full text
    token: Listed
    top: list[Listed]


def score_text(model: RemoteModel, context: str, text: str, settings: SamplingSettings, top_n: int, *,
               first_index: int = 0) -> list[Step]:
    """Steps (forced, numbered from `first_index`) for the tokens of `text` read after `context`, with the top-`top_n`.

    The server cuts context + text into tokens as it likes; where one token spans the boundary
    (" Par" + "is" read as " Paris") the text has no probability of its own: one line says so."""
    if not context:
        raise CannotScore("scoring a text needs some text before it: the first token of a text has no probability")
    if not text:
        return []
    full = context + text
    tokens = _scored_tokens(model, full, top_n)
    first = next((n for n, t in enumerate(tokens) if t.offset + len(t.token.text) > len(context)), len(tokens))
    if first == len(tokens):
        raise RemoteError(f"{model.endpoint.url} echoed no token of the text")
    if tokens[first].offset < len(context):
        raise CannotScore(f"{model.endpoint.url} reads the end of the text so far and the start of the new text as one "
                          f"token ({escape_controls(tokens[first].token.text)!r:.40}): the new text has no "
                          "probability of its own there")
    if any(math.isnan(t.token.logprob) for t in tokens[first:]):
        raise CannotScore(f"{model.endpoint.url} left a token of the text without a probability")
    return [step_record(first_index + n, first + n, t.token, t.top, settings, forced=True) for n, t in enumerate(tokens[first:])]


def _scored_tokens(model: RemoteModel, full: str, top_n: int) -> list[Scored]:
    """The prompt's tokens with their probabilities, in whichever dialect the server speaks (found once)."""
    dialects = [model.scoring] if model.scoring else list(DIALECTS)
    for dialect in dialects:
        tokens = _echo(model, full, top_n) if dialect == "echo" else _prompt_logprobs(model, full, top_n)
        if tokens is not None:
            model.scoring = dialect
            return tokens
    raise CannotScore(f"{model.endpoint.url} can't give the probabilities of a given text: it answers neither echo "
                      "with logprobs (vLLM, llama-cpp-python) nor prompt_logprobs (vLLM)")


def _request(model: RemoteModel, full: str, extra: dict[str, object]) -> dict:
    # max_tokens 1, not 0: llama-cpp-python reads 0 as "until the context is full"
    body: dict[str, object] = {"prompt": full, "max_tokens": 1, "temperature": 0, "stream": False, **extra}
    if model.model:
        body["model"] = model.model
    answer = transport.post_json(model.endpoint, "/v1/completions", body)
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise RemoteError(f"{model.endpoint.url}/v1/completions answered without choices")
    return choices[0]


def _echo(model: RemoteModel, full: str, top_n: int) -> list[Scored] | None:
    """Echo dialect; None when the server ignored echo (the logprobs cover only the generated token)."""
    lp = _request(model, full, {"echo": True, "logprobs": top_n}).get("logprobs")
    if not isinstance(lp, dict):
        return None
    tokens, lps, tops, offsets = (lp.get(k) for k in ("tokens", "token_logprobs", "top_logprobs", "text_offset"))
    if not all(isinstance(x, list) for x in (tokens, lps, tops, offsets)) or not offsets or offsets[0] != 0:
        return None  # no echo: the first listed token is the generated one, past the prompt
    out, after = [], None  # the prompt's tokens; the top candidates listed for the generated token
    for text, logprob, top, offset in zip(tokens, lps, tops, offsets):
        if top is not None and not isinstance(top, dict):
            raise RemoteError("the server's echoed top_logprobs are in a shape llmtui does not know")
        if not isinstance(offset, int) or offset >= len(full):
            after = top
            break
        listed = [Listed(str(t), _logprob(v), None) for t, v in (top or {}).items()]
        out.append(Scored(offset, Listed(str(text), _logprob(logprob), None), listed))
    if model.scoring is None:
        _check_alignment(model, full, after)
    return out


def _check_alignment(model: RemoteModel, full: str, after: dict | None) -> None:
    """Once per server: the echoed list after the prompt must be the one a plain completion gives there.

    llama-cpp-python's server (0.3.36) echoes each token with the probabilities of the *next* one when
    the model adds no BOS token (SmolLM2, GPT-2): it lists nothing after the prompt; said in one line."""
    plain = _request(model, full, {"logprobs": 5}).get("logprobs")
    tops = plain.get("top_logprobs") if isinstance(plain, dict) else None
    expected = tops[0] if isinstance(tops, list) and tops and isinstance(tops[0], dict) and tops[0] else None
    if expected is None:
        return  # nothing to check against
    best, value = max(expected.items(), key=lambda kv: kv[1])
    if isinstance(after, dict) and isinstance(after.get(best), (int, float)) and abs(after[best] - value) < 1e-3:
        return
    raise CannotScore(f"{model.endpoint.url} echoes a text's probabilities misaligned (llama-cpp-python's server "
                      "shifts them by one token on a model without a BOS token): it can't score a given text")


def _prompt_logprobs(model: RemoteModel, full: str, top_n: int) -> list[Scored] | None:
    """vLLM's prompt_logprobs; None when the server ignored them."""
    per_position = _request(model, full, {"prompt_logprobs": top_n, "logprobs": 1}).get("prompt_logprobs")
    if not isinstance(per_position, list):
        return None
    pairs = model.tokenize(full)  # the ids say which entry is the prompt's own token
    if len(per_position) == len(pairs) + 1:
        per_position = per_position[1:]  # the BOS token the model adds (the tokenizer route is asked without it)
    if len(pairs) != len(per_position):
        raise CannotScore(f"{model.endpoint.url} scored {len(per_position)} prompt tokens but cut the text into "
                          f"{len(pairs)}: does the model add a BOS token the tokenizer route leaves out?")
    out, offset = [], 0
    for (token_id, text), entry in zip(pairs, per_position):
        if entry is not None and not isinstance(entry, dict):
            raise RemoteError("the server's prompt_logprobs are in a shape llmtui does not know")
        listed = [_vllm_entry(k, v) for k, v in (entry or {}).items()]
        own = next((t.logprob for t in listed if t.id == token_id), None)
        if entry is not None and own is None:
            raise RemoteError(f"{model.endpoint.url}'s prompt_logprobs leave out the prompt's own token {token_id}")
        out.append(Scored(offset, Listed(text, math.nan if own is None else own, token_id), listed))
        offset += len(text)
    return out


def _vllm_entry(key: object, value: object) -> Listed:
    if not isinstance(value, dict) or not str(key).lstrip("-").isdigit():
        raise RemoteError("the server's prompt_logprobs list a token without its id or log-probability")
    text = value.get("decoded_token")
    return Listed(str(text) if text is not None else "", _logprob(value.get("logprob")), int(str(key)))


def _logprob(value: object) -> float:
    if value is None:
        return math.nan  # the first token of a text: no probability
    if isinstance(value, (int, float)) and not math.isnan(value) and value <= 1e-6:
        return float(value)
    raise RemoteError(f"the server sent a log-probability that is not one: {value!r:.40}")
