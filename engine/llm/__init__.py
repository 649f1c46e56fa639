"""The LLM layer: model registry, one call path through the official SDKs, cost ledger, record and replay."""
