"""Write a small AG-News-shaped sample (`text`, `label` 0..3) for offline demos and tests.

The sentences are composed for this project from per-category phrase lists
(no AG News text is copied); some words are shared between categories and
every line carries neutral filler, so a model must read the content words.
Usage: python recipes/data/make_news_sample.py OUT_DIR [--train N] [--test N] [--seed S]
"""

import argparse
import csv
import random
from pathlib import Path

LABELS = ["World", "Sports", "Business", "Sci/Tech"]

PHRASES = {
    "World": {
        "subject": ["The prime minister", "Rebel leaders", "The United Nations", "Election officials",
                    "Peace negotiators", "The foreign ministry", "Opposition parties", "Border guards",
                    "The president", "Aid agencies", "Parliament", "The army"],
        "action": ["called for a ceasefire in", "held talks with envoys from", "announced new elections in",
                   "sent troops to", "condemned the attack in", "signed a treaty with",
                   "evacuated civilians from", "imposed sanctions on", "opened the border with",
                   "accused the government of"],
        "object": ["the northern province", "neighbouring states", "the capital", "the disputed region",
                   "refugee camps", "the embassy", "the coalition", "the islands", "the war zone"],
    },
    "Sports": {
        "subject": ["The home team", "The striker", "The champion", "The coach", "The veteran pitcher",
                    "The young sprinter", "The captain", "The goalkeeper", "The tennis star", "The club"],
        "action": ["scored twice against", "won the final over", "signed a contract with",
                   "was injured in the match against", "beat the record held by", "lost the title to",
                   "advanced to the semifinals after beating", "tied the game with", "defeated"],
        "object": ["the league leaders", "the defending champions", "their rivals", "the national squad",
                   "the visiting side", "the Olympic team", "the playoff contenders", "the underdogs"],
    },
    "Business": {
        "subject": ["Shares of the retailer", "The central bank", "The airline", "Oil prices",
                    "The automaker", "Investors", "The bank", "Quarterly profits", "The company",
                    "Wall Street", "The insurer", "Consumer spending"],
        "action": ["rose sharply after", "fell on worries about", "agreed to buy", "cut jobs because of",
                   "raised interest rates amid", "reported earnings above", "filed for bankruptcy after",
                   "announced a merger with", "lowered its forecast due to"],
        "object": ["rising fuel costs", "a rival chain", "weak holiday sales", "the stock market",
                   "analyst expectations", "higher inflation", "the quarterly report", "its creditors",
                   "the trade deficit"],
    },
    "Sci/Tech": {
        "subject": ["Researchers", "The software maker", "Astronomers", "The chip maker", "Scientists",
                    "The search engine", "Engineers", "The space agency", "Hackers", "The company"],
        "action": ["released a new version of", "discovered", "launched a probe to study",
                   "patched a security flaw in", "unveiled a faster", "developed a vaccine against",
                   "built a robot that can", "warned users about", "mapped the genome of"],
        "object": ["the operating system", "a distant planet", "the web browser", "processor",
                   "a computer virus", "the mobile phone", "the telescope data", "a rare bacterium",
                   "the online service"],
    },
}

FILLER = ["on Tuesday", "on Monday", "late on Friday", "this week", "officials said", "according to reports",
          "sources said", "in a statement", "for the second time", "earlier today"]
SOURCES = ["Reuters", "AP", "AFP", "Staff writer"]


def make_row(rng: random.Random, label: int) -> dict:
    phrases = PHRASES[LABELS[label]]
    text = (
        f"{rng.choice(SOURCES)} - {rng.choice(phrases['subject'])} {rng.choice(phrases['action'])} "
        f"{rng.choice(phrases['object'])} {rng.choice(FILLER)}."
    )
    if rng.random() < 0.5:
        text += f" {rng.choice(phrases['subject'])} {rng.choice(phrases['action'])} {rng.choice(phrases['object'])}."
    return {"text": text, "label": label}


def make_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [make_row(rng, rng.randrange(len(LABELS))) for _ in range(n)]


def write_csv(path, rows):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir")
    parser.add_argument("--train", type=int, default=1200)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_csv(Path(args.out_dir) / "train.csv", make_rows(args.train, args.seed))
    write_csv(Path(args.out_dir) / "test.csv", make_rows(args.test, args.seed + 1))


if __name__ == "__main__":
    main()
