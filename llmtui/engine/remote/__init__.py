"""A model served elsewhere (vLLM, SGLang, llama.cpp's server) through the OpenAI-compatible API with logprobs.

    endpoint.py   the URL, model name and timeout; the API key stays in LLMTUI_API_KEY
    transport.py  HTTP and server-sent events, every fault one RemoteError line
    client.py     RemoteModel: the model list check and the tokenizer routes
    session.py    RemoteSession: streamed completions as the local engine's Step records
    judge.py      what the knobs would cut among the listed top-N, where the list decides it
    scoring.py    a given text's probabilities (echo + logprobs, or vLLM's prompt_logprobs)
    comparison.py compare on a served model: KL exact where the list decides it, else a bound or nothing
    branches.py   the branch tree of served steps, keyed by text, their tables as received
    tokenizing.py the server's tokenizer route, else the model's tokenizer files found here

Nothing is imported here: the CLI reads endpoint.py without pulling in torch (session.py does).
"""

UNDECIDED = "?"
"""cut_by of a listed candidate whose fate depends on the unlisted tail (or on a repetition penalty)."""
