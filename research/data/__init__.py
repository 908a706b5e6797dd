"""Text corpora, token files and the sliding windows a language model trains on."""
