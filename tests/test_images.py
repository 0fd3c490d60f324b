import numpy as np
import pytest
from PIL import Image

from cnnviz.data.images import MAX_SIDE, fit_square, load_image
from cnnviz.errors import ImageLoadError
from conftest import write_image


def test_rgba_is_flattened_on_white(tmp_path):
    p = write_image(tmp_path / "a.png", "RGBA", color=(255, 0, 0, 0))
    assert load_image(p).getpixel((0, 0)) == (255, 255, 255)


def test_palette_with_transparency(tmp_path):
    img = Image.new("P", (8, 8), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.info["transparency"] = 0
    p = tmp_path / "p.png"
    img.save(p, transparency=0)
    assert load_image(p).getpixel((0, 0)) == (255, 255, 255)


def test_la_grayscale_cmyk_16bit(tmp_path):
    assert load_image(write_image(tmp_path / "la.png", "LA", color=(0, 255))).getpixel((0, 0)) == (0, 0, 0)
    assert load_image(write_image(tmp_path / "g.png", "L", color=77)).getpixel((0, 0)) == (77, 77, 77)
    cmyk = load_image(write_image(tmp_path / "c.jpg", "CMYK", color=(0, 255, 255, 0)))
    r, g, b = cmyk.getpixel((0, 0))
    assert r > 200 and g < 60 and b < 60
    arr = np.full((8, 8), 65535 // 2, np.uint16)
    p16 = tmp_path / "16.png"
    Image.fromarray(arr).save(p16)
    assert abs(load_image(p16).getpixel((0, 0))[0] - 127) <= 1


def test_exif_rotation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    p = tmp_path / "rot.jpg"
    img.save(p, exif=exif)
    assert load_image(p).size == (20, 40)


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:])
    r, g, _ = load_image(p).getpixel((0, 0))
    assert r > 200 and g < 50


@pytest.mark.parametrize("content,match", [(b"", "not an image"), (b"hello, I am text", "not an image")])
def test_non_images_are_refused(tmp_path, content, match):
    p = tmp_path / "x.jpg"
    p.write_bytes(content)
    with pytest.raises(ImageLoadError, match=match):
        load_image(p)


def test_truncated_png(tmp_path):
    p = write_image(tmp_path / "t.png", size=(64, 64))
    p.write_bytes(p.read_bytes()[:60])
    with pytest.raises(ImageLoadError, match="t.png"):
        load_image(p)


def test_decompression_bomb_is_refused(tmp_path):
    # A PNG header that declares 30000×30000 pixels: refused before decoding.
    img = Image.new("1", (30000, 30000))
    p = tmp_path / "bomb.png"
    img.save(p, optimize=True)
    assert p.stat().st_size < 1_000_000
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_image(p)


def test_large_image_is_downscaled(tmp_path):
    p = write_image(tmp_path / "big.jpg", size=(5000, 3000))
    img = load_image(p)
    assert max(img.size) <= MAX_SIDE


def test_fit_square_shape_and_range():
    arr = fit_square(Image.new("RGB", (300, 100), (10, 20, 30)), 64)
    assert arr.shape == (64, 64, 3) and arr.dtype == np.float32
    assert arr.min() >= 0 and arr.max() <= 255
