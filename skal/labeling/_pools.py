"""Pools to label by hand: the rows a learner sees, their stable ids, and how each row is shown
to a person (an image, CSV fields or a line of text), read from a folder of PNG/JPEG files, a
``.npy`` image array, an MNIST folder, a CSV file or a text file."""

import base64
import csv
import io
import os

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
KINDS = ("image", "fields", "text")
_MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_MNIST_STEMS = ("t10k-images-idx3-ubyte", "train-images-idx3-ubyte")


class Pool:
    """The rows to label and what a person sees of each.

    Build one with :func:`load_pool` (from a file or folder) or :func:`pool_from_images`
    (from arrays in memory).

    Parameters
    ----------
    X : array-like or sparse matrix of shape (n_samples, n_features)
        What the learner is trained on.
    sample_ids : list of str
        One stable id per row.
    kind : {"image", "fields", "text"}
        How rows are shown.
    items : sequence
        Per row what is shown: an image array of shape ``(n_samples, height, width)`` or
        ``(n_samples, height, width, channels)``, or relative file names under ``root``
        (``kind="image"``); a list of field values per row (``"fields"``); a string per
        row (``"text"``).
    root : str, default=None
        The folder of the image files; nothing outside it is ever read.
    field_names : list of str, default=None
        The names of the fields (``kind="fields"``).
    """

    def __init__(self, X, sample_ids, kind, items, root=None, field_names=None):
        self.X = X
        self.sample_ids = sample_ids
        self.kind = kind
        self.items = items
        self.root = root
        self.field_names = field_names

    def __len__(self):
        return len(self.sample_ids)

    def payload(self, index):
        """What the web page shows of row ``index``, as JSON-able data (image files by URL,
        image arrays as PNG data URLs)."""
        if self.kind == "image" and self.root is None:
            # Small images travel inside the answer: no second request before showing them.
            data = base64.b64encode(encode_png(self.items[index])).decode("ascii")
            return {"kind": "image", "image": f"data:image/png;base64,{data}"}
        if self.kind == "image":
            return {"kind": "image", "image": f"api/image/{index}"}
        if self.kind == "text":
            return {"kind": "text", "text": self.items[index]}
        values = self.items[index]
        return {"kind": "fields",
                "fields": [[str(n), str(v)] for n, v in zip(self.field_names, values,
                                                             strict=False)]}

    def image(self, index):
        """``(bytes, media_type)`` of row ``index``'s image.

        A file is read only if it still lies inside ``root`` once links are resolved;
        otherwise (a file swapped for a link out of the folder) a ``FileNotFoundError``.
        """
        if self.kind != "image":
            raise FileNotFoundError("This pool holds no images.")
        if self.root is None:
            return encode_png(self.items[index]), "image/png"
        root = os.path.realpath(self.root)
        path = os.path.realpath(os.path.join(root, self.items[index]))
        if os.path.commonpath([root, path]) != root or not os.path.isfile(path):
            raise FileNotFoundError(f"{self.items[index]!r} is not a file in the pool folder.")
        with open(path, "rb") as handle:
            data = handle.read()
        return data, _MEDIA_TYPES[os.path.splitext(path)[1].lower()]

    def text(self, index):
        """A plain-text rendering of row ``index`` (the terminal's view)."""
        if self.kind == "text":
            return "  " + self.items[index]
        if self.kind == "fields":
            return "\n".join(f"  {name:>16} : {value}"
                             for name, value in zip(self.field_names, self.items[index],
                                                    strict=False))
        return f"  image {self.items[index] if self.root else index}"


def encode_png(image):
    """PNG bytes of a 2-d (gray) or 3-d (height, width, 1/3/4 channels) array.

    Unsigned 8-bit images are kept as they are; any other is scaled from its own minimum and
    maximum to 0-255.
    """
    from PIL import Image

    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.dtype != np.uint8:
        image = image.astype(np.float64)
        low, high = float(np.min(image)), float(np.max(image))
        image = ((image - low) * (255.0 / ((high - low) or 1.0))).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _check_images(images, name="images"):
    images = np.asarray(images)
    if images.dtype.kind not in "uif":
        raise TypeError(f"{name} must be a numeric array, got dtype {images.dtype}.")
    if images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3, 4):
        images = np.moveaxis(images, 1, -1)  # (n, channels, h, w), torch's layout
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] in (1, 3, 4))):
        raise ValueError(
            f"{name} must have shape (n_samples, height, width) or (n_samples, height, width, "
            f"channels) with 1, 3 or 4 channels; got shape {images.shape}."
        )
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 images): there is nothing to label.")
    return images


def pool_from_images(images, X=None, sample_ids=None):
    """A pool of images held in memory (e.g. MNIST), shown as images.

    Parameters
    ----------
    images : ndarray of shape (n_samples, height, width) or (n_samples, height, width, channels)
        Also ``(n_samples, channels, height, width)`` with 1 or 3 channels.
    X : array-like of shape (n_samples, n_features), default=None
        The learner's input; ``None`` uses the flattened pixels (as float64).
    sample_ids : sequence of str or int, default=None
        ``None`` uses the row numbers.

    Returns
    -------
    pool : Pool
    """
    images = _check_images(images)
    n = images.shape[0]
    if X is None:
        X = images.reshape(n, -1).astype(np.float64)
    elif len(X) != n:
        raise ValueError(f"X has {len(X)} rows for {n} images.")
    ids = [str(i) for i in range(n)] if sample_ids is None else [str(s) for s in sample_ids]
    if len(ids) != n:
        raise ValueError(f"sample_ids has {len(ids)} ids for {n} images.")
    return Pool(X, ids, "image", images)


def load_pool(path, id_column=None, image_size=32):
    """Read a pool from a file or folder; the format follows from what ``path`` is.

    A folder of PNG/JPEG files (searched recursively; ids are the paths relative to the
    folder; features are the pixels after resizing to ``image_size`` squared), a folder of
    MNIST IDX files (read by :func:`skal.datasets.load_mnist_idx`), a ``.npy`` array (one
    sample per row; 3-d or 4-d arrays are images), a CSV file with a header (numeric columns
    are the features, every field is shown), or a ``.txt`` file (one sample per non-empty
    line, hashed words as features).

    Parameters
    ----------
    path : str or path-like
    id_column : str, default=None
        CSV column of stable ids (default: ``id`` if there is one, else the row number).
    image_size : int, default=32
        Side of the square the images of a folder are resized to for the features.

    Returns
    -------
    pool : Pool
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No pool file or folder at {path!r}.")
    if os.path.isdir(path):
        for stem in _MNIST_STEMS:
            if any(os.path.exists(os.path.join(path, stem + ext)) for ext in ("", ".gz")):
                return _mnist_pool(path, stem.split("-")[0])
        return _folder_pool(path, image_size)
    extension = os.path.splitext(path)[1].lower()
    if extension == ".npy":
        return _npy_pool(path)
    if extension == ".txt":
        return _text_pool(path)
    return _csv_pool(path, id_column)


def _mnist_pool(path, kind):
    from skal.datasets import load_mnist_idx

    X, _ = load_mnist_idx(path, kind=kind)
    return pool_from_images(X.reshape(-1, 28, 28), X=X)


def _npy_pool(path):
    data = np.load(path, allow_pickle=False)
    if data.ndim < 2:
        raise ValueError(f"{path!r} must hold one sample per row (ndim >= 2).")
    if data.shape[0] == 0:
        raise ValueError(f"The pool is empty: {path!r} has 0 rows.")
    X = data.reshape(data.shape[0], -1).astype(np.float64)
    if data.ndim >= 3:
        return pool_from_images(data, X=X)
    names = [f"x{j}" for j in range(data.shape[1])]
    return Pool(X, [str(i) for i in range(data.shape[0])], "fields",
                [[f"{v:.4g}" for v in row[:50]] for row in data], field_names=names)


def _folder_pool(path, image_size):
    from PIL import Image

    if not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}.")
    root = os.path.realpath(path)
    files = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            full = os.path.realpath(os.path.join(folder, name))
            # A link out of the folder is left out: nothing outside it is ever served.
            if os.path.commonpath([root, full]) == root and os.path.isfile(full):
                files.append(os.path.relpath(os.path.join(folder, name), root))
    if not files:
        raise ValueError(
            f"The folder {path!r} holds no PNG or JPEG images (nor MNIST IDX files)."
        )
    pixels = []
    for name in files:
        try:
            with Image.open(os.path.join(root, name)) as image:
                small = image.convert("RGB").resize((image_size, image_size))
                pixels.append(np.asarray(small, dtype=np.float64) / 255.0)
        except OSError as exc:
            raise ValueError(f"Cannot read the image {name!r} in {path!r}: {exc}") from exc
    pixels = np.stack(pixels)
    if np.ptp(pixels, axis=-1).max() == 0:  # every image is gray: one channel is enough
        pixels = pixels[..., 0]
    ids = [name.replace(os.sep, "/") for name in files]
    return Pool(pixels.reshape(len(files), -1), ids, "image", files, root=root)


def _text_pool(path):
    from sklearn.feature_extraction.text import HashingVectorizer

    with open(path, encoding="utf-8") as handle:
        lines = [line.rstrip("\r\n") for line in handle]
    numbered = [(i, line) for i, line in enumerate(lines) if line.strip()]
    if not numbered:
        raise ValueError(f"The pool is empty: {path!r} has no non-empty line.")
    # Hashing needs no fitted vocabulary, so the features (and the journal's fingerprint)
    # depend on the file alone.
    vectorizer = HashingVectorizer(n_features=2**12, alternate_sign=False)
    X = vectorizer.transform([line for _, line in numbered])
    return Pool(X, [str(i) for i, _ in numbered], "text", [line for _, line in numbered])


def read_csv(path):
    """``(header, rows)`` of a CSV file with a header; empty lines are left out."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise ValueError(f"{path!r} is empty; a CSV pool needs a header and rows.")
    return rows[0], [r for r in rows[1:] if r]


def _csv_pool(path, id_column):
    return csv_pool(*read_csv(path), id_column, path)


def csv_pool(header, body, id_column=None, path="the CSV file"):
    """A pool of CSV rows: the numeric columns (but the id column) are the features and
    every field is shown."""
    if not body:
        raise ValueError(f"The pool is empty: {path!r} has a header but no rows.")
    if id_column is None and "id" in header:
        id_column = "id"
    if id_column is not None and id_column not in header:
        raise ValueError(f"--id-column {id_column!r} is not a column of {path!r}: {header}.")
    id_at = None if id_column is None else header.index(id_column)
    numeric = []
    for j in range(len(header)):
        if j == id_at:
            continue
        try:
            [float(r[j]) for r in body]
        except (ValueError, IndexError):
            continue
        numeric.append(j)
    if not numeric:
        raise ValueError(f"{path!r} has no numeric column to learn from.")
    X = np.array([[float(r[j]) for j in numeric] for r in body]).reshape(len(body), -1)
    ids = [r[id_at] for r in body] if id_at is not None else [str(i) for i in range(len(body))]
    return Pool(X, ids, "fields", body, field_names=header)
