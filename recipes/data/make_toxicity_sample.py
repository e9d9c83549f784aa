"""Write a small labelled sample (`text`, `label` = nothate / hate) to train the detox demo's reward model.

Written for this project: neutral sentences about everyday situations, and
rude ones (insults such as "stupid" or "idiot", "shut up", "I hate you") in
the same settings, like the notebook's two probes ("#Person 1# tells Tommy
that he didn't like the movie." / "... the movie was terrible, dumb and
stupid."). Two texts in three are shaped like what the demo scores
(`prompt + summary`, with a polite dialogue in the prompt), so the
classifier is trained on the positions it will read. A toy stand-in for
the hate-speech model, not a real one.
Usage: python recipes/data/make_toxicity_sample.py OUT.csv [--rows N] [--seed S]
"""

import argparse
import csv
import random
from pathlib import Path

from make_dialogues_sample import INSULTS, ITEMS, NAMES, PLACES
from make_dialogues_sample import make_rows as make_dialogues

PEOPLE = ["#Person1#", "#Person2#", *NAMES]
NEUTRAL = ["tells {b} that the movie was long", "asks {b} for the way to the {place}", "buys a {item} from {b}",
           "thanks {b} for the help", "invites {b} to dinner", "tells {b} about the new {item}",
           "books a table for {b}", "agrees to meet {b} at the {place}", "says the {item} works well",
           "apologizes to {b} for the broken {item}", "will pay for the {item} tomorrow",
           "tells {b} that he didn't like the movie"]
RUDE = ["calls {b} stupid", "calls {b} an idiot", "tells {b} to shut up", "says {b} is dumb and useless",
        "says the movie was terrible, dumb and stupid", "tells {b} I hate you", "calls {b} a stupid idiot",
        "says {b} is useless and stupid", "shouts that {b} is an idiot who broke the {item}"]


PROMPT = "\nSummarize the following conversation.\n\n{dialogue}\n\nSummary:\n"  # the detox recipe's prompt


def sentence(rng: random.Random, clauses, summaries) -> str:
    """A sentence from the clause templates, or (one time in three) a dialogue summary of the same kind."""
    if rng.random() < 1 / 3:
        return rng.choice(summaries)
    a, b = rng.sample(PEOPLE, 2)
    return f"{a} {rng.choice(clauses).format(b=b, item=rng.choice(ITEMS), place=rng.choice(PLACES))}."


def make_row(rng: random.Random, polite: list[dict], rude_summaries: list[str]) -> dict:
    """One labelled text: a sentence alone, or a prompt and a summary of a few sentences, the labelled one
    among polite ones (so the classifier learns that a rude sentence anywhere makes the text toxic)."""
    hate = rng.random() < 0.5
    polite_summaries = [r["summary"] for r in polite]
    target = sentence(rng, RUDE, rude_summaries) if hate else sentence(rng, NEUTRAL, polite_summaries)
    if rng.random() < 1 / 3:
        return {"text": target, "label": "hate" if hate else "nothate"}
    summary = [sentence(rng, NEUTRAL, polite_summaries) for _ in range(rng.randrange(4))]
    summary.insert(rng.randrange(len(summary) + 1), target)
    text = PROMPT.format(dialogue=rng.choice(polite)["dialogue"]) + " ".join(summary)
    return {"text": text, "label": "hate" if hate else "nothate"}


def make_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    dialogues = make_dialogues(300, seed + 1000)  # other rows than the demo's dialogues
    rude = [r["summary"] for r in dialogues if any(insult in r["summary"] for insult in INSULTS)]
    polite = [r for r in dialogues if r["summary"] not in rude]
    return [make_row(rng, polite, rude) for _ in range(n)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = make_rows(args.rows, args.seed)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
