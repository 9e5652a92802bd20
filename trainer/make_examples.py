"""Make examples/: public-domain / CC0 photos and content-matched fakes of them from the corpus generators.

    python -m trainer.make_examples --photos <skimage/data> --generators-dir data/corpus/generators --out examples

The photos come from scikit-image's bundled sample data (``pip download scikit-image``, then unzip
``skimage/data``); their licences are listed in examples/README.md. Each photo gives one 256x256
window (the real example) and one fake made from that window, stored the same way (JPEG q90), so the
pair differs only by the generator's traces.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from . import generators

# photo -> generator used for its fake; licences in examples/README.md
PLAN = {"astronaut.png": "realesrgan_x4plus", "chelsea.png": "autogan_convt",
        "coffee.png": "realesrgan_x4plus", "rocket.jpg": "autogan_nearest"}


def centre_window(path: Path, side: int = 256) -> np.ndarray:
    image = np.asarray(Image.open(path).convert("RGB"))
    height, width, _ = image.shape
    top, left = (height - side) // 2, (width - side) // 2
    return np.ascontiguousarray(image[top:top + side, left:left + side])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.make_examples", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, required=True, help="folder holding scikit-image's sample photos")
    parser.add_argument("--generators-dir", type=Path, required=True, help="trained AutoGAN weights (corpus builder)")
    parser.add_argument("--out", type=Path, default=Path("examples"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    made = {}
    for photo, name in PLAN.items():
        if name not in made:
            made[name] = generators.make(name)
            made[name].prepare([], args.generators_dir, args.seed)  # loads the corpus build's weights
        window = centre_window(args.photos / photo)
        stem = Path(photo).stem
        Image.fromarray(window).save(args.out / f"real-{stem}.jpg", quality=90)
        Image.fromarray(made[name](window)).save(args.out / f"fake-{stem}-{name}.jpg", quality=90)
        print(f"{photo}: real-{stem}.jpg, fake-{stem}-{name}.jpg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
