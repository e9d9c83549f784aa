"""Write a small yahoo_answers_qa-shaped sample (`question`, `answer`) for offline demos and tests.

Questions and answers are composed for this project from small fact tables
(nothing is copied from Yahoo Answers): a model can only score ROUGE on the
held-out rows by learning the question patterns and the facts.
Usage: python recipes/data/make_qa_sample.py OUT.csv [--rows N] [--seed S]
"""

import argparse
import csv
import random
from pathlib import Path

CAPITALS = {"France": "Paris", "Spain": "Madrid", "Italy": "Rome", "Japan": "Tokyo", "Kenya": "Nairobi",
            "Canada": "Ottawa", "Peru": "Lima", "Egypt": "Cairo", "Norway": "Oslo", "Chile": "Santiago",
            "Greece": "Athens", "Poland": "Warsaw", "Cuba": "Havana", "Ireland": "Dublin"}
ANIMALS = {"dog": "barks", "cat": "meows", "cow": "moos", "duck": "quacks", "lion": "roars",
           "horse": "neighs", "sheep": "bleats", "owl": "hoots", "snake": "hisses", "frog": "croaks"}
HABITS = {"sleep better": "keep a regular bedtime and avoid screens late at night",
          "learn a language": "practice a little every day and speak with native speakers",
          "save money": "track your spending and set aside part of every paycheck",
          "stay healthy": "eat vegetables, drink water and walk every day",
          "cook rice": "rinse it, add twice as much water and simmer it covered",
          "study for exams": "make a plan, review your notes and rest well the night before",
          "grow tomatoes": "plant them in full sun and water them deeply but not often",
          "fix a flat tire": "remove the wheel, patch the tube and pump it up again"}
OPPOSITES = {"hot": "cold", "big": "small", "fast": "slow", "happy": "sad", "early": "late",
             "light": "dark", "open": "closed", "full": "empty", "young": "old", "strong": "weak"}


def make_row(rng: random.Random) -> dict:
    kind = rng.randrange(4)
    if kind == 0:
        country = rng.choice(list(CAPITALS))
        question = rng.choice(["What is the capital of {}?", "Which city is the capital of {}?"]).format(country)
        answer = f"The capital of {country} is {CAPITALS[country]}."
    elif kind == 1:
        animal = rng.choice(list(ANIMALS))
        question = rng.choice(["What sound does a {} make?", "How does a {} sound?"]).format(animal)
        answer = f"A {animal} {ANIMALS[animal]}."
    elif kind == 2:
        goal = rng.choice(list(HABITS))
        question = rng.choice(["How can I {}?", "What is the best way to {}?"]).format(goal)
        answer = f"To {goal}, {HABITS[goal]}."
    else:
        word = rng.choice(list(OPPOSITES))
        question = rng.choice(["What is the opposite of {}?", "Which word means the opposite of {}?"]).format(word)
        answer = f"The opposite of {word} is {OPPOSITES[word]}."
    return {"question": question, "answer": answer}


def make_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [make_row(rng) for _ in range(n)]


def write_csv(path, rows):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["question", "answer"])
        writer.writeheader()
        writer.writerows(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_csv(args.out, make_rows(args.rows, args.seed))


if __name__ == "__main__":
    main()
