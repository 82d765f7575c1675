"""Build the tutorial notebooks in ``notebooks/`` from the readable cell lists below.

The notebooks are generated, not edited by hand: change a cell here, run

    python scripts/build_notebooks.py            # write the cells of notebooks/*.ipynb
    python scripts/build_notebooks.py --execute  # ... and run them, saving outputs and figures
    python scripts/build_notebooks.py --check    # exit 1 if a notebook is stale or not executed

and commit both this script and the ``.ipynb`` files. The notebooks ship executed (text
outputs and figures of a real run, made with ``--execute`` on the data directory named by
``$V4COMPACT_DATA``), so they can be read without running anything; rewriting a notebook
whose cells did not change keeps its outputs. Each notebook opens with a markdown cell
holding its title and an "Open in Colab" badge - or, while the project has no public
repository, a sentence saying so (:func:`v4compact.config.repository_url` is the one setting)
- followed by the setup cell: on Google Colab it installs the package from that repository
and fetches the data the notebook uses with ``v4compact data fetch``; elsewhere it uses the
installed package and the data directory named by ``$V4COMPACT_DATA``. ``tests/notebooks``
executes every notebook top to bottom against the real data.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from v4compact.config import NO_PUBLIC_COPY, colab_url, repository_url

#: Where the notebooks are written, relative to the repository root.
NOTEBOOK_DIR = Path("notebooks")
#: First line of every setup cell; the notebook test looks for it.
SETUP_MARKER = "# Setup: run this cell first."

ROOT = Path(__file__).resolve().parents[1]


def md(text: str) -> dict:
    """A markdown cell (``text`` is dedented and stripped)."""
    return {"cell_type": "markdown", "source": textwrap.dedent(text).strip("\n")}


def code(text: str) -> dict:
    """A code cell (``text`` is dedented and stripped)."""
    return {"cell_type": "code", "source": textwrap.dedent(text).strip("\n")}


def title_cell(name: str, title: str, intro: str) -> dict:
    """The first cell: title, Colab badge (or why there is none), what the notebook is about."""
    url = colab_url(name)
    badge = (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
             f"({url})" if url else f"*{NO_PUBLIC_COPY}*")
    return {"cell_type": "markdown",
            "source": f"# {title}\n\n{badge}\n\n{textwrap.dedent(intro).strip()}"}


def colab_install_lines() -> list[str]:
    """The setup cell's install line on Colab: from the public repository, if there is one."""
    url = repository_url()
    if url:
        return [f'    !pip install --quiet "v4compact @ git+{url}"']
    return ['    raise RuntimeError("v4compact has no public copy to install on Colab yet; "',
            '                       "run this notebook on your own computer")']


def setup_cell(fetch: str, imports: str = "") -> dict:
    """The second cell: install + fetch on Colab, the local data directory elsewhere.

    Args:
        fetch: arguments of ``v4compact data fetch`` (the data groups the notebook uses).
        imports: extra import lines of the notebook.
    """
    on_colab = (
        ["# On Google Colab it installs v4compact and downloads the data this notebook uses",
         "# (tens of MB, into ~/.cache/v4compact)."]
        if repository_url() else
        ["# On Google Colab it stops: there is no public copy of v4compact to install yet."]
    )
    lines = [
        SETUP_MARKER,
        *on_colab,
        "# Anywhere else it uses the installed package and the data directory named by",
        f"# $V4COMPACT_DATA (or the cache that `v4compact data fetch {fetch}` fills).",
        "import sys",
        "",
        'if "google.colab" in sys.modules:',
        *colab_install_lines(),
        f"    !v4compact data fetch {fetch}",
        "",
        "%matplotlib inline",
        "import matplotlib.pyplot as plt",
        "import numpy as np",
        "",
        "import v4compact",
    ]
    if imports:
        lines += textwrap.dedent(imports).strip("\n").splitlines()
    lines += [
        "",
        'print("v4compact", v4compact.__version__, "| data directory:", v4compact.data_dir())',
    ]
    return {"cell_type": "code", "source": "\n".join(lines)}


# --------------------------------------------------------------------------------------------
# 01: load data
# --------------------------------------------------------------------------------------------
LOAD_DATA = [
    title_cell("01_load_data", "1 · The V4 data: images and neural responses", """
        Neurons in area **V4** of the macaque visual cortex respond to shapes, colours and
        textures. In the experiments behind this toolkit (Cowley, Stan, Pillow & Smith, 2023),
        monkeys looked at thousands of natural images while a grid of electrodes (a Utah
        array) recorded dozens of V4 neurons at once. For each image and neuron we know how
        many spikes the neuron fired in a 100 ms window.

        In this notebook you will:

        1. list the recording **sessions**;
        2. open one session and look at its **images**;
        3. look at the **responses** — a neurons x images table of spike counts;
        4. see how **noisy** single repeats are, and how that is measured (the SNR).
        """),
    setup_cell("session:201025 session:210325"),
    md("""
        ## 1. The sessions

        The data come in 50 sessions from three monkeys (WE, PE and RA). Each session is a
        day of recording: one set of images, one set of neurons. `list_sessions()` reads
        the catalogue that ships with the package, so it needs no data at all.
        """),
    code("""
        sessions = v4compact.list_sessions()
        print(len(sessions), "sessions; splits:", sorted({s.split for s in sessions}))
        print()
        print("the test sessions:")
        for info in v4compact.list_sessions(split="test"):
            models = "compact models" if info.has_models else "no models"
            print(f"  {info.session_id}  monkey {info.animal}  {info.num_neurons:3d} neurons  "
                  f"{info.num_images:5d} images  ~{info.median_repeats:2d} repeats  {models}")
        """),
    md("""
        The **train** sessions taught the large "ensemble" model; the **test** sessions were
        kept aside to check it. Each of the 219 neurons of four test sessions was then given
        its own small *compact model* — the subject of the next notebooks.

        ## 2. One session

        `load_session` opens a session. It reads the responses straight away (they are small)
        and the images only when you ask for them.
        """),
    code("""
        session = v4compact.load_session(201025)
        print(session)
        print("responses:", session.responses.shape, session.responses.dtype)
        print("neuron ids:", session.neuron_ids[:3], "...")
        print("images present:", session.has_images)
        """),
    md("""
        `session.images` behaves like a numpy array of shape `(images, 112, 112, 3)`:
        112 x 112 pixels, three colour channels (red, green, blue), values 0-255. Indexing it
        decodes only the images you ask for.
        """),
    code("""
        first = session.images[:24]          # uint8 (24, 112, 112, 3)
        print(first.shape, first.dtype)

        fig, axes = plt.subplots(3, 8, figsize=(12, 4.8))
        for i, ax in enumerate(axes.flat):
            ax.imshow(first[i])
            ax.set_title(f"image {i}", fontsize=8)
            ax.axis("off")
        plt.show()
        """),
    md("""
        ## 3. The responses

        `session.responses[n, i]` is the number of spikes neuron `n` fired in the 100 ms after
        image `i` appeared, **averaged over the repeats** of that image. The whole table is a
        heatmap: one row per neuron, one column per image. Each row is divided by its standard
        deviation so that quiet and busy neurons are equally visible.
        """),
    code("""
        from v4compact.figures.session import plot_session

        plot_session(session, num_images=32)
        """),
    md("""
        Now a single neuron. Which images drive it the most, and which the least? Sorting its
        responses answers that — a first glimpse of what the neuron "likes".
        """),
    code("""
        NEURON = 10
        responses = session.responses[NEURON]
        order = np.argsort(responses)[::-1]          # strongest first

        plt.figure(figsize=(6, 2.5))
        plt.hist(responses, bins=40, color="tab:blue")
        plt.xlabel("spikes per 100 ms (averaged over repeats)")
        plt.ylabel("images")
        plt.title(f"neuron {session.neuron_ids[NEURON]}")
        plt.show()

        fig, axes = plt.subplots(2, 8, figsize=(12, 3.6))
        for row, picks, label in [(0, order[:8], "strongest"), (1, order[-8:], "weakest")]:
            images = session.images[picks]
            for ax, i, image in zip(axes[row], picks, images):
                ax.imshow(image)
                ax.set_title(f"{responses[i]:.2f}", fontsize=8)
                ax.axis("off")
            axes[row, 0].text(-10, 56, label, rotation=90, va="center", ha="right")
        plt.show()
        """),
    md("""
        ### Held-out images

        To check a model honestly we must test it on images it never saw. By convention, the
        **first half** of a test session's images was used to fit the models and the
        **second half** is **held out** for evaluation.
        """),
    code("""
        fit, heldout = session.heldout_split()
        print(f"fit on images {fit[0]}-{fit[-1]}, evaluate on images {heldout[0]}-{heldout[-1]}")
        """),
    md("""
        ## 4. Repeats and noise

        A neuron does not fire the same number of spikes every time it sees an image. The
        single-repeat responses show this trial-to-trial variability; they are stored as
        `(neurons, images, repeats)`, with `NaN` where an image was shown fewer times.
        Session 210325 has them in every copy of the data.
        """),
    code("""
        other = v4compact.load_session(210325)
        raw = other.raw_responses
        print("raw responses:", raw.shape, "(neurons, images, repeats)")

        snr = other.snr()                       # signal-to-noise ratio, one per neuron
        best = int(np.nanargmax(snr))
        print(f"median SNR {np.nanmedian(snr):.2f}; best neuron {other.neuron_ids[best]} "
              f"(SNR {snr[best]:.2f})")
        """),
    code("""
        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.5))
        shown = np.arange(12)
        for i in shown:
            trials = raw[best, i][~np.isnan(raw[best, i])]
            left.scatter(np.full(len(trials), i), trials, s=12, color="gray", alpha=0.6)
            left.scatter(i, trials.mean(), s=60, marker="_", color="tab:red")
        left.set_xlabel("image")
        left.set_ylabel("spike count")
        left.set_title("each repeat (gray) and the average (red)")

        right.hist(snr[np.isfinite(snr)], bins=20, color="tab:green")
        right.axvline(0.15, color="k", ls="--", label="a common inclusion threshold")
        right.set_xlabel("unbiased SNR")
        right.set_ylabel("neurons")
        right.legend(frameon=False)
        plt.show()
        """),
    md("""
        The SNR compares how much a neuron's average response changes **from image to image**
        (the signal) with how much it changes **from repeat to repeat** (the noise). Neurons
        with a very low SNR are hard to predict for any model — their responses are mostly
        noise. Notebook 2 shows how the evaluation metric takes this noise into account.

        ## 5. What is in your data directory?

        `data_status()` compares your data directory with the list of every file of the public
        release; `v4compact data fetch <group>` downloads what is missing.
        """),
    code("""
        status = v4compact.data_status()
        for kind, row in status.items():
            print(f"{kind:28s} {row.present:5d} of {row.total:5d} files")
        """),
    md("""
        ## Try it yourself

        - Pick another neuron (`NEURON = ...`) and look at its strongest images. Can you guess
          what it responds to?
        - Open another session with images, e.g. `v4compact.load_session(190923)`.
        - The command line does the same: `v4compact data sessions --split test`,
          `v4compact data info 210325 --snr`.

        Next: **notebook 2** predicts these responses with a compact model.
        """),
]

# --------------------------------------------------------------------------------------------
# 02: predict and evaluate
# --------------------------------------------------------------------------------------------
PREDICT = [
    title_cell("02_predict_and_evaluate", "2 · Predict a neuron and measure the model", """
        A **compact model** is a small convolutional neural network that predicts the
        responses of one V4 neuron to any image. It was distilled from a much larger model
        and then pruned down to a handful of filters, so it is small enough to study.

        In this notebook you will:

        1. load the compact model of one neuron;
        2. predict its responses to images it never saw, and compare with the recording;
        3. score the model with the project's evaluation protocol, and learn why
           noise-corrected metrics matter;
        4. compare it with a *shared* compact model that predicts all 219 neurons at once.
        """),
    setup_cell("session:201025 compact-models:201025/10 shared-models:from_ensemble_model", """
        from v4compact import metrics
        from v4compact.evaluation import METRIC_LABELS
        """),
    md("""
        ## 1. Load a model

        Models are named by an id: `compact/<session>/<neuron>` for one neuron's compact
        model. We use neuron 10 of session 201025.
        """),
    code("""
        model = v4compact.load_compact_model(201025, 10)   # same as load_model("compact/201025/10")
        print(model.model_id)
        print("filters per layer:", model.num_filters)
        print("trainable parameters:", model.num_parameters)
        print("compact models in your data directory:",
              len(v4compact.list_models("compact/*", present_only=True)))
        """),
    md("""
        About ten thousand parameters — tiny for a deep network (the model it was distilled
        from has millions). It is a regular PyTorch module, so everything PyTorch offers works
        on it.

        ## 2. Predict

        `model.predict` takes images as a uint8 array `(N, 112, 112, 3)` with pixel values
        0-255 (it subtracts the mean colour the model expects for you), and returns one
        number per image, in **z-scored units** (more on that below). We predict the
        **held-out** half of the session, which the model never saw during fitting.
        """),
    code("""
        session = v4compact.load_session(201025)
        fit, heldout = session.heldout_split()

        images = session.images[heldout]              # uint8 (600, 112, 112, 3)
        predicted = model.predict(images)             # float32 (600,), z-scored units
        measured = session.responses[10, heldout]     # spikes / 100 ms, averaged over repeats
        print(predicted.shape, measured.shape)
        """),
    code("""
        r = metrics.pearson_r(measured, predicted)
        plt.figure(figsize=(4.5, 4))
        plt.scatter(predicted, measured, s=8, alpha=0.5)
        plt.xlabel("model prediction (z-scored units)")
        plt.ylabel("measured response (spikes / 100 ms)")
        plt.title(f"{model.model_id}: r = {r:.2f}, R² = {r * r:.2f}")
        plt.show()
        """),
    md("""
        Each dot is one held-out image. The model's output is **not a spike count**: the
        compact models were distilled from a model fitted to responses z-scored per neuron,
        so they output **z-scored units** — about 0 for the neuron's average response to
        natural images, 1 for one standard deviation above it, and negative values for
        weaker than average. What matters is that images the model ranks high also drive the
        neuron strongly. That is why models are scored with a **correlation**: the raw R² is
        the squared correlation between prediction and measured response, and it does not
        change if the outputs are shifted or rescaled.

        `predict` also takes file names, so you can try your own pictures. Here we draw one:
        """),
    code("""
        from PIL import Image, ImageDraw

        picture = Image.new("RGB", (112, 112), (128, 128, 128))
        ImageDraw.Draw(picture).ellipse((36, 36, 76, 76), fill=(230, 40, 40))
        picture.save("red_disc.png")

        print("response to a red disc (z-scored units):", float(model.predict("red_disc.png")[0]))
        print("median response to natural images (z-scored units):", float(np.median(predicted)))
        """),
    md("""
        ## 3. Evaluate, the standard way

        `v4compact.evaluate` runs the whole protocol: it predicts the held-out images, scores
        every neuron and puts a bootstrap confidence interval around the score (how much the
        score would change with a different sample of images). It names the metric it used:

        - **r2_ER**, the noise-corrected R² of the paper, when the single-repeat responses of
          the session are in the data directory;
        - otherwise the **raw R²** against the repeat-averaged responses.
        """),
    code("""
        result = v4compact.evaluate("compact/201025/10", num_boot=200, progress=False)
        score = result.scores[0]
        print(f"{score.model}: {score.metric} = {score.value:.3f} "
              f"(95% CI {score.ci_low:.3f} to {score.ci_high:.3f}, {score.num_images} images)")
        """),
    md("""
        ### Why correct for noise?

        Even a *perfect* model cannot reach R² = 1 against noisy measurements: part of what
        we measured is trial-to-trial noise that no model can predict. The noise-corrected
        **r2_ER** (Pospisil & Bair, 2021) estimates the R² the model would reach against the
        neuron's true, noise-free average response.

        We can check this on simulated neurons, where we know the truth: 200 neurons, each
        with a model whose true R² is 0.6, recorded with 6 noisy repeats per image.
        """),
    code("""
        from v4compact.metrics.simulate import simulate_neurons

        sim = simulate_neurons(num_neurons=200, num_images=300, num_repeats=6,
                               true_r2=0.6, snr=0.5, seed=0)
        averaged = np.nanmean(sim.raw_responses, axis=2)              # (neurons, images)
        raw = metrics.raw_r2(averaged, sim.predictions)
        corrected = metrics.r2_er(sim.raw_responses, sim.predictions)

        plt.figure(figsize=(6, 3))
        plt.hist(raw, bins=30, alpha=0.6, label=f"raw R² (median {np.median(raw):.2f})")
        plt.hist(corrected, bins=30, alpha=0.6,
                 label=f"r2_ER (median {np.median(corrected):.2f})")
        plt.axvline(0.6, color="k", ls="--", label="true R²")
        plt.xlabel("score")
        plt.ylabel("simulated neurons")
        plt.legend(frameon=False, fontsize=8)
        plt.show()
        """),
    md("""
        The raw R² is biased **down** by the noise; r2_ER is centred on the truth (single
        values can even fall outside 0-1, which is expected of an unbiased estimate).

        ## 4. One network for all neurons: the shared compact model

        A *shared* compact model predicts all 219 neurons of the test sessions with one
        network: the same filters, and a separate read-out per neuron. Its id says which
        model it was distilled from and how many filters its early layers have.
        """),
    code("""
        shared_id = "shared/from_ensemble_model/25"
        shared = v4compact.load_model(shared_id)
        print(shared.model_id, "|", shared.num_outputs, "outputs | filters:", shared.num_filters)

        shared_result = v4compact.evaluate(shared_id, sessions=[201025], num_boot=0,
                                           progress=False)
        values = shared_result.values()
        ours = next(s.value for s in shared_result.scored if s.neuron == 10)
        print(shared_result.format_summary())
        """),
    code("""
        plt.figure(figsize=(6, 3))
        plt.hist(values, bins=25, color="tab:purple")
        plt.axvline(ours, color="k", ls="--", label="neuron 201025/10 (shared model)")
        plt.axvline(score.value, color="tab:orange", ls="--",
                    label="neuron 201025/10 (its own compact model)")
        plt.xlabel(METRIC_LABELS[shared_result.scores[0].metric] + ", held-out images")
        plt.ylabel("neurons of session 201025")
        plt.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        plt.show()
        """),
    md("""
        Some neurons are predicted well, others hardly at all — often those with noisy
        responses (low SNR, notebook 1).

        ## Try it yourself

        - Evaluate another neuron: `v4compact.evaluate("compact/201025/2")`.
        - Compare shared models distilled from other networks, e.g.
          `shared/from_vgg19/25`, or with more filters, e.g. `shared/from_ensemble_model/100`.
        - The same from the command line: `v4compact evaluate compact/201025/10`.

        Next: **notebook 3** asks which images the model thinks the neuron likes best.
        """),
]

# --------------------------------------------------------------------------------------------
# 03: preferred stimuli
# --------------------------------------------------------------------------------------------
PREFERRED = [
    title_cell("03_preferred_stimuli", "3 · Preferred stimuli: what does a neuron like?", """
        What image makes a V4 neuron fire the most? With a model we can ask this question
        in two ways:

        1. **search**: run the model on many natural images and rank them;
        2. **synthesize**: start from noise and change the pixels, step by step, in the
           direction that raises the model's prediction (gradient ascent).

        The images found this way are the neuron's *preferred stimuli* — a picture of what it
        is tuned to. Synthesis is short here (few steps) to keep the notebook fast; more steps
        give cleaner images.
        """),
    setup_cell("session:201025 compact-models:201025/10", """
        from v4compact.figures.synthesis import image_grid, ranking_figure, synthesis_figure
        from v4compact.synthesis import synthesize
        from v4compact.synthesis.natural import rank_images
        """),
    code("""
        model = v4compact.load_compact_model(201025, 10)
        session = v4compact.load_session(201025)
        fit, heldout = session.heldout_split()
        """),
    md("""
        ## 1. Search natural images

        `rank_images` predicts a set of images and sorts them. Because this neuron was
        recorded in session 201025, it also sorts the images by the **measured** responses,
        so we can see whether model and neuron agree. We use the held-out images only.
        """),
    code("""
        ranking = rank_images(model, "session:201025", indices=heldout)
        print(f"{len(ranking.predicted)} images ranked; "
              f"correlation predicted vs measured = {ranking.correlation:.2f}")
        ranking_figure(ranking, k=8)
        """),
    md("""
        Left: the model's favourite and least favourite images; right: the neuron's own.
        Numbers above the images are the responses (the model's z-scored units on the left,
        measured spikes per 100 ms on the right).

        ## 2. Synthesize preferred images

        `synthesize` runs gradient ascent on the model, from several random starts
        ("seeds"). The `"upstream"` preset is the recipe of the original study: normalized
        gradient steps, a little blur to avoid pixel noise, pixel values kept in 0-255.
        """),
    code("""
        result = synthesize(model, seeds=4, steps=30, preset="upstream", snapshot_every=5,
                            progress=False)
        print("model outputs for the synthesized images (z-scored units):",
              np.round(result.target_responses, 2))
        print("best natural image:                                       ",
              round(float(ranking.predicted.max()), 2))
        synthesis_figure(result, reference=float(ranking.predicted.max()))
        """),
    md("""
        The synthesized images drive the model far more than any natural image — they
        concentrate everything the neuron likes in one picture. Different starts often end
        in similar patterns: a sign of what the neuron is tuned to.

        The optimisation history shows how the response grew step by step:
        """),
    code("""
        plt.figure(figsize=(5, 3))
        plt.plot(result.history, lw=1)
        plt.xlabel("step")
        plt.ylabel("model response (z-scored units)")
        plt.title("one line per random start")
        plt.show()
        """),
    md("""
        ## 3. Watch an image evolve

        Because we asked for `snapshot_every=5`, the run also kept the images along the way
        (`result.snapshots`, shape `(snapshots, images, 112, 112, 3)`). Here is the first
        random start, from noise to preferred stimulus:
        """),
    code("""
        frames = result.snapshots[:, 0]                      # (snapshots, 112, 112, 3)
        titles = [f"step {s}" for s in result.snapshot_steps]
        image_grid(frames, titles=titles, ncols=len(frames))
        """),
    md("""
        ## 4. Least-preferred images, and colour

        `minimize=True` looks for images that **silence** the neuron. Options of the recipe
        can be changed by keyword, e.g. `grayscale=True` keeps the image gray: does the
        neuron need colour to respond strongly?
        """),
    code("""
        gray = synthesize(model, seeds=2, steps=30, grayscale=True, progress=False)  # as above
        lowest = synthesize(model, seeds=2, steps=15, minimize=True, progress=False)

        images = np.concatenate([result.images[:2], gray.images, lowest.images])
        values = np.concatenate([result.target_responses[:2], gray.target_responses,
                                 lowest.target_responses])
        labels = ["max, colour"] * 2 + ["max, gray"] * 2 + ["min"] * 2
        image_grid(images, titles=[f"{t}: {v:.2f}" for t, v in zip(labels, values)], ncols=2)
        """),
    md("""
        The colour and gray images had the same number of steps. If the gray ones reach a
        much lower response, this neuron needs colour to respond strongly — a prediction one
        could test on the real neuron.
        """),
    md("""
        ## Try it yourself

        - Other recipes: `v4compact.synthesis.list_presets()`; try `preset="fourier"` (a
          smoother parameterisation with random jitter, in the style of feature-visualisation
          libraries) with `steps=200`.
        - More steps and more seeds (the paper shows 9 seeds).
        - Another neuron: `v4compact.load_compact_model(201025, 2)`.
        - Save images with their provenance: `result.save("my_stimuli")`; or from the command
          line: `v4compact synthesize compact/201025/10 --seeds 9 --out my_stimuli`.

        Next: **notebook 4** opens the model and looks at its filters.
        """),
]

# --------------------------------------------------------------------------------------------
# 04: explore filters
# --------------------------------------------------------------------------------------------
FILTERS = [
    title_cell("04_explore_filters", "4 · Inside a compact model: filters and read-out", """
        A compact model is small enough to read. It has five convolutional layers and a
        read-out:

        - **layer 0** looks at 5 x 5 pixel patches with a few dozen colour filters;
        - **layers 1-4** each combine the previous layer's maps: first every map is filtered
          on its own (a 5 x 5 *depthwise* filter), then the maps are mixed (a *pointwise*
          weighted sum); layers 1 and 2 also halve the resolution (112 -> 56 -> 28);
        - the **read-out** weighs every position of the last layer's maps and sums them into
          one number, the predicted response.

        In this notebook you will look at the filters, at what each layer computes for an
        image, at *where* in the image the neuron looks, and at what happens when a filter
        is switched off.
        """),
    setup_cell("session:201025 compact-models:201025/10", """
        from v4compact.synthesis import channel, render
        """),
    code("""
        model = v4compact.load_compact_model(201025, 10)
        session = v4compact.load_session(201025)
        print("filters per layer:", model.num_filters)
        print("layers you can look into:", model.layer_names)
        """),
    md("""
        Pruning left this neuron with few filters in the deep layers: most of the work happens
        early.

        ## 1. Layer 0: colour filters

        `model.layer_weights(0)["kernel"]` has shape `(5, 5, 3, filters)`: one small colour
        image per filter. We rescale each to show it (gray = 0, bright = positive weight).
        """),
    code("""
        kernel = model.layer_weights(0)["kernel"]                  # (5, 5, 3, K0)
        print("layer 0 kernel:", kernel.shape)

        count = kernel.shape[-1]
        cols = 10
        fig, axes = plt.subplots(-(-count // cols), cols, figsize=(10, 1.1 * -(-count // cols)))
        for k, ax in enumerate(axes.flat):
            ax.axis("off")
            if k < count:
                w = kernel[..., k]
                ax.imshow(0.5 + 0.5 * w / np.abs(w).max(), interpolation="nearest")
                ax.set_title(str(k), fontsize=7)
        plt.show()
        """),
    md("""
        Some are light-dark stripes (edge detectors), others colour-opponent patches
        (red against green, blue against yellow) — much like the filters in the first layer
        of other vision networks, and like neurons of the early visual cortex.

        ## 2. What each layer computes for one image

        `model.activations(images, layer)` returns a layer's feature maps, channels last:
        `(images, height, width, filters)`. Here are the most active maps of layer 0 and
        all maps of layer 2 for one image.
        """),
    code("""
        image = session.image(700)
        maps0 = model.activations(image, "layer0")[0]          # (112, 112, K0)
        maps2 = model.activations(image, "layer2")[0]          # (28, 28, K2)
        strongest = np.argsort(maps0.mean(axis=(0, 1)))[::-1][:5]

        panels = [("image", image)]
        panels += [(f"layer0 filter {k}", maps0[..., k]) for k in strongest]
        panels += [(f"layer2 filter {k}", maps2[..., k]) for k in range(maps2.shape[-1])]
        fig, axes = plt.subplots(1, len(panels), figsize=(2 * len(panels), 2.3))
        for ax, (title, picture) in zip(axes, panels):
            ax.imshow(picture, cmap=None if picture.ndim == 3 else "magma")
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        plt.show()
        """),
    md("""
        ## 3. The read-out: where the neuron looks

        The read-out has one 28 x 28 weight map per filter of layer 4:
        `model.readout_map()` has shape `(28, 28, K4)`. Red positions push the prediction up,
        blue ones push it down. The concentrated blob is the neuron's **receptive field**: the
        part of the image it cares about.
        """),
    code("""
        readout = model.readout_map()                           # (28, 28, K4)
        limit = np.abs(readout).max()
        fig, axes = plt.subplots(1, readout.shape[-1], figsize=(3 * readout.shape[-1], 3))
        for k, ax in enumerate(np.atleast_1d(axes)):
            ax.imshow(readout[..., k], cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"read-out of layer-4 filter {k}", fontsize=9)
            ax.axis("off")
        plt.show()
        """),
    md("""
        ## 4. Each filter's contribution, and switching one off

        The prediction is a sum: for each layer-4 filter, its map times its read-out map,
        summed over positions — plus a constant. So we can split every prediction into one
        contribution per filter, and check that they add up to `model.predict`.
        """),
    code("""
        fit, heldout = session.heldout_split()
        images = session.images[heldout[:200]]
        maps4 = model.activations(images, "layer4")                  # (200, 28, 28, K4)
        contributions = np.einsum("nhwk,hwk->nk", maps4, readout)    # (200, K4)
        total = contributions.sum(axis=1) + model.readout_bias()

        predicted = model.predict(images)
        print("sum of contributions == prediction:", np.allclose(total, predicted, atol=1e-3))
        print("spread (s.d.) of each filter's contribution:",
              np.round(contributions.std(axis=0), 3))
        """),
    md("""
        Switching a filter off (an *ablation*, as with a lesion or optogenetic silencing in a
        real brain) removes its contribution. How well does the model still predict the
        neuron?
        """),
    code("""
        from v4compact import metrics

        measured = session.responses[10, heldout[:200]]
        print(f"all filters: R² = {metrics.raw_r2(measured, predicted):.3f}")
        for k in range(contributions.shape[1]):
            ablated = predicted - contributions[:, k]
            print(f"without layer-4 filter {k}: R² = {metrics.raw_r2(measured, ablated):.3f}")
        """),
    md("""
        ## 5. What does a filter like?

        Two ways to find out, as for the whole neuron in notebook 3. First, the natural images
        that drive a filter most: here for each filter of layer 2, the four held-out images
        with the strongest activity anywhere in its map.
        """),
    code("""
        maps = model.activations(images, "layer2")                 # (200, 28, 28, K2)
        peak = maps.max(axis=(1, 2))                               # (200, K2)
        count = maps.shape[-1]

        fig, axes = plt.subplots(count, 4, figsize=(6, 1.6 * count))
        for k in range(count):
            for j, i in enumerate(np.argsort(peak[:, k])[::-1][:4]):
                axes[k, j].imshow(images[i])
                axes[k, j].axis("off")
            axes[k, 0].set_title(f"layer2 filter {k}", loc="left", fontsize=9)
        plt.show()
        """),
    md("""
        Second, synthesis: the engine of notebook 3 can target any filter of any layer
        instead of the output. `channel("layer2", k)` is the mean activity of layer-2 filter
        `k` over the image, so the image fills with the pattern the filter likes. Giving one
        filter per image optimises them all in one batch. With only 30 steps the patterns are
        faint; `steps=300` makes them clearer.
        """),
    code("""
        filters = list(range(model.num_filters[2]))
        objective = channel("layer2", filters)                 # one filter per image
        found = render(model, objective, num_images=len(filters), steps=30, progress=False)

        fig, axes = plt.subplots(1, len(filters), figsize=(2.2 * len(filters), 2.4))
        for ax, k, picture in zip(np.atleast_1d(axes), filters, found.images):
            ax.imshow(picture)
            ax.set_title(f"layer2 filter {k}", fontsize=9)
            ax.axis("off")
        plt.show()
        """),
    md("""
        ## Try it yourself

        - Look at the depthwise and pointwise weights of layer 1:
          `model.layer_weights(1)` (keys `depthwise_kernel`, `pointwise_kernel`).
        - Compare the filter counts of a few neurons:
          `v4compact.load_compact_model(201025, k).num_filters`.
        - Try `channel("layer0", k, where="center")` to see what one early filter likes at the
          centre of the image.

        Next: **notebook 5** runs experiments on the model, as one would on the neuron.
        """),
]

# --------------------------------------------------------------------------------------------
# 05: in-silico experiment
# --------------------------------------------------------------------------------------------
EXPERIMENT = [
    title_cell("05_in_silico_experiment", "5 · An experiment in silico", """
        A model that predicts a neuron well lets us run experiments **on the computer** that
        would take days of recording: show it any images, as many as we like, and see how
        the predicted response changes. Good experiments are then confirmed on the real
        neuron.

        In this notebook you will:

        1. test whether *gaudy* images (each colour channel pushed to black or full
           brightness) drive the neuron more than natural images — one of the findings of
           Cowley et al.;
        2. map the neuron's **receptive field** with small dots;
        3. measure **tuning curves** for the orientation of a bar and for colour.
        """),
    setup_cell("session:201025 compact-models:201025", """
        from v4compact.experiments import dot, gaudy_experiment, tuning_curve
        from v4compact.images import gaudy, grayscale
        """),
    code("""
        model = v4compact.load_compact_model(201025, 10)
        session = v4compact.load_session(201025)
        fit, heldout = session.heldout_split()
        """),
    md("""
        ## 1. Natural, gaudy and grayscale images

        The gaudy version of an image sets every pixel of each colour channel to 0 or 255,
        depending on whether it is below or above that channel's mean: the same layout, with
        exaggerated edges and colours. The grayscale version removes colour instead.
        """),
    code("""
        examples = session.images[heldout[:4]]
        rows = [("natural", examples), ("gaudy", gaudy(examples)),
                ("grayscale", grayscale(examples))]
        fig, axes = plt.subplots(3, 4, figsize=(8, 6.3))
        for r, (label, images) in enumerate(rows):
            for c in range(4):
                axes[r, c].imshow(images[c])
                axes[r, c].axis("off")
            axes[r, 0].set_title(label, loc="left", fontsize=9)
        plt.show()
        """),
    md("""
        `gaudy_experiment` shows the model all three versions of a set of images and
        collects the responses in a table, a per-neuron summary and a figure.
        """),
    code("""
        experiment = gaudy_experiment(model, "session:201025", indices=heldout[:200])
        summary = experiment.summary.rows[0]
        for condition in ("natural", "gaudy", "grayscale"):
            print(f"mean predicted response to {condition:9s} images: "
                  f"{summary['mean_' + condition]:.3f} z-scored units")
        print(f"gaudy version drives the model more for "
              f"{100 * summary['frac_gaudy_above_natural']:.0f}% of the images")
        experiment.figure
        """),
    md("""
        The model's output is on its own scale (its mean can be negative), so compare the
        conditions with each other rather than with zero. Points above the diagonal are images
        whose gaudy (or grayscale) version drives the model more than the original.

        ### Is it true for other neurons?

        One neuron is an anecdote. `load_compact_population` fuses the compact models of
        several neurons into one network that predicts them all in one pass; the experiment
        then runs on all of them at once. Here: every eleventh neuron of the session, on 100
        held-out images.
        """),
    code("""
        neurons = [f"201025/{k}" for k in range(0, 89, 11)]
        population = v4compact.load_compact_population(neurons)
        many = gaudy_experiment(population, "session:201025", indices=heldout[:100])
        for row in many.summary.rows:
            print(f"{row['neuron']:>10}: gaudy > natural for "
                  f"{100 * row['frac_gaudy_above_natural']:3.0f}% of the images")
        """),
    md("""
        If the gaudy versions win for most images in most neurons, the models predict that
        exaggerated edges and colours drive V4 in general — the kind of prediction Cowley et
        al. went on to test on real V4 neurons.
        """),
    md("""
        ## 2. Map the receptive field

        A classic physiology experiment: flash a small dot at many positions and note where
        the neuron responds. `dot(size, x, y, color)` draws one (x, y in pixels from the image
        centre); here a 9 x 9 grid of white dots on gray.
        """),
    code("""
        positions = np.arange(-48, 49, 12)
        dots = np.stack([dot(size=14, x=x, y=y, color=(255, 255, 255))
                         for y in positions for x in positions])
        rf = model.predict(dots).reshape(len(positions), len(positions))

        iy, ix = np.unravel_index(np.argmax(rf), rf.shape)
        centre = (int(positions[ix]), int(positions[iy]))
        print("strongest response for a dot at (x, y) =", centre)

        fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.6))
        left.imshow(dots[len(dots) // 2])
        left.set_title("one stimulus", fontsize=9)
        left.axis("off")
        extent = [positions[0] - 6, positions[-1] + 6, positions[-1] + 6, positions[0] - 6]
        shown = right.imshow(rf, extent=extent, cmap="magma")
        right.set_xlabel("x (pixels from centre)")
        right.set_ylabel("y (pixels from centre)")
        right.set_title("predicted response to a dot there", fontsize=9)
        fig.colorbar(shown, ax=right)
        plt.show()
        """),
    md("""
        ## 3. Tuning curves

        `tuning_curve(model, stimulus, parameter, values, **fixed)` varies one parameter of a
        stimulus (`"dot"`, `"bar"`, `"grating"`, `"color_patch"`) and keeps the rest fixed.
        First the orientation of a bar centred on the receptive field:
        """),
    code("""
        orientation = tuning_curve(model, "bar", "orientation", range(0, 180, 15),
                                   x=centre[0], y=centre[1], length=40, width=6)
        print("preferred orientation:", orientation.summary.rows[0]["preferred_value"], "degrees")
        orientation.figure
        """),
    md("""
        And colour: a patch of one colour over the receptive field.
        """),
    code("""
        colours = [(255, 0, 0), (255, 128, 0), (255, 255, 0), (0, 200, 0), (0, 200, 200),
                   (0, 0, 255), (160, 0, 255), (255, 255, 255), (0, 0, 0)]
        colour = tuning_curve(model, "color_patch", "color", colours,
                              x=centre[0], y=centre[1], size=40)
        print("preferred colour (R, G, B):", colour.summary.rows[0]["preferred_value"])
        colour.figure
        """),
    md("""
        Each result also keeps its numbers: `experiment.table.rows` (one row per stimulus),
        `.summary.rows`, and `.save(folder, name)` writes the table as CSV and the figure as
        PNG.

        ## Design your own experiment

        - Does the neuron prefer **gratings** of some spatial frequency?
          `tuning_curve(model, "grating", "frequency", [1, 2, 4, 8, 16])`
        - Does the response depend on the **size** of the dot at the receptive-field centre?
          `tuning_curve(model, "dot", "size", [4, 8, 16, 32, 64], x=..., y=...)`
        - Any image array works with `model.predict`: try textures, faces, your own photos.
        - Many neurons at once: a population (`v4compact.load_compact_population()` with no
          argument loads all 219 compact models) or the shared model of notebook 2
          (`v4compact.load_model("shared/from_ensemble_model/25")`) take the same calls, with
          `neurons=[...]` to pick neurons by id, e.g. `"201025/10"`.

        Remember: these are predictions of a model. They suggest what to test on the real
        neuron; they do not replace the experiment.
        """),
]

OWN_RECORDINGS = [
    title_cell("06_your_own_recordings", "6 · Your own recordings, end to end", """
        v4compact is not only for the release's sessions. A lab with its own recordings -
        V4, V1, IT, any animal - imports them once and then uses the whole toolkit on them.

        In this notebook you will:

        1. take an NWB file as an acquisition system leaves it (spike times, stimulus
           presentations, the images) - here one rebuilt from session 210325's counts;
        2. import it as the session `mylab:s01` and check its signal quality (SNR);
        3. build a **teacher** for its neurons: a backbone with a ridge mapping fitted on the
           session's fit half only;
        4. **make compact models** of two of its neurons (distil, prune, retrain; a tiny run
           here - see docs/distillation.md for real sizes);
        5. **evaluate** them on the held-out half, beside their teacher;
        6. look at them in the **explorer**.
        """),
    setup_cell("session:210325 images:210305 compact-models:201025/10", """
        import pynwb
        from v4compact.figures.session import plot_session
        from v4compact.ingest.rawform import write_spike_nwb
        from v4compact.training.distill import DistillConfig
        from v4compact.training.recipe import make_compact
        """),
    md("""
        ## 1. A lab's NWB file

        `write_spike_nwb` writes a session's single-repeat spike counts back as spike times:
        every presentation gets its count of spikes inside 50-150 ms after onset, plus
        spontaneous spikes outside it. The layout is the one the DiCarlo lab's conversions
        use: an `Images` container `stimuli`, an `IndexSeries` of presentations in
        `/stimulus`, `Units` with spike times and a trials table. With your own file, skip
        this cell.
        """),
    code("""
        write_spike_nwb(v4compact.load_session(210325), "my_recording.nwb", layout="indexseries")
        with pynwb.NWBHDF5IO("my_recording.nwb", "r") as io:
            nwb = io.read()
            print(f"{len(nwb.units)} units, {len(nwb.stimulus['presentations'].data)} "
                  f"presentations of {len(nwb.stimulus_template['stimuli'].images)} images")
        """),
    md("""
        ## 2. Import and check

        The import counts the spikes of each presentation in the window (default 50-150 ms
        after onset, 100 ms bins like the release's responses), groups the repeats by image,
        runs every check and writes the session once. `out=` keeps it in a folder of this
        notebook; without it, it goes to the data directory's `datasets/` folder. The same
        on the command line: `v4compact data import my_recording.nwb --name mylab:s01`.
        """),
    code("""
        session = v4compact.import_session("my_recording.nwb", "mylab:s01", out="lab_data")
        print(session)
        print("units:", session.units, "| window:", session.window_ms, "ms")
        snr = session.snr()
        print(f"SNR: median {np.median(snr):.2f}; {np.sum(snr > 0.15)} of {len(snr)} "
              "neurons above 0.15")
        plot_session(session)
        """),
    md("""
        ## 3. A teacher for the new neurons

        No compact model exists for these neurons yet. A teacher is a backbone's features
        mapped to the responses by cross-validated ridge, fitted on the **fit half** of the
        session only, so the held-out half stays unseen. Here the backbone is the core of a
        released compact model (small and fast); `backbone:resnet50` or an ensemble
        (`ensemble:RUN_DIR`) are the real choices.
        """),
    code("""
        teacher = "backbone:compact/201025/10:layer4"
        neurons = ["mylab:s01/[03]"]   # patterns work: "mylab:s01/*" is every neuron
        """),
    md("""
        ## 4. Make compact models

        A tiny configuration so the notebook runs in a minute: 4 filters per layer, 40
        images of another session as the corpus, one pass. Real runs use 100 filters and
        tens of thousands of images (`--minutes` chooses the passes for a time budget). The
        plan's warning - 2 optimizer steps are far too few to learn - is expected here, and
        the tiny students' scores below are near zero for that reason.
        """),
    code("""
        config = DistillConfig(num_filters=(4,) * 5, batch_size=16, passes=1,
                               holdout_images=8, num_workers=0)
        corpus = v4compact.data_dir() / "data_V4_responses/images/images_210305.zip"
        report = make_compact(teacher, neurons, [corpus], "runs/mylab", config,
                              max_images_per_shard=40)
        for row in report["neurons"]:
            print(row["neuron"], "filters after pruning:", row["filters_after"])
        """),
    md("""
        ## 5. Evaluate on the held-out half

        The made models are ordinary compact models (`.keras` files, z-scored units).
        `evaluate` scores them on the imported session's held-out half: r2_ER, since the
        session has repeats.
        """),
    code("""
        for row in report["neurons"]:
            model = v4compact.load_compact_model(f"runs/mylab/{row['model_file']}")
            result = v4compact.evaluate(model, num_boot=0, progress=False)
            score = result.scores[0]
            print(f"{row['neuron']}: student {score.metric} {score.value:.3f}; "
                  f"teacher held-out raw R^2 {row['teacher_heldout_raw_r2']:.3f}, "
                  f"student {row['heldout_raw_r2_step2']:.3f}")
        """),
    md("""
        ## 6. Look at them in the explorer

        `v4compact serve --made runs/mylab` starts the explorer with these made models in
        its gallery (filter Dataset = mylab), each with a page: its scores, where it came
        from (teacher, images, recipe, pruning) and its filters. Here the explorer runs for
        a moment inside the notebook, and we ask it what a visitor's browser would.
        """),
    code("""
        import json
        from urllib.request import urlopen

        from v4compact.web.app import create_app
        from v4compact.web.server import running_server

        with running_server(create_app(made=["runs/mylab"])) as url:
            cards = json.load(urlopen(f"{url}/api/made"))
            page = json.load(urlopen(f"{url}/api/made/{cards[-1]['neuron_id']}"))
        for card in cards:
            print(f"{card['neuron_id']}: dataset {card['dataset']}, area {card['area']}, "
                  f"filters {card['num_filters']}")
        print(f"page of {page['neuron_id']}: teacher {page['provenance']['teacher']}; "
              f"held-out raw R^2 computed by the explorer {page['heldout_r2']:.3f} "
              f"on {len(page['heldout_points']['measured'])} held-out images")
        print("in a browser: v4compact serve --made runs/mylab, then "
              "http://127.0.0.1:8000/#/?dataset=mylab")
        """),
    md("""
        ## Next

        - Import your own file: `v4compact data import rec.nwb --name mylab:s01`, or images
          plus a response array: `v4compact data import stimuli/ --responses counts.npy
          --name mylab:s02` (docs/datasets.md lists every layout and check).
        - Choose the next experiment's images: `v4compact choose-images --model
          backbone:SPEC --neurons 'mylab:s01/*' --pool candidates/ --count 300 --out next.zip`.
        - Export any session as NWB to share it: `v4compact.export_session("mylab:s01",
          "s01.nwb")`.
        """),
]

NOTEBOOKS: dict[str, list[dict]] = {
    "01_load_data": LOAD_DATA,
    "02_predict_and_evaluate": PREDICT,
    "03_preferred_stimuli": PREFERRED,
    "04_explore_filters": FILTERS,
    "05_in_silico_experiment": EXPERIMENT,
    "06_your_own_recordings": OWN_RECORDINGS,
}


#: Longest one cell may run when the notebooks are executed (seconds).
CELL_TIMEOUT_S = 900


def _dumps(notebook: dict) -> str:
    return json.dumps(notebook, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def notebook_json(name: str, cells: list[dict]) -> str:
    """The ``.ipynb`` text of one notebook: nbformat 4.5, no outputs, stable cell ids."""
    out_cells = []
    for i, cell in enumerate(cells):
        lines = cell["source"].splitlines(keepends=True)
        entry = {"cell_type": cell["cell_type"], "id": f"{name[:2]}-{i:02d}",
                 "metadata": {}, "source": lines}
        if cell["cell_type"] == "code":
            entry.update(execution_count=None, outputs=[])
        out_cells.append(entry)
    notebook = {
        "cells": out_cells,
        "metadata": {
            "colab": {"name": f"{name}.ipynb", "provenance": []},
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return _dumps(notebook)


def without_outputs(text: str) -> str:
    """A notebook's text with what a run adds removed: outputs, execution counts, timings
    and the kernel's language details (so it compares equal to :func:`notebook_json`)."""
    notebook = json.loads(text)
    for cell in notebook["cells"]:
        cell["metadata"] = {}
        if isinstance(cell["source"], str):  # nbformat allows one string or a list of lines
            cell["source"] = cell["source"].splitlines(keepends=True)
        if cell["cell_type"] == "code":
            cell.update(execution_count=None, outputs=[])
    notebook["metadata"]["language_info"] = {"name": "python"}
    return _dumps(notebook)


def is_executed(text: str) -> bool:
    """True when every code cell of the notebook ran, without an error."""
    cells = [c for c in json.loads(text)["cells"] if c["cell_type"] == "code"]
    return all(c["execution_count"] is not None for c in cells) and not any(
        o.get("output_type") == "error" for c in cells for o in c["outputs"])


def execute(text: str) -> str:
    """Run a notebook top to bottom in a fresh kernel and an empty folder; its text with outputs.

    Uses the installed package and the data directory named by ``$V4COMPACT_DATA``.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell failed (named in the message).
    """
    import os
    import tempfile

    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.reads(text, as_version=4)
    os.environ.pop("MPLBACKEND", None)  # figures inline, as a reader sees them
    # tqdm warns in every notebook when the optional ipywidgets is not installed: that is
    # about the build machine, not the tutorial, so the shipped outputs leave it out
    quiet_tqdm = ("--IPKernelApp.exec_lines=['import warnings, tqdm', "
                  "'warnings.simplefilter(\"ignore\", tqdm.TqdmWarning)']")
    with tempfile.TemporaryDirectory() as work:
        NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                       record_timing=False, resources={"metadata": {"path": work}},
                       extra_arguments=[quiet_tqdm]).execute()
    return nbformat.writes(notebook) + "\n"


def build(out_dir: Path | None = None) -> dict[Path, str]:
    """The notebook texts (without outputs), keyed by the path each is written to."""
    folder = Path(out_dir) if out_dir is not None else ROOT / NOTEBOOK_DIR
    return {folder / f"{name}.ipynb": notebook_json(name, cells)
            for name, cells in NOTEBOOKS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="folder to write to (default: notebooks/ of the checkout)")
    parser.add_argument("--execute", action="store_true",
                        help="also run the notebooks whose cells changed or that have no "
                        "outputs, and save their outputs (needs the data)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a notebook differs from this script or "
                        "was not executed")
    args = parser.parse_args(argv)
    stale, unexecuted = [], []
    for path, text in build(args.out).items():
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        fresh = current is not None and without_outputs(current) == text
        executed = fresh and is_executed(current)
        if not fresh:
            stale.append(path)
        if not executed:
            unexecuted.append(path)
        if args.check or executed:
            continue
        if args.execute:
            print(f"executing {path.name}", file=sys.stderr)
            text = execute(text)
        elif fresh:
            continue  # unchanged cells: keep the file as it is
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if args.check and (stale or unexecuted):
        names = ", ".join(p.name for p in dict.fromkeys(stale + unexecuted))
        print(f"stale or unexecuted notebooks: {names}; run python scripts/build_notebooks.py "
              "--execute", file=sys.stderr)
        return 1
    action = "checked" if args.check else "wrote"
    print(f"{action} {len(NOTEBOOKS)} notebooks ({len(stale)} changed, "
          f"{len(unexecuted)} {'executed' if args.execute else 'without outputs'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
