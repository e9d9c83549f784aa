"""Write a small conversational sample (a shop's assistant) for offline chat-SFT demos and tests.

Conversations are composed for this project from phrase lists, in the
`messages` format chat datasets on the hub use (a JSON list of
{"role", "content"} per row): one to three user questions about a small
shop's products (price, colours, material, delivery, returns), each answered
in the same recognisable style: a greeting phrase first, the fact, then
"Anything else I can help with?". A model tuned on it answers a new question
in that style, which is what the recipe's test looks for.
Usage: python recipes/data/make_chat_sample.py OUT.jsonl [--rows N] [--seed S]
"""

import argparse
import json
import random
from pathlib import Path

PRODUCTS = {"mug": ("ceramic", 12), "backpack": ("nylon", 45), "desk lamp": ("aluminium", 38), "cap": ("cotton", 15),
            "water bottle": ("steel", 22), "phone case": ("silicone", 14), "cushion": ("linen", 19),
            "wallet": ("leather", 30), "hoodie": ("fleece", 42), "speaker": ("aluminium", 55),
            "notebook": ("recycled paper", 8), "umbrella": ("polyester", 25)}
COLOURS = ["black", "white", "blue", "red", "grey", "green"]
OPENERS = ["Happy to help!", "Sure, happy to help!", "Of course, happy to help!"]
CLOSER = "Anything else I can help with?"
GREETINGS = ["Hi!", "Hello.", "Good morning.", "Hey there.", ""]


def question_and_answer(rng: random.Random) -> tuple[str, str]:
    product = rng.choice(sorted(PRODUCTS))
    material, price = PRODUCTS[product]
    colours = rng.sample(COLOURS, 3)
    kind = rng.choice(["price", "colours", "material", "delivery", "returns"])
    if kind == "price":
        question = rng.choice(["How much is the {p}?", "What does the {p} cost?", "What is the price of the {p}?"])
        fact = f"The {product} costs {price} euros."
    elif kind == "colours":
        question = rng.choice(["Which colours does the {p} come in?", "Do you have the {p} in other colours?"])
        fact = f"The {product} comes in {colours[0]}, {colours[1]} and {colours[2]}."
    elif kind == "material":
        question = rng.choice(["What is the {p} made of?", "Which material is the {p}?"])
        fact = f"The {product} is made of {material}."
    elif kind == "delivery":
        days = rng.choice([2, 3, 5])
        question = rng.choice(["How long does delivery of the {p} take?", "When would the {p} arrive?"])
        fact = f"The {product} arrives in {days} working days, and delivery is free over 40 euros."
    else:
        question = rng.choice(["Can I return the {p}?", "What if the {p} does not fit my needs?"])
        fact = f"You can return the {product} within 30 days for a full refund."
    return question.format(p=product), f"{rng.choice(OPENERS)} {fact} {CLOSER}"


def make_conversation(rng: random.Random) -> list[dict]:
    messages = []
    for turn in range(rng.choice([1, 1, 2, 3])):
        question, answer = question_and_answer(rng)
        greeting = rng.choice(GREETINGS) if turn == 0 else ""
        messages.append({"role": "user", "content": f"{greeting} {question}".strip()})
        messages.append({"role": "assistant", "content": answer})
    return messages


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    lines = [json.dumps({"messages": make_conversation(rng)}, ensure_ascii=False) for _ in range(args.rows)]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.rows} conversations to {args.out}")


if __name__ == "__main__":
    main()
