"""The Automated Reviewer: `from engine.review import load_paper, perform_review`."""
from engine.review.paper import load_paper
from engine.review.reviewer import perform_review

__all__ = ["load_paper", "perform_review"]
