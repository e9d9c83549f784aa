"""Text generation: compiled greedy, sampling and beam search for seq2seq, causal and masked LMs."""

SAMPLERS = ("greedy", "sample", "top_k", "top_p", "beam", "eps_greedy")  # built by samplers.make_sampler
