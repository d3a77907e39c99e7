"""Benchmark 3: images and fusion on the real fashion photos (../shared/data/fashion_small_hs).

Label: the proposed 4-digit HS heading (29 headings; ``--label articleType`` for the 57
catalogue classes). The dataset's own fixed split: train / val / test.

Runs, side by side in one process, each scored on the test split:
  image, direct          VGG trained from scratch on the target classes
  image, pretrain+ft     VGG pre-trained self-supervised (rotation) on ALL train+val photos
                         (even beyond --max-train-per-class), then fine-tuned (the paper's
                         regime)
  title                  BiLSTM on the product title
  title+image            joint fusion (pre-trained image branch)
  masked title           title with every class word removed ("Puma Men Grey T-shirt" ->
                         "Puma Men Grey")
  masked title+image     joint / concat / late fusion on masked titles
  ... half photos        masked title+image with half of all photos removed (train and test)

Usage (CPU, ~10-15 min on 2 shared cores with the defaults):
    .venv/bin/python -m benchmarks.bench_images
    .venv/bin/python -m benchmarks.bench_images --max-train-per-class 0 --device cuda  # GPU, all
    .venv/bin/python -m benchmarks.bench_images --max-train-per-class 30 --epochs 2   # smoke
Writes benchmarks/out/bench_images.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import random
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import OUT_DIR, SHARED_DATA, markdown_table, max_rss_mb
from model.config import ModelConfig
from model.fit import fit
from model.records import Example
from model.train_loop import pretrain_image_encoder

FASHION = SHARED_DATA / "fashion_small_hs"

# Extra spellings of the class words seen in titles, beyond the words of the class names.
SYNONYMS = [
    "t-shirt",
    "t-shirts",
    "tshirt",
    "tee",
    "tees",
    "polo",
    "flip-flop",
    "flip-flops",
    "flipflops",
    "slipper",
    "slippers",
    "nightsuit",
    "nightsuits",
    "pyjama",
    "pyjamas",
    "nighty",
    "nightie",
    "trackpant",
    "trackpants",
    "vest",
    "vests",
    "chain",
    "necklace",
    "perfume",
    "edt",
    "edp",
    "eau",
    "toilette",
    "parfum",
    "mist",
    "kajal",
    "eyeliner",
    "liner",
    "foundation",
    "primer",
    "gloss",
    "lipgloss",
    "lipstick",
    "nail",
    "polish",
    "enamel",
    "deo",
    "deodorant",
    "spray",
    "backpack",
    "rucksack",
    "clutch",
    "duffle",
    "duffel",
    "handbag",
    "bag",
    "laptop",
    "wallet",
    "belt",
    "legging",
    "leggings",
    "jegging",
    "jeggings",
    "top",
    "boxer",
    "brief",
    "bra",
    "scarf",
    "scarves",
    "stole",
    "tie",
    "sandal",
    "sandals",
    "shoe",
    "shoes",
    "sneaker",
    "sneakers",
    "heel",
    "heels",
    "flat",
    "flats",
    "cap",
    "caps",
    "bangle",
    "bangles",
    "bracelet",
    "cufflink",
    "cufflinks",
    "earring",
    "earrings",
    "pendant",
    "ring",
    "rings",
    "sunglass",
    "sunglasses",
    "watch",
    "watches",
    "jacket",
    "capri",
    "capris",
    "dress",
    "dresses",
    "jean",
    "jeans",
    "short",
    "shorts",
    "skirt",
    "skirts",
    "trouser",
    "trousers",
    "shirt",
    "shirts",
    "sweater",
    "sweatshirt",
    "sweatshirts",
    "sock",
    "socks",
    "trunk",
    "trunks",
    "innerwear",
    "nightdress",
    "chinos",
    "pants",
    "pant",
    "kurta",
    "blazer",
    "hoodie",
]
STOP = {"and", "of", "the"}


def load_items(path: Path = FASHION) -> list[dict[str, str]]:
    items_csv = path / "items.csv"
    if not items_csv.is_file():
        raise FileNotFoundError(
            f"real data not found at {items_csv} (see /work/shared/docs/data.md)"
        )
    with items_csv.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def class_words(labels: list[str]) -> set[str]:
    words = {w for lab in labels for w in re.findall(r"[a-z]+", lab.lower()) if w not in STOP}
    words |= {w[:-1] for w in words if w.endswith("s")}
    return words | set(SYNONYMS)


def mask_title(title: str, words: set[str]) -> str:
    """Drop every token that is (a spelling of) a class word; keep brand, colour, gender."""
    kept = []
    for token in title.split():
        norm = re.sub(r"[^a-z-]", "", token.lower())
        parts = [p for p in norm.split("-") if p]
        if norm in words or norm.replace("-", "") in words or any(p in words for p in parts):
            continue
        kept.append(token)
    return " ".join(kept)


def build_examples(items, label_field: str, words: set[str] | None) -> dict[str, list[Example]]:
    out: dict[str, list[Example]] = {"train": [], "val": [], "test": []}
    for it in items:
        title = it["productDisplayName"]
        if words is not None:
            title = mask_title(title, words)
        blob = (FASHION / it["image"]).read_bytes()
        out[it["split"]].append(Example(it["id"], title, None, blob, it[label_field]))
    return out


def drop_photos(examples: list[Example], share: float, seed: int) -> list[Example]:
    rng = random.Random(seed)
    return [dataclasses.replace(e, image=None) if rng.random() < share else e for e in examples]


def cap_per_class(examples: list[Example], cap: int | None, seed: int) -> list[Example]:
    if not cap:
        return examples
    rng = random.Random(seed)
    shuffled = examples[:]
    rng.shuffle(shuffled)
    seen: dict[str, int] = {}
    out = []
    for e in shuffled:
        if seen.get(e.label, 0) < cap:
            seen[e.label] = seen.get(e.label, 0) + 1
            out.append(e)
    return out


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    items = load_items()
    labels_all = sorted({it["label"] for it in items})
    words = class_words(labels_all)
    plain = build_examples(items, args.label, None)
    masked = build_examples(items, args.label, words)
    for split in ("train", "val"):
        plain[split] = cap_per_class(plain[split], args.max_train_per_class, args.seed)
        keep = {e.key for e in plain[split]}
        masked[split] = [e for e in masked[split] if e.key in keep]
    test_titles = [e.title.lower() for e in masked["test"]]
    leak = float(np.mean([any(w in words for w in re.findall(r"[a-z]+", t)) for t in test_titles]))

    base = ModelConfig.from_flat(
        inputs="title+image",
        embed_dim=args.embed_dim,
        embed_epochs=5,
        hidden=args.hidden,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        max_len=24,
        image_size=args.image_size,
        vgg_cfg=args.vgg,
        vgg_width=args.width,
        pretrain_epochs=args.pretrain_epochs,
        finetune_epochs=args.finetune_epochs,
        modality_dropout=args.modality_dropout,
        tokenizer="word",
        seed=args.seed,
        device=args.device,
    )
    results: list[dict] = []

    def record(name: str, data: dict[str, list[Example]], cfg: ModelConfig, **kw) -> None:
        t0 = time.perf_counter()
        model = fit(data["train"], data["val"], cfg, **kw)
        fit_s = time.perf_counter() - t0
        m = model.evaluate(data["test"])
        row = {
            "experiment": name,
            "inputs": cfg.inputs,
            "fusion": cfg.image.fusion if cfg.inputs == "title+image" else "-",
            "top1": m["top1"],
            "top3": m["top3"],
            "ece_before": m["ece_before"],
            "ece_after": m["ece_after"],
            "fit_s": fit_s,
            "best_epoch": model.history.get("best_epoch"),
            "photos_test": sum(1 for e in data["test"] if e.image),
        }
        results.append(row)
        print(json.dumps(row), flush=True)

    t_pre = time.perf_counter()
    # the paper's regime: pre-train on ALL collected photos (every train and val photo, not
    # only the capped training sample), then fine-tune on the target-class training set
    pre_images = [(FASHION / it["image"]).read_bytes() for it in items if it["split"] != "test"]
    init = pretrain_image_encoder(pre_images, base)
    pretrain_s = time.perf_counter() - t_pre
    print(f"pre-trained on {len(pre_images)} photos in {pretrain_s:.0f}s", flush=True)

    image_cfg = base.with_flat(inputs="image", epochs=args.image_epochs)
    record("image, direct", plain, image_cfg.with_flat(pretrain_epochs=0))
    record("image, pretrain+finetune", plain, image_cfg, image_init=init)
    record("title", plain, base.with_flat(inputs="title"))
    record("title+image (joint)", plain, base, image_init=init)
    record("masked title", masked, base.with_flat(inputs="title"))
    for fusion in ("joint", "concat", "late"):
        cfg = base.with_flat(fusion=fusion)
        record(f"masked title+image ({fusion})", masked, cfg, image_init=init)
    half = {k: drop_photos(v, 0.5, args.seed + i) for i, (k, v) in enumerate(masked.items())}
    record("masked title, half photos: title+image (joint)", half, base, image_init=init)
    return {
        "label": args.label,
        "n": {k: len(v) for k, v in plain.items()},
        "classes": len({e.label for e in plain["train"]}),
        "masked_test_titles_with_class_words": leak,
        "pretrain_images": len(pre_images),
        "pretrain_s": pretrain_s,
        "config": base.to_dict(),
        "args": vars(args),
        "results": results,
        "max_rss_mb": max_rss_mb(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--label", default="hs4", choices=["hs4", "label"])
    p.add_argument("--max-train-per-class", type=int, default=200, help="0: all")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--vgg", default="A")
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--image-epochs", type=int, default=8)
    p.add_argument("--pretrain-epochs", type=int, default=4)
    p.add_argument("--finetune-epochs", type=int, default=2)
    p.add_argument("--embed-dim", type=int, default=64)
    p.add_argument("--hidden", type=int, default=96)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--modality-dropout", type=float, default=0.3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--out", type=Path, default=OUT_DIR / "bench_images.json")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    report = run(args)
    report["total_s"] = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    rows = [
        [
            r["experiment"],
            f"{100 * r['top1']:.2f}",
            f"{100 * r['top3']:.2f}",
            f"{r['ece_before']:.3f}",
            f"{r['ece_after']:.3f}",
            f"{r['fit_s']:.0f}",
        ]
        for r in report["results"]
    ]
    print(markdown_table(["experiment", "top1 %", "top3 %", "ECE raw", "ECE cal", "fit s"], rows))
    print(
        f"n={report['n']} classes={report['classes']} pretrain {report['pretrain_s']:.0f}s "
        f"total {report['total_s']:.0f}s; masked test titles still holding a class word: "
        f"{100 * report['masked_test_titles_with_class_words']:.1f}%"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
