"""Generation: the samplers that turn logits into the next token, and KV-cache decoding."""
