"""A local knowledge base: ingest, chunk, embed, store, retrieve (vector, BM25, hybrid),
answer with citations, and evaluate retrieval (Recall@k, MRR, nDCG)."""
