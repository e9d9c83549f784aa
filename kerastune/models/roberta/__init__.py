"""RoBERTa sequence classifiers (the PPO reward model): HF conversion and `tiny-roberta`."""
