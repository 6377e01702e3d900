"""Drawing detections on images (OpenCV, so pictures, video frames and saved files all look
the same) and showing pictures in a matplotlib window."""
import colorsys
import os

import cv2
import numpy as np

# Sizes relative to the shorter image side, so small and large pictures look alike.
STYLE = dict(
    line_width=1 / 200,          # box outline
    font_scale=1 / 600,          # cv2 Hershey font scale
    min_font_scale=0.35,
    label_padding=2,             # pixels around the label text
    text_dark=(0, 0, 0),         # label text on light label boxes
    text_light=(255, 255, 255),  # label text on dark label boxes
    light_background=150,        # label box luminance above which the text is dark
)
FONT = cv2.FONT_HERSHEY_SIMPLEX
GOLDEN_RATIO_CONJUGATE = 0.618033988749895
# matplotlib backends that cannot open a window
NON_INTERACTIVE_BACKENDS = {'agg', 'cairo', 'pdf', 'pgf', 'ps', 'svg', 'template'}


def class_colour(class_id):
    """A stable, saturated BGR colour per class: hues spaced by the golden ratio, so
    neighbouring ids get clearly different colours."""
    hue = (int(class_id) * GOLDEN_RATIO_CONJUGATE) % 1.0
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(blue * 255), int(green * 255), int(red * 255)


def class_name(class_id, class_names):
    class_id = int(class_id)
    return class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)


def to_pixels(dets, width, height):
    """Detection rows with the box columns scaled from [0, 1] to pixels of a width x height
    image."""
    dets = np.array(dets, np.float32).reshape(-1, 6)
    dets[:, 2:6] *= np.array([width, height, width, height], np.float32)
    return dets


def above_threshold(dets, thresh):
    dets = np.asarray(dets).reshape(-1, 6)
    return dets[dets[:, 1] >= thresh]


def label_text(class_id, score, class_names):
    return '%s %.2f' % (class_name(class_id, class_names), score)


def draw_detections(image, dets, class_names=(), thresh=0.5):
    """A copy of the BGR ``image`` with a box and a "<class> <score>" label for every
    detection row [cls, score, xmin, ymin, xmax, ymax] (normalised) scoring >= ``thresh``.
    Labels go after all boxes, in row order (best first), and never cover one another."""
    canvas = image.copy()
    height, width = canvas.shape[:2]
    side = min(height, width)
    thickness = max(1, int(round(side * STYLE['line_width'])))
    font_scale = max(STYLE['min_font_scale'], side * STYLE['font_scale'])
    rows = to_pixels(above_threshold(dets, thresh), width, height)
    corners = []
    for cls, score, *box in rows:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), class_colour(cls), thickness)  # no AA
        corners.append((x1, y1))
    taken = []
    for (cls, score, *_), corner in zip(rows, corners):
        taken.append(_draw_label(canvas, label_text(cls, score, class_names), corner,
                                 class_colour(cls), font_scale, max(1, thickness // 2), taken))
    return canvas


def label_box(size, corner, image_width, taken=()):
    """(x1, y1, x2, y2) of a label of ``size`` (w, h) for the box whose top-left corner is
    ``corner``: above the corner (below it at the image's top edge), inside the image, moved
    down past the labels already ``taken`` that it would overlap."""
    w, h = size
    x = min(max(corner[0], 0), max(image_width - w, 0))
    top = corner[1] - h if corner[1] - h >= 0 else max(corner[1], 0)
    moved = True
    while moved:
        moved = False
        for tx1, ty1, tx2, ty2 in taken:
            if x < tx2 and tx1 < x + w and top < ty2 and ty1 < top + h:
                top, moved = ty2, True
    return x, top, x + w, top + h


def _draw_label(canvas, text, corner, colour, font_scale, text_thickness, taken=()):
    """Text on a filled box of the class colour (see ``label_box``); returns that box."""
    pad = STYLE['label_padding']
    (text_w, text_h), baseline = cv2.getTextSize(text, FONT, font_scale, text_thickness)
    x, top, right, bottom = label_box((text_w + 2 * pad, text_h + baseline + 2 * pad), corner,
                                      canvas.shape[1], taken)
    cv2.rectangle(canvas, (x, top), (right, bottom), colour, cv2.FILLED)
    blue, green, red = colour
    luminance = 0.299 * red + 0.587 * green + 0.114 * blue
    ink = STYLE['text_dark'] if luminance > STYLE['light_background'] else STYLE['text_light']
    cv2.putText(canvas, text, (x + pad, bottom - baseline - pad), FONT, font_scale, ink,
                text_thickness, cv2.LINE_AA)
    return x, top, right, bottom


def display_available():
    """Whether matplotlib can open a window here (an interactive backend and, on Linux, an X
    or Wayland display)."""
    if os.name == 'posix' and not (os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY')) \
            and not _is_macos():
        return False
    import matplotlib.pyplot as plt
    return plt.get_backend().lower() not in NON_INTERACTIVE_BACKENDS


def _is_macos():
    return os.uname().sysname == 'Darwin'


def show_image(image_bgr, title=None, block=True):
    """Show a BGR image in a matplotlib window (``block=False``: update it and return at
    once, for video)."""
    import matplotlib.pyplot as plt
    plt.figure('mxnet-ssd', clear=True)
    plt.imshow(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
    plt.axis('off')
    if title:
        plt.title(title)
    if block:
        plt.show()
    else:
        plt.pause(0.001)
