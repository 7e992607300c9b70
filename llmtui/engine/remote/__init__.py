"""A model served elsewhere (vLLM, SGLang, llama.cpp's server) through the OpenAI-compatible API with logprobs."""

from llmtui.engine.remote.client import RemoteModel
from llmtui.engine.remote.endpoint import API_KEY_VARIABLE, Endpoint
from llmtui.engine.remote.judge import UNDECIDED, judge
from llmtui.engine.remote.session import RemoteSession, Traffic
from llmtui.engine.remote.transport import HttpFault, StreamDropped

__all__ = ["API_KEY_VARIABLE", "Endpoint", "HttpFault", "RemoteModel", "RemoteSession", "StreamDropped", "Traffic",
           "UNDECIDED", "judge"]
