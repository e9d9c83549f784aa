"""The Hugging Face Hub boundary: model and dataset downloads, ids, and their errors as one line each."""
