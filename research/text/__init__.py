"""Text to token ids and back: sentencepiece BPE (`bpe`) and a character tokenizer (`char`);
`detokenize` turns generated ids into text of whole characters, token by token."""
