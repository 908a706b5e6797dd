"""Readers and writers for formats that others define (GGUF, HF safetensors directories,
PEFT adapters), and the licence notes of the pretrained models the code loads."""
