"""Draws docs/course.md's pictures again: one a chapter, each what `tinyformer exercises draw N`
shows a learner whose file holds the reference solution (about ten seconds).

    python docs/make_course_pictures.py          from the repository root
"""

import sys
import tempfile
from pathlib import Path

from tinyformer.exercises import find
from tinyformer.exercises.pictures import draw

# The exercise whose picture stands for each chapter, in chapter order.
CHAPTER_PICTURES = ["table_lookup", "markov_first_order", "attention_as_matmul", "scalar_engine",
                    "sinusoidal_positions", "scaled_dot_product", "feed_forward",
                    "warmup_schedule", "temperature_top_k", "bpe_train", "induction_head",
                    "padding_mask", "attention_masks", "your_gpt", "induction_scores"]

OUT = Path(__file__).resolve().parent / "images" / "course"


def picture_path(ex):
    return OUT / f"ch{ex.chapter:02d}_{ex.slug}.png"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for slug in CHAPTER_PICTURES:
            ex = find(slug)
            solved = Path(tmp) / Path(ex.file).name
            solved.write_text(ex.solved_text())
            message = draw(ex, solved, picture_path(ex))
            if message is not None:
                sys.exit(f"{slug}: {message}")
            print(picture_path(ex).relative_to(OUT.parent.parent.parent))


if __name__ == "__main__":
    main()
