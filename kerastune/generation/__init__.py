"""Text generation: compiled greedy, sampling and beam search for seq2seq, causal and masked LMs.

`Seq2SeqGenerator` (T5) and `CausalLMGenerator` (GPT-2) share one contract:

    tokenize(prompts: list[str]) -> list[list[int]]        prompt ids as the model reads them
    generate_tokens(pieces, batch_size, progress) -> list[list[int]]
                                                           new ids per tokenized prompt, up to and
                                                           including the end token if it came
    decode(rows: list[list[int]]) -> list[str]             text of each row of ids (a seq2seq row
                                                           stops at its end token)
    generate(prompts, batch_size, progress) -> list[str]   text per prompt: a seq2seq model's
                                                           output; a causal LM's prompt + continuation
    model, tokenizer, max_new_tokens, eos_id               attributes

Batches are length-sorted and padded to bucket edges (data/tokens.py), so the
compiled search is reused across batches.
"""

SAMPLERS = ("greedy", "sample", "top_k", "top_p", "beam", "eps_greedy")  # built by samplers.make_sampler
