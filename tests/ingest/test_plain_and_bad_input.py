"""Plain-file import (images + .npy / .csv / HDF5) and every bad input tried: one line naming
the file and the fix, and nothing written. docs/datasets.md shows the same table."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from v4compact import import_session
from v4compact.errors import InvalidInputError
from v4compact.ingest import SessionImportWarning

DOCS = Path(__file__).resolve().parents[2] / "docs" / "datasets.md"


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".h5"])
def test_plain_files_in_each_format(suffix, small_plain, tmp_path):
    folder, raw, pixels = small_plain
    averaged = np.nanmean(raw, axis=2)
    path = tmp_path / f"responses{suffix}"
    if suffix == ".npy":
        np.save(path, raw)
    elif suffix == ".csv":
        np.savetxt(path, averaged, delimiter=",", fmt="%.17g")
    else:
        with h5py.File(path, "w") as fh:
            fh["responses"] = raw
            fh["meta/other"] = np.arange(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SessionImportWarning)
        session = import_session(folder, "plain:s", responses=path, area="V1",
                                 out=tmp_path / "ds")
    assert np.array_equal(np.asarray(session.images), pixels)
    if suffix == ".csv":
        assert not session.has_raw_responses
        np.testing.assert_array_equal(session.responses, averaged)
    else:
        assert np.array_equal(session.raw_responses, raw, equal_nan=True)
        assert session.snr().shape == (50,)
    assert [n.area for n in session.neurons] == ["V1"] * 50
    assert [m.name for m in session.image_metadata] == [f"img{i:02d}.png" for i in range(20)]


def test_zip_with_an_order_file_and_an_explicit_split(small_plain, tmp_path):
    import zipfile

    folder, raw, pixels = small_plain
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, f"stim/{p.name}")
    order = list(range(19, -1, -1))  # the response columns are in reverse name order
    (tmp_path / "order.txt").write_text("".join(f"img{i:02d}.png\n" for i in order))
    (tmp_path / "heldout.txt").write_text("img00.png\nimg05.png\n3\n7\n9\n")
    np.save(tmp_path / "r.npy", raw[:, order])
    session = import_session(archive, "plain:zip", responses=tmp_path / "r.npy",
                             order=tmp_path / "order.txt", heldout=tmp_path / "heldout.txt",
                             out=tmp_path / "ds")
    assert np.array_equal(np.asarray(session.images), pixels[order])
    fit, held = session.heldout_split()
    names = [Path(session.image_metadata[i].name).name for i in held]  # zip member names
    # names name images; numbers are response columns (3, 7, 9 -> images 16, 12, 10)
    assert sorted(names) == ["img00.png", "img05.png", "img10.png", "img12.png", "img16.png"]
    assert session.manifest["split_rule"] == "explicit"
    assert len(fit) == 15


# -- bad input ---------------------------------------------------------------------------------
def _nwb_without_presentations(tmp: Path) -> Path:
    import datetime

    import pynwb

    nwb = pynwb.NWBFile(session_description="units only", identifier="x",
                        session_start_time=datetime.datetime(2024, 1, 1,
                                                             tzinfo=datetime.UTC))
    nwb.add_unit(spike_times=[0.1, 0.2])
    path = tmp / "units_only.nwb"
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def _external_nwb(tmp: Path, session) -> Path:
    from v4compact.ingest.rawform import write_spike_nwb

    return write_spike_nwb(session, tmp / "external.nwb", layout="external")


def _plain_case(tmp: Path, small_plain, change):
    """Write images + responses, let ``change`` spoil one thing; return the import kwargs."""
    from PIL import Image

    folder, raw, pixels = small_plain
    images = tmp / "images"
    images.mkdir()
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(images / f"img{i:02d}.png")
    array = raw.copy()
    kwargs = {"source": images, "responses": tmp / "r.npy"}
    array = change(images, array, kwargs) if change else array
    if array is not None:
        np.save(tmp / "r.npy", array)
    return kwargs


def _set(array, index, value):
    array[index] = value
    return array


def _write(path: Path, text: str | bytes) -> Path:
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


#: (what is wrong, how to spoil a good plain import or build the source, expected message)
BAD_INPUTS = [
    ("source does not exist", lambda i, a, k: k.update(source=i.parent / "nope") or a,
     "<tmp>/nope not found; give an .nwb file, or a folder / zip of images with --responses "
     "FILE"),
    ("images folder without --responses", lambda i, a, k: k.pop("responses") and a,
     "<tmp>/images is not an .nwb file; for plain files give the responses too: v4compact "
     "data import <tmp>/images --responses FILE --name bad:s"),
    ("responses file missing", lambda i, a, k: k.update(responses=i.parent / "x.npy") or a,
     "responses <tmp>/x.npy not found; give the file with --responses"),
    ("responses in an unknown format",
     lambda i, a, k: k.update(responses=_write(i.parent / "r.txt", "1 2")) or a,
     "<tmp>/r.txt: responses must be .npy, .csv, .h5, .hdf5; convert the file"),
    ("CSV with a header row",
     lambda i, a, k: k.update(responses=_write(i.parent / "r.csv", "a,b\n1,2\n")) or a,
     "<tmp>/r.csv is not a readable numeric .csv file"),
    ("responses 1-d", lambda i, a, k: a[0, :, 0],
     "<tmp>/r.npy has shape (20,); write (neurons, images) or (neurons, images, repeats)"),
    ("HDF5 with several datasets, none named responses",
     lambda i, a, k: k.update(responses=_h5(i.parent / "r.h5", a)) or a,
     "<tmp>/r.h5 holds 2 datasets (a, b); name the responses with --responses-key"),
    ("one response column fewer than images", lambda i, a, k: a[:, :19],
     "<tmp>/r.npy with images <tmp>/images: responses have 19 images (columns) but 20 images "
     "were found; give one response column per image (or an order file)"),
    ("NaN in averaged responses", lambda i, a, k: _set(np.nanmean(a, axis=2), (3, 4), np.nan),
     "<tmp>/r.npy with images <tmp>/images: averaged responses hold NaN or inf (neuron 3, "
     "image 4); remove that neuron or image, or give single repeats (NaN marks a missing "
     "repeat)"),
    ("inf in single repeats", lambda i, a, k: _set(a, (0, 0, 0), np.inf),
     "<tmp>/r.npy with images <tmp>/images: single-repeat responses hold inf; replace it by "
     "the count, or NaN for a repeat not shown"),
    ("negative counts", lambda i, a, k: _set(a, (1, 2, 0), -1.0),
     "<tmp>/r.npy with images <tmp>/images: responses hold negative values (min -1); give "
     "spike counts or rates (>= 0), not baseline-subtracted or z-scored responses"),
    ("an image shown no time (all repeats NaN)", lambda i, a, k: _set(a, (slice(None), 6),
                                                                       np.nan),
     "<tmp>/r.npy with images <tmp>/images: image 6 (img06.png) has no repeat (all NaN); "
     "remove the image or give its responses"),
    ("an image that does not decode", lambda i, a, k: _write(i / "img05.png", b"not a png")
     and a, "image img05.png in <tmp>/images does not decode"),
    ("a folder with no image file",
     lambda i, a, k: [p.unlink() for p in i.iterdir()] and a,
     "<tmp>/images holds no image files (.jpg, .jpeg, .png, .bmp, .gif, .tif, .tiff, "
     ".webp); give the folder of the images shown"),
    ("the same image twice",
     lambda i, a, k: _write(i / "img07.png", (i / "img03.png").read_bytes()) and a,
     "<tmp>/r.npy with images <tmp>/images: images img03.png and img07.png are identical; "
     "give each image once and put both presentations' responses in its repeats"),
    ("a neuron that never responds",
     lambda i, a, k: _set(a, (4,), np.where(np.isnan(a[4]), np.nan, 2.0)),
     "<tmp>/r.npy with images <tmp>/images: 1 neuron(s) never respond (the same response to "
     "every image: neuron4); remove them from the file"),
    ("too few images to split", lambda i, a, k: [p.unlink() for p in sorted(i.iterdir())[8:]]
     and a[:, :8],
     "<tmp>/r.npy with images <tmp>/images: 8 images are too few to split into a fit and a "
     "held-out half; give at least 10"),
    ("an order file naming an unknown image",
     lambda i, a, k: k.update(order=_write(i.parent / "o.txt", "img99.png\n")) or a,
     "<tmp>/o.txt names 1 image(s) that are not among the images, e.g. 'img99.png'; add the "
     "image or fix the name"),
    ("a held-out list naming an unknown image",
     lambda i, a, k: k.update(heldout=_write(i.parent / "h.txt", "cat.png\n")) or a,
     "<tmp>/h.txt names image 'cat.png', which is not among the images; list held-out "
     "images by name or index"),
    ("a name without a dataset", lambda i, a, k: k.update(name="s01") or a,
     "bad session name 's01'; write DATASET:SESSION, e.g. 'mylab:s01'"),
    ("a reserved dataset name", lambda i, a, k: k.update(name="compact:s01") or a,
     "dataset name 'compact' is reserved; choose another, e.g. 'mylab'"),
    ("a window that ends before it starts", lambda i, a, k: k.update(window_ms=(150, 50)) or a,
     "bad window 150-50 ms; give START < STOP in ms after onset, e.g. --window 50 150"),
    ("a file named .nwb that is not NWB",
     lambda i, a, k: k.update(source=_write(i.parent / "f.nwb", "text"), responses=None) or a,
     "<tmp>/f.nwb is not a readable NWB file"),
    ("NWB with units but no presentations",
     lambda i, a, k: k.update(source=_nwb_without_presentations(i.parent), responses=None)
     or a,
     "<tmp>/units_only.nwb: no stimulus presentations found (looked for an IndexSeries in "
     "/stimulus and for an intervals table with one of the columns image_index, "
     "stimulus_index, image_id, stimulus_id, stim_id, image, stimulus, stimulus_name, "
     "image_name); name the column with --image-column"),
    ("NWB without images, no --images", "external",
     "<tmp>/external.nwb holds no images (intervals table 'trials', column 'stimulus_name' "
     "points at none and /stimulus_template has no Images container); give the image files "
     "with --images DIR"),
    ("--image-column naming a missing column", "external-column",
     "<tmp>/external.nwb: no intervals table has the column 'onset_image' (tables: trials "
     "(start_time, stop_time, stimulus_name)); name the image-index column with "
     "--image-column"),
]


def _h5(path: Path, array) -> Path:
    with h5py.File(path, "w") as fh:
        fh["a"] = array
        fh["b"] = array
    return path


def run_bad_input(case, tmp: Path, small_plain, s210325) -> str:
    """The one-line message a bad input gets (temporary paths written ``<tmp>``)."""
    _, change, _ = case
    if isinstance(change, str):
        kwargs = {"source": _external_nwb(tmp, s210325)}
        if change == "external-column":
            kwargs["image_column"] = "onset_image"
    else:
        kwargs = _plain_case(tmp, small_plain, change)
    kwargs = {"name": "bad:s", "out": tmp / "ds", **kwargs}
    source = kwargs.pop("source")
    with pytest.raises(InvalidInputError) as caught, warnings.catch_warnings():
        warnings.simplefilter("ignore", SessionImportWarning)
        import_session(source, **kwargs)
    assert not (tmp / "ds").exists() or not any((tmp / "ds").rglob("*")), "half-written"
    message = str(caught.value)
    assert "\n" not in message
    return message.replace(str(tmp), "<tmp>")


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_gets_one_line_and_nothing_is_written(case, tmp_path, small_plain,
                                                         s210325):
    message = run_bad_input(case, tmp_path, small_plain, s210325)
    assert message.startswith(case[2]), message
    table = DOCS.read_text()
    assert f"| {case[0]} | `{case[2]}" in table, f"docs/datasets.md lacks the row {case[0]!r}"


def test_the_docs_table_lists_every_case():
    rows = re.findall(r"^\| ([^|]+?) \| `", DOCS.read_text(), re.M)
    assert len(BAD_INPUTS) >= 15
    assert set(rows) >= {c[0] for c in BAD_INPUTS}


def test_weak_neurons_are_a_warning_not_an_error(small_plain, tmp_path):
    folder, raw, _ = small_plain
    rng = np.random.default_rng(0)
    shuffled = raw.copy()
    for k in range(raw.shape[0]):  # break the image tuning: repeats are drawn at random
        values = shuffled[k][~np.isnan(shuffled[k])]
        shuffled[k][~np.isnan(shuffled[k])] = rng.permutation(values)
    np.save(tmp_path / "r.npy", shuffled)
    with pytest.warns(SessionImportWarning, match=r"neurons have SNR below 0\.15"):
        import_session(folder, "weak:s", responses=tmp_path / "r.npy", out=tmp_path / "ds")
    assert (tmp_path / "ds" / "weak" / "s" / "manifest.json").is_file()


def test_an_existing_session_is_kept_unless_overwrite(small_plain, tmp_path):
    folder, raw, _ = small_plain
    np.save(tmp_path / "r.npy", raw)
    first = import_session(folder, "lab:s", responses=tmp_path / "r.npy", out=tmp_path / "ds")
    with pytest.raises(InvalidInputError, match="already exists.*--overwrite"):
        import_session(folder, "lab:s", responses=tmp_path / "r.npy", out=tmp_path / "ds")
    np.save(tmp_path / "r.npy", raw[::-1])
    second = import_session(folder, "lab:s", responses=tmp_path / "r.npy",
                            out=tmp_path / "ds", overwrite=True)
    assert first.folder == second.folder
    assert np.array_equal(second.raw_responses, raw[::-1], equal_nan=True)
    assert [p.name for p in (tmp_path / "ds" / "lab").iterdir()] == ["s"]
