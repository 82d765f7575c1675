"""Image corpora for distillation: shards of images, streamed through the one image path.

A corpus is a list of **shards**, each a unit of shuffling, smoothing and checkpointing
(SYSTEM.md §9: upstream's 24 ``large_zip<k>.zip`` files of 500,000 JPEGs each):

- a ``.zip`` of images (upstream's shards, the release's session zips ``images_<id>.zip``);
- a ``.tar`` of images (a WebDataset shard: ``<key>.jpg`` members; other members ignored);
- a folder of image files (:data:`~v4compact.models.inputs.IMAGE_EXTENSIONS`);
- a folder holding zips / tars: each archive is a shard (e.g. the data copy's
  ``data_V4_responses/images`` folder, or a folder of upstream's shards).

Images are read in name order; decoding goes through
:func:`~v4compact.models.inputs.as_image_batch` (the one image path: mode conversion, EXIF,
centre-crop and bicubic resize of other sizes to 112x112; 112x112 JPEGs pass through
bit-identical to :class:`~v4compact.data.zipimages.ZipImages`).

**Held-out images of recorded neurons are excluded by default**: in a session zip of a test
session (recognised by its name ``images_<session>.zip``), the held-out half
(:meth:`~v4compact.data.session.Session.heldout_split`, the second half) is left out, so a
student is never trained on the images its neuron is evaluated on.

:func:`batch_plan` shuffles each shard with a seed derived from ``(seed, pass, shard)`` and
cuts it into global batches; under ``torchrun`` each rank takes its part of every global
batch (:func:`rank_part`), so 1 and N processes see the same global batches.
:func:`image_loader` streams them with a :class:`torch.utils.data.DataLoader` whose workers
read and decode (the training process only computes).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..errors import CorruptDataError, DataNotFoundError, InvalidInputError
from ..images import IMAGE_SIZE
from ..models.inputs import IMAGE_EXTENSIONS, as_image_batch
from .augment import Augmentation, FunctionMatching

__all__ = [
    "HOLDOUT_RULE",
    "Augmentation",
    "FunctionMatching",
    "HoldoutRule",
    "ImageCorpus",
    "Shard",
    "batch_plan",
    "decode_image",
    "image_loader",
    "open_corpus",
    "rank_part",
    "reopen_corpus",
    "steps_per_pass",
]

#: A session zip of the release: ``images_<six-digit session id>.zip``.
SESSION_ZIP = re.compile(r"^images_(\d{6})\.zip$")
_ARCHIVES = (".zip", ".tar")


class Shard:
    """One archive or folder of images, read by member name.

    Args:
        path: a ``.zip``, a ``.tar`` or a folder of image files.

    Attributes:
        path: as given (resolved).
        kind: ``"zip"``, ``"tar"`` or ``"folder"``.
        names: the image members (or file names), in name order.
        session_id: the recording session whose images these are (``images_<id>.zip``),
            else ``None``.

    Raises:
        DataNotFoundError: the path does not exist.
        CorruptDataError: an unreadable archive.
        InvalidInputError: no images in it.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser().resolve()
        if not self.path.exists():
            raise DataNotFoundError(f"image shard {self.path} not found; give a .zip, .tar or "
                                    "a folder of images")
        match = SESSION_ZIP.match(self.path.name)
        self.session_id = int(match.group(1)) if match else None
        if self.path.is_dir():
            self.kind = "folder"
            names = [p.name for p in self.path.iterdir()
                     if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
        elif self.path.suffix.lower() == ".zip":
            self.kind = "zip"
            try:
                with zipfile.ZipFile(self.path) as archive:
                    names = [i.filename for i in archive.infolist() if _is_image(i.filename)]
            except (zipfile.BadZipFile, OSError) as err:
                raise CorruptDataError(f"{self.path} is not a readable zip ({err}); fetch or "
                                       "copy it again") from None
        elif self.path.suffix.lower() == ".tar":
            self.kind = "tar"
            try:
                with tarfile.open(self.path) as archive:
                    names = [m.name for m in archive.getmembers()
                             if m.isfile() and _is_image(m.name)]
            except (tarfile.TarError, OSError) as err:
                raise CorruptDataError(f"{self.path} is not a readable tar ({err}); fetch or "
                                       "copy it again") from None
        else:
            raise InvalidInputError(f"{self.path.name}: not an image shard; give a .zip, .tar "
                                    "or a folder of images")
        if not names:
            raise InvalidInputError(f"{self.path} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        self.names = tuple(sorted(names))
        self._handle = None
        self._handle_pid = None
        self._tar_members: dict | None = None

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"Shard({str(self.path)!r}, kind={self.kind!r}, images={len(self)})"

    def __getstate__(self) -> dict:  # open handles stay in the process that opened them
        state = dict(self.__dict__)
        state.update(_handle=None, _handle_pid=None, _tar_members=None)
        return state

    @cached_property
    def key(self) -> str:
        """Identity of the shard's content for caches: name, size in bytes and image count."""
        size = sum(p.stat().st_size for p in (self.path / n for n in self.names)) \
            if self.kind == "folder" else self.path.stat().st_size
        digest = hashlib.sha1(f"{self.path.name}|{size}|{len(self)}".encode()).hexdigest()[:12]
        return f"{_slug(self.path.stem)}-{digest}"

    def read_bytes(self, index: int) -> bytes:
        """The encoded bytes of image ``index`` (one open handle per process)."""
        name = self.names[index]
        if self.kind == "folder":
            return (self.path / name).read_bytes()
        if self._handle is None or self._handle_pid != os.getpid():
            self._handle = zipfile.ZipFile(self.path) if self.kind == "zip" \
                else tarfile.open(self.path)
            self._handle_pid = os.getpid()
            if self.kind == "tar":
                self._tar_members = {m.name: m for m in self._handle.getmembers()}
        if self.kind == "zip":
            return self._handle.read(name)
        return self._handle.extractfile(self._tar_members[name]).read()

    def image(self, index: int) -> np.ndarray:
        """Image ``index`` as uint8 ``(112, 112, 3)`` (see :func:`decode_image`)."""
        return decode_image(self.read_bytes(index), f"{self.path.name}:{self.names[index]}")


def _is_image(name: str) -> bool:
    return not name.endswith("/") and Path(name).suffix.lower() in IMAGE_EXTENSIONS


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:40] or "shard"


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Encoded image bytes -> uint8 ``(112, 112, 3)`` through the one image path.

    Raises:
        CorruptDataError: the bytes are not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            batch = as_image_batch(image, warn=False)
    except (UnidentifiedImageError, OSError, InvalidInputError) as err:
        raise CorruptDataError(f"cannot decode {name} ({err}); replace or drop the file") \
            from None
    if batch.dtype != np.uint8:  # 16-bit or float images: round to the 0-255 scale
        batch = np.clip(np.rint(batch), 0, 255).astype(np.uint8)
    return batch[0]


@dataclass(frozen=True)
class HoldoutRule:
    """How many corpus images to hold out for fidelity and pruning statistics.

    ``count(n) = min(cap, max(round(fraction * n), min(floor, int(max_share * n))))``: a
    tenth of the corpus, at least ``floor`` images where that stays within ``max_share`` of
    the corpus, at most ``cap`` (upstream's 5,000 held-out images of a 12M-image corpus).
    200 images -> 40; 1,200 -> 200; 12,000 -> 1,200; 12M -> 5,000. So at most a fifth of a
    small corpus is held out (the rest is trained on), and never more than 5,000 images.

    Attributes:
        fraction: the share held out of a mid-sized corpus.
        floor: the smallest hold-out, where ``max_share`` allows it.
        cap: the largest hold-out.
        max_share: the largest share of the corpus the floor may take.
    """

    fraction: float = 0.1
    floor: int = 200
    cap: int = 5000
    max_share: float = 0.2

    def count(self, num_images: int) -> int:
        """Held-out images for a corpus of ``num_images``."""
        num_images = int(num_images)
        wanted = max(round(self.fraction * num_images),
                     min(self.floor, int(self.max_share * num_images)))
        return int(min(self.cap, wanted, max(num_images - 1, 0)))


#: The rule used when a distillation's ``holdout_images`` is ``None`` (the default).
HOLDOUT_RULE = HoldoutRule()


@dataclass(frozen=True)
class ImageCorpus:
    """Shards and, per shard, the image indices in use.

    Build one with :func:`open_corpus`; :meth:`split_holdout` sets images aside for fidelity
    and pruning statistics.

    Attributes:
        shards: the :class:`Shard` objects.
        indices: per shard, int64 sorted indices of the images in use.
        excluded: per shard, how many images were left out as held-out session images.
        options: the :func:`open_corpus` options that chose the images (to reopen it).
    """

    shards: tuple[Shard, ...]
    indices: tuple[np.ndarray, ...]
    excluded: tuple[int, ...]
    options: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(sum(len(i) for i in self.indices))

    def __repr__(self) -> str:
        return f"ImageCorpus({len(self.shards)} shards, {len(self)} images)"

    def split_holdout(self, num_images: int, seed: int = 0) -> tuple[ImageCorpus, ImageCorpus]:
        """Set ``num_images`` images aside (drawn uniformly over the corpus with ``seed``).

        Returns:
            ``(train, holdout)``: the same shards with disjoint index sets.

        Raises:
            InvalidInputError: ``num_images`` is negative or leaves no training image.
        """
        total = len(self)
        if not 0 <= num_images < total:
            raise InvalidInputError(f"cannot hold out {num_images} of {total} corpus images; "
                                    f"choose 0 to {total - 1}")
        chosen = np.zeros(total, dtype=bool)
        chosen[np.random.default_rng(seed).choice(total, num_images, replace=False)] = True
        train, held, start = [], [], 0
        for idx in self.indices:
            mask = chosen[start:start + len(idx)]
            train.append(idx[~mask])
            held.append(idx[mask])
            start += len(idx)
        return (ImageCorpus(self.shards, tuple(train), self.excluded, self.options),
                ImageCorpus(self.shards, tuple(held), self.excluded, self.options))

    def images(self) -> np.ndarray:
        """Every image in use, uint8 ``(N, 112, 112, 3)`` (shard order; for small sets)."""
        out = np.empty((len(self), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        k = 0
        for shard, idx in zip(self.shards, self.indices, strict=True):
            for i in idx:
                out[k] = shard.image(int(i))
                k += 1
        return out

    def positions(self) -> list[tuple[int, int]]:
        """``(shard number, image index)`` of every image in use, in shard order."""
        return [(s, int(i)) for s, idx in enumerate(self.indices) for i in idx]

    def describe(self) -> dict:
        """A JSON-ready description (for provenance): shards, images used, exclusions."""
        return {"images": len(self), "options": dict(self.options), "shards": [
            {"path": str(s.path), "kind": s.kind, "images": len(s), "used": len(i),
             "excluded_heldout": e, "session": s.session_id}
            for s, i, e in zip(self.shards, self.indices, self.excluded, strict=True)]}


def _expand(path: Path) -> list[Path]:
    """A folder of archives -> its archives; anything else -> itself."""
    if path.is_dir():
        archives = sorted(p for p in path.iterdir()
                          if p.is_file() and p.suffix.lower() in _ARCHIVES)
        if archives:
            return archives
    return [path]


def open_corpus(paths: str | os.PathLike | Sequence[str | os.PathLike],
                exclude_heldout: bool = True,
                data_dir: str | os.PathLike | None = None,
                max_images_per_shard: int | None = None, seed: int = 0) -> ImageCorpus:
    """Open image shards as one corpus.

    Args:
        paths: one or more ``.zip`` / ``.tar`` files, folders of images, or folders of
            archives (each archive a shard).
        exclude_heldout: leave out the held-out half of every test session's zip
            (``images_<session>.zip``): the images its neurons are evaluated on.
        data_dir: data directory of the session catalogue and responses (for the held-out
            convention of session zips).
        max_images_per_shard: use at most this many images of each shard (a random subset
            drawn with ``seed``, after the exclusion); ``None``: all.
        seed: seed of that subset.

    Returns:
        The :class:`ImageCorpus`, shards in the order given (archives of a folder in name
        order).

    Raises:
        DataNotFoundError, CorruptDataError, InvalidInputError: as :class:`Shard`; also a
            session zip whose image count differs from the catalogue's.
    """
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    if not items:
        raise InvalidInputError("no image paths given; pass zips, tars or folders of images")
    shards = [Shard(p) for item in items for p in _expand(Path(item).expanduser())]
    seen = set()
    indices, excluded = [], []
    for shard in shards:
        if shard.path in seen:
            raise InvalidInputError(f"{shard.path} given twice; give each shard once")
        seen.add(shard.path)
        keep = np.arange(len(shard), dtype=np.int64)
        dropped = 0
        if exclude_heldout and shard.session_id is not None:
            held = _heldout_indices(shard, data_dir)
            keep = np.setdiff1d(keep, held)
            dropped = len(held)
        if max_images_per_shard is not None and len(keep) > max_images_per_shard:
            rng = np.random.default_rng([int(seed), len(indices)])
            keep = np.sort(rng.choice(keep, int(max_images_per_shard), replace=False))
        indices.append(keep)
        excluded.append(dropped)
    options = {"exclude_heldout": exclude_heldout, "max_images_per_shard": max_images_per_shard,
               "seed": seed}
    return ImageCorpus(tuple(shards), tuple(indices), tuple(excluded), options)


def reopen_corpus(description: dict, data_dir: str | os.PathLike | None = None) -> ImageCorpus:
    """The corpus an :meth:`ImageCorpus.describe` dict describes (same shards and images)."""
    return open_corpus([s["path"] for s in description["shards"]], data_dir=data_dir,
                       **description.get("options", {}))


def _heldout_indices(shard: Shard, data_dir) -> np.ndarray:
    """The held-out half of a test session's zip (empty for other sessions)."""
    from ..data.catalog import session_info
    from ..data.session import load_session
    from ..errors import UnknownSessionError

    try:
        info = session_info(shard.session_id)
    except UnknownSessionError:
        return np.empty(0, dtype=np.int64)
    if info.split != "test":
        return np.empty(0, dtype=np.int64)
    if len(shard) != info.num_images:
        raise CorruptDataError(f"{shard.path.name} holds {len(shard)} images but session "
                               f"{info.session_id} has {info.num_images}; fetch it again")
    return load_session(info.session_id, data_dir).heldout_split()[1]


# -- batches ----------------------------------------------------------------------------------
def _shard_seed(seed: int, pass_index: int, shard_index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(pass_index), int(shard_index)])


def batch_plan(corpus: ImageCorpus, shard_index: int, pass_index: int, batch_size: int,
               seed: int, shuffle: bool = True) -> list[np.ndarray]:
    """The global batches of one shard, in training order.

    The shard's images in use are shuffled with a generator seeded by
    ``(seed, pass_index, shard_index)`` and cut into batches of ``batch_size`` (the last one
    smaller). Under ``torchrun`` each rank takes :func:`rank_part` of every batch.

    Returns:
        int64 image indices within the shard, one array per batch.
    """
    indices = corpus.indices[shard_index]
    order = _shard_seed(seed, pass_index, shard_index).permutation(indices) if shuffle \
        else indices
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def steps_per_pass(corpus: ImageCorpus, batch_size: int) -> int:
    """Optimizer steps of one pass over ``corpus``: every shard is cut into batches of its
    own (:func:`batch_plan`), so a shard's last batch may be smaller."""
    return int(sum(-(-len(indices) // batch_size) for indices in corpus.indices))


def rank_part(batch: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """Rank ``rank``'s share of a global batch: the ``rank``-th of ``world_size`` near-equal
    contiguous parts (empty when the batch has fewer images than processes)."""
    return np.array_split(batch, world_size)[rank]


class _ShardImages:
    """Map-style dataset: ``(shard, index)`` -> (uint8 image, shard, index)."""

    def __init__(self, corpus: ImageCorpus, pass_index: int,
                 augmentation: Augmentation | FunctionMatching | None) -> None:
        self.corpus = corpus
        self.pass_index = pass_index
        self.augmentation = augmentation

    def __getitem__(self, key: tuple[int, int]):
        shard_index, index = key
        shard = self.corpus.shards[shard_index]
        if self.augmentation is None:
            image = shard.image(index)
        else:  # the pool of partners (function matching): this shard's images in use
            image = self.augmentation.augment(shard.image, self.corpus.indices[shard_index],
                                              self.pass_index, shard_index, index)
        return image, shard_index, index


def image_loader(corpus: ImageCorpus, batches: Sequence[tuple[int, np.ndarray]],
                 pass_index: int = 0, num_workers: int = 0,
                 augmentation: Augmentation | FunctionMatching | None = None) -> Iterator:
    """Stream batches of decoded images.

    Args:
        corpus: the corpus.
        batches: ``(shard number, image indices)`` per batch, in order (e.g. from
            :func:`batch_plan`); empty batches are skipped.
        pass_index: the pass (seeds the augmentation).
        num_workers: decoding processes (0: decode in this process).
        augmentation: applied to every image (:mod:`~v4compact.training.augment`), or
            ``None``.

    Yields:
        ``(images, shard, indices)``: uint8 tensor ``(n, 112, 112, 3)``, the shard number
        and an int64 tensor of image indices within the shard.
    """
    import torch
    from torch.utils.data import DataLoader

    keys = [[(shard, int(i)) for i in idx] for shard, idx in batches if len(idx)]
    if not keys:
        return
    loader = DataLoader(_ShardImages(corpus, pass_index, augmentation), batch_sampler=keys,
                        num_workers=num_workers, collate_fn=_collate,
                        prefetch_factor=4 if num_workers else None,
                        persistent_workers=False)
    for images, shards, indices in loader:
        yield images, int(shards[0]), torch.as_tensor(indices)


def _collate(items):
    import torch

    images = torch.from_numpy(np.stack([item[0] for item in items]))
    return images, [item[1] for item in items], [item[2] for item in items]
