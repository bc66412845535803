"""Model client: Chat Completions with retries, a deadline and usage accounting."""

from __future__ import annotations

from lumo.llm.client import (
    DEFAULT_MODEL,
    LLMSettings,
    ModelClient,
    ModelError,
    ModelReply,
    ModelUnavailable,
    ToolCall,
    Usage,
    UsageTotals,
)
from lumo.llm.retry import RetryPolicy, is_retryable, parse_retry_after

__all__ = [
    "DEFAULT_MODEL",
    "LLMSettings",
    "ModelClient",
    "ModelError",
    "ModelReply",
    "ModelUnavailable",
    "RetryPolicy",
    "ToolCall",
    "Usage",
    "UsageTotals",
    "is_retryable",
    "parse_retry_after",
]
