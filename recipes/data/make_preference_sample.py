"""Write a small preference sample (a shop's assistant, polite answers chosen) for offline DPO and reward-model runs.

Each row is a user question about a small shop's product (the questions and
facts of make_chat_sample.py) with two answers that give the same fact: the
chosen one in the shop's polite style ("Happy to help! ... Anything else I can
help with?"), the rejected one rude ("Ugh, ... Stop asking.") or garbled (the
polite answer's words shuffled). Rows are in trl's conversational preference
format with an explicit prompt, as hub datasets such as
trl-lib/ultrafeedback_binarized have them after prompt extraction:
{"prompt": [user message], "chosen": [assistant message], "rejected": [assistant message]}.
A model tuned on it prefers the polite answer to a held-out question, which is
what the recipes' tests look for.
Usage: python recipes/data/make_preference_sample.py OUT.jsonl [--rows N] [--seed S]
"""

import argparse
import json
import random
from pathlib import Path

from make_chat_sample import GREETINGS, OPENERS, question_and_answer

RUDE_OPENERS = ["Ugh, fine.", "Read the page yourself.", "Whatever.", "Not this again."]
RUDE_CLOSERS = ["Stop asking.", "Don't bother me again.", "Figure out the rest alone."]


def rude(answer: str, rng: random.Random) -> str:
    """The polite answer's fact between a rude opener and closer."""
    fact = answer.split("! ", 1)[1].rsplit(" Anything else", 1)[0]
    return f"{rng.choice(RUDE_OPENERS)} {fact} {rng.choice(RUDE_CLOSERS)}"


def garbled(answer: str, rng: random.Random) -> str:
    words = answer.split()
    rng.shuffle(words)
    return " ".join(words)


def make_pair(rng: random.Random) -> dict:
    question, answer = question_and_answer(rng)
    assert answer.startswith(tuple(OPENERS))
    rejected = rude(answer, rng) if rng.random() < 0.7 else garbled(answer, rng)
    prompt = f"{rng.choice(GREETINGS)} {question}".strip()
    return {"prompt": [{"role": "user", "content": prompt}], "chosen": [{"role": "assistant", "content": answer}],
            "rejected": [{"role": "assistant", "content": rejected}]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    lines = [json.dumps(make_pair(rng), ensure_ascii=False) for _ in range(args.rows)]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.rows} preference pairs to {args.out}")


if __name__ == "__main__":
    main()
