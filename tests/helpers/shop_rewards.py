"""A reward function in trl's signature for the GRPO tests: the share of a completion's words that are the shop
assistant's ("happy", "help", ...), so a policy can raise it word by word."""

SHOP_WORDS = {"happy", "help", "help!", "sure,", "of", "course,", "anything", "else", "with?"}


def shop_words(prompts, completions, completion_ids, **columns):
    texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    return [sum(w.lower() in SHOP_WORDS for w in t.split()) / max(len(t.split()), 1) for t in texts]


def none_for_short(prompts, completions, completion_ids, **columns):
    """No reward (None) for completions under 3 tokens: trl's way of saying "not mine to score"."""
    return [None if len(ids) < 3 else 1.0 for ids in completion_ids]
