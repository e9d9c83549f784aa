"""Write a small IMDb-shaped sample (`text`) of movie-review sentences for offline MLM demos and tests.

Reviews are composed for this project from phrase lists (no IMDb text is
copied); the domain vocabulary (acting, plot, director, ...) is what a
masked LM adapts to.
Usage: python recipes/data/make_reviews_sample.py OUT_DIR [--train N] [--test N] [--seed S]
"""

import argparse
import csv
import random
from pathlib import Path

OPENINGS = ["I watched this movie last night", "This film", "The sequel", "This documentary", "The remake",
            "This comedy", "The thriller", "This is a great movie", "This is a great film", "Honestly, this picture"]
VERDICTS = ["was a complete waste of time", "is one of the best films of the year", "was better than I expected",
            "felt far too long", "made me laugh out loud", "is a masterpiece of modern cinema",
            "was boring from start to finish", "kept me on the edge of my seat"]
DETAILS = ["The acting was superb", "The plot made no sense", "The director did a wonderful job",
           "The soundtrack was beautiful", "The dialogue felt forced", "The special effects looked cheap",
           "The cast had great chemistry", "The ending was predictable", "The cinematography was stunning",
           "The characters were poorly written", "The script was sharp and funny", "The pacing was slow"]
CLOSINGS = ["I would recommend it to anyone.", "Avoid it if you can.", "Ten out of ten.", "Two stars at most.",
            "I will watch it again.", "Wait for the DVD.", "A great film for the whole family."]


def make_review(rng: random.Random) -> str:
    details = " ".join(f"{d}." for d in rng.sample(DETAILS, rng.randint(1, 4)))
    return f"{rng.choice(OPENINGS)} {rng.choice(VERDICTS)}. {details} {rng.choice(CLOSINGS)}"


def make_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [{"text": make_review(rng)} for _ in range(n)]


def write_csv(path, rows):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text"])
        writer.writeheader()
        writer.writerows(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir")
    parser.add_argument("--train", type=int, default=1500)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_csv(Path(args.out_dir) / "train.csv", make_rows(args.train, args.seed))
    write_csv(Path(args.out_dir) / "test.csv", make_rows(args.test, args.seed + 1))


if __name__ == "__main__":
    main()
