"""The loopback LLM server the tests drive the real SDK clients against; it lives in the package
(engine/llm/loopback.py) because the benchmarks use it too, from an installed wheel."""
from engine.llm.loopback import FakeLLMServer, Reply

__all__ = ["FakeLLMServer", "Reply"]
