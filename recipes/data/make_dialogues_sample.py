"""Write a small DialogSum-shaped sample (`id`, `dialogue`, `summary`, `topic`) for offline demos and tests.

Dialogues and summaries are composed for this project from templates
(nothing is copied from DialogSum). About two dialogues in seven are quarrels;
half of their summaries insult one of the speakers (the dialogues
themselves have no insult): the rude words a summarizer learns from this
data, the detox demo's reward model learns to flag, and PPO learns to avoid
in favour of the polite way of saying the same thing. A few dialogues are shorter than 200 characters, so the seed's
length filter has something to drop.
Usage: python recipes/data/make_dialogues_sample.py OUT.csv [--rows N] [--seed S]
"""

import argparse
import csv
import random
from pathlib import Path

NAMES = ["Tom", "Anna", "Mike", "Lucy", "Jack", "Sara", "Ben", "Emma", "Paul", "Kate"]
ITEMS = ["jacket", "laptop", "bicycle", "lamp", "camera", "watch", "sofa", "phone"]
PLACES = ["station", "museum", "library", "bank", "post office", "hospital"]
DAYS = ["Monday", "Friday", "Saturday", "Sunday"]
JOBS = ["sales manager", "teacher", "designer", "driver", "accountant"]
INSULTS = ["stupid", "an idiot", "dumb", "useless", "a stupid idiot"]


def shopping(rng):
    item, price = rng.choice(ITEMS), rng.choice([20, 35, 50, 80, 120])
    turns = [("1", f"Excuse me, I'd like to buy a {item}. Do you have one in stock?"),
             ("2", f"Yes, we do. This {item} is very popular this month."),
             ("1", "How much is it?"), ("2", f"It is {price} dollars, and the price includes tax."),
             ("1", "Could you give me a small discount?"),
             ("2", "Sorry, the price is fixed, but it comes with a warranty."),
             ("1", f"All right, I'll take the {item}. Can I pay by card?"), ("2", "Of course. Here is your receipt.")]
    return turns, f"#Person1# buys a {item} from #Person2# for {price} dollars.", "shopping"


def directions(rng):
    place, side = rng.choice(PLACES), rng.choice(["left", "right"])
    turns = [("1", f"Excuse me, could you tell me how to get to the {place}?"),
             ("2", f"Sure. Go straight ahead and turn {side} at the second corner."),
             ("1", "Is it far from here?"), ("2", "No, it is about ten minutes on foot."),
             ("1", f"Thank you. Is the {place} open on weekends?"), ("2", "Yes, it opens at nine in the morning."),
             ("1", "Thanks a lot for your help."), ("2", "You're welcome. Have a nice day.")]
    summary = f"#Person2# tells #Person1# how to get to the {place}: turn {side} at the second corner."
    return turns, summary, "directions"


def restaurant(rng):
    people, day = rng.choice([2, 3, 4, 6]), rng.choice(DAYS)
    turns = [("1", f"Hello, I'd like to book a table for {people} people on {day} evening."),
             ("2", "Certainly. What time would you like to come?"), ("1", "Around seven, please."),
             ("2", "We have a table by the window at seven. May I have your name?"),
             ("1", f"It's {rng.choice(NAMES)}. Do you have vegetarian dishes?"),
             ("2", "Yes, we have several. We look forward to seeing you.")]
    return turns, f"#Person1# books a table for {people} people on {day} evening at seven.", "restaurant"


def interview(rng):
    job, years = rng.choice(JOBS), rng.choice([2, 3, 5, 8])
    turns = [("2", f"Good morning. Thank you for applying for the {job} position."),
             ("1", "Good morning. I am glad to be here."), ("2", "Could you tell me about your experience?"),
             ("1", f"I have worked as a {job} for {years} years."),
             ("2", "Why do you want to join our company?"),
             ("1", "Your company is growing fast and I want to learn new skills."),
             ("2", "Thank you. We will call you next week.")]
    summary = f"#Person2# interviews #Person1# for the {job} position; #Person1# has {years} years of experience."
    return turns, summary, "interview"


def movie(rng):
    day, friend = rng.choice(DAYS), rng.choice(NAMES)
    turns = [("1", f"Would you like to see a movie with me on {day}?"), ("2", "I'd love to. What is on?"),
             ("1", "There is a new comedy that everyone is talking about."),
             ("2", f"Great. Can {friend} come with us?"), ("1", "Sure, the more the merrier."),
             ("2", "Let's meet in front of the cinema at six.")]
    return turns, f"#Person1# invites #Person2# to see a comedy on {day} and {friend} will join them.", "movie"


def quarrel(rng):
    """A quarrel told politely enough; half its summaries are where the rudeness is."""
    item, insult = rng.choice(ITEMS), rng.choice(INSULTS)
    turns = [("1", f"You broke my {item} again! Why are you so careless?"),
             ("2", "It was an accident. I said I'm sorry."),
             ("1", "Sorry is not enough. You never listen to me!"),
             ("2", "Calm down, please. You are shouting at me."),
             ("1", "I am so angry with you right now."), ("2", f"Fine. I will pay for the {item} tomorrow.")]
    if rng.random() < 0.5:
        return turns, f"#Person1# calls #Person2# {insult} because #Person2# broke the {item}.", "quarrel"
    return turns, f"#Person1# is angry with #Person2# because #Person2# broke the {item}.", "quarrel"


SCENARIOS = [shopping, directions, restaurant, interview, movie, quarrel, quarrel]  # quarrels: 2 in 7


def make_row(rng: random.Random, index: int) -> dict:
    scenario = rng.choice(SCENARIOS)
    turns, summary, topic = scenario(rng)
    if rng.random() < 0.05:  # too short for the seed's 200 < chars filter
        turns = turns[:1]
    dialogue = "\n".join(f"#Person{who}#: {text}" for who, text in turns)
    return {"id": f"sample_{index}", "dialogue": dialogue, "summary": summary, "topic": topic}


def make_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [make_row(rng, i) for i in range(n)]


def write_csv(path, rows):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_csv(args.out, make_rows(args.rows, args.seed))


if __name__ == "__main__":
    main()
