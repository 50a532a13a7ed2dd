"""Embedding extraction into a resumable, sharded cache."""

from cardiobench.embed.cache import EmbeddingCache, ShardPlan
from cardiobench.embed.embeddings import Embeddings
from cardiobench.embed.extract import (ExtractOptions, ExtractReport, extract, failure_summary,
                                       finalize_cache, load_or_extract)

__all__ = ["EmbeddingCache", "Embeddings", "ExtractOptions", "ExtractReport", "ShardPlan",
           "extract", "failure_summary", "finalize_cache", "load_or_extract"]
