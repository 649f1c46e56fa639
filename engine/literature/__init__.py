"""Literature search over Semantic Scholar, OpenAlex and arXiv, with fallback, retries, a breaker and a disk cache."""
from engine.literature.client import LiteratureSearch
from engine.literature.config import LiteratureConfig
from engine.literature.errors import LiteratureError
from engine.literature.paper import Paper

__all__ = ["LiteratureConfig", "LiteratureError", "LiteratureSearch", "Paper"]
