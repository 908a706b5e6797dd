"""A local knowledge base: ingest, chunk, embed, store, retrieve (vector, BM25, hybrid),
answer with citations, and evaluate retrieval (Recall@k, MRR, nDCG); kb.py keeps one as a
folder of uploaded documents (add, delete, background ingest) for the web UI."""
