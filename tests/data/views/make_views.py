"""Makes the edited copies that tests/e2e_query_views.sh queries with.

Run once from the repository root (the outputs are committed):
    /usr/bin/python3 tests/data/views/make_views.py
- chelsea_rot90.jpg: data/chelsea.jpg rotated 90 degrees clockwise
- coffee_screenshot.jpg: data/coffee.jpg scaled to 45% of the width of a
  flat grey 1000x750 canvas and pasted near its centre (a screenshot-like copy)
"""
from PIL import Image

OUT = "tests/data/views/"
im = Image.open("data/chelsea.jpg").convert("RGB")
im.transpose(Image.Transpose.ROTATE_270).save(OUT + "chelsea_rot90.jpg", quality=85)

src = Image.open("data/coffee.jpg").convert("RGB")
canvas = Image.new("RGB", (1000, 750), (236, 236, 240))
w = 450
h = round(src.height * w / src.width)
canvas.paste(src.resize((w, h), Image.Resampling.LANCZOS), (290, 210))
canvas.save(OUT + "coffee_screenshot.jpg", quality=85)
