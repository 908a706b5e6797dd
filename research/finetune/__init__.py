"""Fine-tuning chapter: LoRA (or full) SFT and DPO in LLaMA-Factory's terms, merge and export."""
