"""Text to token ids and back: sentencepiece BPE (`bpe`) and a character tokenizer (`char`)."""
