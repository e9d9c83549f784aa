"""Write a small amazon-esci-shaped sample of Spanish product listings for offline causal-LM demos and tests.

Listings are composed for this project from phrase lists (no Amazon text is
copied). About one in eight has no description, as in the real `products`
config, so the recipe's "drop empty rows" step has work to do.
Usage: python recipes/data/make_products_sample.py OUT.csv [--rows N] [--seed S]
"""

import argparse
import csv
import random
from pathlib import Path

PRODUCTS = [("playera", "f", "algodón"), ("sudadera con capucha", "f", "felpa"), ("gorra", "f", "poliéster"),
            ("mochila", "f", "nailon"), ("chaqueta", "f", "poliéster acolchado"), ("taza", "f", "cerámica"),
            ("lámpara de escritorio", "f", "aluminio"), ("botella térmica", "f", "acero inoxidable"),
            ("funda para móvil", "f", "silicona"), ("camiseta deportiva", "f", "tejido técnico"),
            ("reloj", "m", "acero"), ("cojín", "m", "lino"), ("monedero", "m", "cuero"),
            ("pantalón de chándal", "m", "algodón"), ("cargador inalámbrico", "m", "plástico reciclado"),
            ("altavoz portátil", "m", "aluminio"), ("juego de sábanas", "m", "microfibra")]
BRANDS = ["11 Degrees", "Solano", "Casa Nova", "Mar Azul", "Urbano", "Pico Alto", "Luna Verde", "Tecnia"]
COLORS = {"f": ["negra", "blanca", "azul", "roja", "gris", "verde"], "m": ["negro", "blanco", "azul", "rojo", "gris",
                                                                        "verde"]}
OPENINGS = ["{esta} {product} de {brand} viene en color {color}, fabricad{o} en {material}.",
            "{esta} {product} {color} de la marca {brand} está hech{o} de {material} de alta calidad.",
            "Presentamos {la} nuev{o} {product} de {brand}, en {material} y de color {color}."]
FEATURES = ["Es muy resistente y duradero.", "Su diseño es sencillo y elegante.", "Es ligero y fácil de llevar.",
            "Se lava a máquina sin perder el color.", "Tiene un acabado suave al tacto.",
            "Es ideal para el uso diario.", "Incluye un bolsillo interior con cremallera.",
            "Resiste los golpes y el agua.", "Mantiene la temperatura durante horas.",
            "Se adapta a cualquier estilo.", "Perfecto para regalar en cualquier ocasión."]
CLOSINGS = ["Somos un vendedor autorizado de {brand}.", "Ver la descripción del producto para más información.",
            "A estrenar y genuino.", "Garantía de dos años.", "Temporada: otoño e invierno.",
            "Temporada: primavera y verano."]


def make_description(rng: random.Random, product, gender, material, brand, color) -> str:
    words = {"esta": "Esta" if gender == "f" else "Este", "la": "la" if gender == "f" else "el",
             "o": "a" if gender == "f" else "o", "product": product, "brand": brand, "color": color,
             "material": material}
    features = " ".join(rng.sample(FEATURES, rng.randint(2, 4)))
    return f"{rng.choice(OPENINGS).format(**words)} {features} {rng.choice(CLOSINGS).format(brand=brand)}"


def make_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        product, gender, material = rng.choice(PRODUCTS)
        brand, color = rng.choice(BRANDS), rng.choice(COLORS[gender])
        description = make_description(rng, product, gender, material, brand, color) if rng.random() > 0.125 else ""
        rows.append({
            "product_id": f"B{seed:02d}{i:07d}",
            "product_title": f"{brand} {product.capitalize()} {color}",
            "product_description": description,
            "product_brand": brand,
            "product_color": color,
            "product_locale": "es",
        })
    return rows


def write_csv(path, rows):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
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
