"""Answers in a model's chat template: each conversation rendered with the template's generation prompt,
tokenized as training tokenized it, and continued until the template's end-of-turn token (`<|im_end|>`,
`<|eot_id|>`, `<end_of_turn>`), which is what transformers' chat pipelines stop at."""

from kerastune.generation.causal import CausalLMGenerator


def chat_generator(model, chat, **settings) -> CausalLMGenerator:
    """A generator whose continuations end at the template's end-of-turn token (the end token if it has none)."""
    end_of_turn = chat.end_of_turn()
    end_id = chat.added_tokens[end_of_turn] if end_of_turn else None
    return CausalLMGenerator(model, model.preprocessor.tokenizer, end_id=end_id, **settings)


def answer_generators(model, chat, max_new_tokens, seed, temperature=1.0, top_k=0, top_p=1.0):
    """(sampling, greedy) generators for an RL recipe's answers: in the chat template, ending at its end of turn,
    when `chat` is given; otherwise plain continuations ending at the end token."""
    def make(**settings):
        if chat is not None:
            return chat_generator(model, chat, max_new_tokens=max_new_tokens, seed=seed, **settings)
        return CausalLMGenerator(model, model.preprocessor.tokenizer, max_new_tokens=max_new_tokens, seed=seed,
                                 **settings)

    return make(sampler="sample", temperature=temperature, top_k=top_k, top_p=top_p), make(sampler="greedy")


def answer(generator, chat, conversations, batch_size=8, progress=False) -> list[str]:
    """The assistant's next turn for each conversation (a list of {role, content}), as text."""
    prompts = [chat.render(conversation, add_generation_prompt=True) for conversation in conversations]
    pieces = [ids for ids, _ in chat.encode([(p, []) for p in prompts], generator.tokenizer)]
    news = generator.generate_tokens(pieces, batch_size, progress)
    return generator.decode_answers(news)
