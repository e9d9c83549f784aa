"""What the tests share: checkpoints written by transformers (hf_checkpoints, hf_reference), a local
Hugging Face Hub (local_hub, hub_repos) and a torch-free loader process (load_without_torch)."""
