"""What a picture's test checks of a matplotlib figure, shared by the picture tests."""

import numpy as np
from matplotlib.text import Text


def assert_every_text_inside(figure):
    """Every visible text of `figure` (titles, labels, ticks, colour bars) lies within it, laid
    out as saving it lays it out: none cut off at an edge. (Laid out, not painted: where the
    texts go is all this reads, and the pixels were a good part of the time.)"""
    figure.draw_without_rendering()
    width, height = figure.bbox.width, figure.bbox.height
    for text in figure.findobj(Text):
        if text.get_visible() and text.get_text():
            box = text.get_window_extent()
            assert 0 <= box.x0 and box.x1 <= width and 0 <= box.y0 and box.y1 <= height, \
                text.get_text()



def drawn_colours(ax, points):
    """The colours ("#rrggbb") that the figure of `ax` draws at `points`, (x, y) in its data's
    coordinates (for an image, column x and row y), as its picture shows them."""
    figure = ax.figure
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())
    colours = []
    for column, row in ax.transData.transform(points):
        r, g, b, _ = pixels[int(pixels.shape[0] - row), int(column)]
        colours.append(f"#{r:02x}{g:02x}{b:02x}")
    return colours
