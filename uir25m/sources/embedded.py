"""The demo's clean images: scikit-image's PNG-origin colour samples, read from the installed
package (no download). The stereo motorcycle pair is held out together as the test partition,
so no test scene is seen in training."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from uir25m.sources import CleanImage

SOURCE = "skimage"
DEMO_IMAGES: dict[str, str] = {
    "astronaut.png": "train",
    "chelsea.png": "train",
    "coffee.png": "train",
    "ihc.png": "train",
    "motorcycle_left.png": "test",
    "motorcycle_right.png": "test",
}


def data_root() -> Path:
    """scikit-image's data folder."""
    import skimage

    return Path(skimage.__file__).resolve().parent / "data"


def demo_images() -> list[CleanImage]:
    """The demo images with their sizes, sorted by name."""
    root = data_root()
    out = []
    for name, partition in sorted(DEMO_IMAGES.items()):
        path = root / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: scikit-image's sample image is missing; reinstall scikit-image")
        with Image.open(path) as im:
            w, h = im.size
        out.append(CleanImage(SOURCE, str(root), name, partition, w, h))
    return out
