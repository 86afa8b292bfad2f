"""Model page: how to train (Automatic, which compares a few models by cross-validation, or Manual),
the weights, and for Manual how many VGG16 blocks stay frozen (drawn as a diagram with parameter
counts and the feature-cache cut), the head, the optimizer and learning rate (with a range test), and
the rest of the training settings. Settings live in st.session_state["config"]; the manual ones stay
there while Automatic is chosen, so switching back finds them as they were."""
import math

import plotly.graph_objects as go
import streamlit as st

from core import auto, models
from core import config as cfg_module
from core.config import TrainConfig
from pages import common, glossary, weights_panel

KEY = "cfg::"  # widget keys: cfg::<field>
DEFAULTS = TrainConfig()  # widget fallbacks are the config's own defaults
# 1e-6 .. 1, 10 steps per decade: the range test scans up to 1, and the config allows up to 1
LR_GRID = sorted({float(f"{10 ** (k / 10):.2g}") for k in range(-60, 1)})
IMAGE_SIZES = list(range(32, 225, 16))
HEAD_LABELS = {"gap": "Global average pooling + softmax (small, fast)",
               "seed": "Flatten + Dense 1024 + softmax (the seed recipe)",
               "svm": "SVM on frozen features", "random_forest": "Random forest on frozen features"}
RECIPE_LABELS = {"auto": "Automatic (recommended)", "manual": "Manual"}
RECIPE_CAPTIONS = {"auto": "Compares a few models by cross-validation and keeps the best",
                   "manual": "You choose the frozen blocks, head, optimizer, learning rate and epochs"}
FROZEN_COLOUR, TRAINABLE_COLOUR, HEAD_COLOUR = "#9aa9bd", "#f28e2b", "#59a14f"


def snap(value, options):
    """The option nearest to ``value`` (on a log scale for the learning rate)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return options[0]
    if not math.isfinite(value) or value <= 0:
        return options[0]
    return min(options, key=lambda option: abs(math.log(option) - math.log(value)))


def setting(field: str, initial) -> dict:
    """Keyword arguments binding a widget to a config field: its key, seeded from the config the
    first time it is drawn (and again after a page switch, when Streamlit has forgotten the
    widget), and an on_change that stores each new value in the config at once. Callbacks run
    before any page, so a change still in flight when the user switches pages is not lost."""
    key = KEY + field
    if key not in st.session_state:
        st.session_state[key] = initial
    return {"key": key, "on_change": store_setting, "args": (field,)}


def store_setting(field: str) -> None:
    value = st.session_state[KEY + field]
    common.config()[field] = value


def reset_widgets() -> None:
    for key in [k for k in st.session_state if str(k).startswith(KEY)]:
        del st.session_state[key]


def apply_seed_preset() -> None:
    """The seed's recipe (VGG16 frozen, Flatten-Dense1024 head, SGD 1e-4 momentum 0.9, 10 epochs);
    the weights stay as chosen, so an offline server keeps working."""
    values = common.config()
    weights = values.get("weights")
    values.update(cfg_module.SEED_PRESET)
    values["weights"] = weights
    values["preset"] = None
    values["recipe"] = "manual"  # a preset is a manual recipe
    reset_widgets()


def apply_learning_rate(rate: float) -> None:
    common.config()["learning_rate"] = snap(rate, LR_GRID)
    st.session_state[KEY + "learning_rate"] = snap(rate, LR_GRID)


# ---------------------------------------------------------------------- how to train

def recipe_section(values: dict) -> str:
    """The choice between the automatic and the manual recipe; returns the one chosen."""
    st.subheader("How to train")
    recipe_widget = setting("recipe", values.get("recipe") if values.get("recipe") in cfg_module.RECIPES
                            else DEFAULTS.recipe)
    values["recipe"] = st.radio("How to train", list(cfg_module.RECIPES), **recipe_widget, horizontal=True,
                                format_func=RECIPE_LABELS.get, label_visibility="collapsed",
                                captions=[RECIPE_CAPTIONS[recipe] for recipe in cfg_module.RECIPES])
    if values["recipe"] == "manual":
        st.button("Start from the seed recipe", key="seed_preset", on_click=apply_seed_preset,
                  help="VGG16 frozen, a Flatten + Dense(1024) head, SGD with momentum 0.9 at learning rate "
                       "0.0001, 10 epochs (the weights stay as you chose)")
    else:
        blocks = ", ".join(str(block) for block in auto.FEATURE_BLOCKS[:-1]) + f" and {auto.FEATURE_BLOCKS[-1]}"
        st.markdown(
            f"Your training pictures go once through VGG16 with every block frozen. Linear classifiers on the "
            f"averaged features of blocks {blocks} are compared (and fine-tuning block 5 as well, when every "
            f"class has at least {auto.FINE_TUNE_MIN_PER_CLASS} training pictures), each scored by "
            "cross-validation on the training pictures only, and the best one becomes your model. With fewer "
            f"than {auto.FEW_PER_CLASS} pictures a class, every picture trains the final model and the accuracy "
            "shown comes from cross-validated predictions instead of a held-out validation share.")
    return values["recipe"]


def auto_settings_section(values: dict) -> None:
    """The few settings the automatic recipe reads besides the weights."""
    st.subheader("Pictures and validation")
    size, share, seed = st.columns(3)
    image_size_setting(size, values)
    validation_share_setting(share, values)
    seed_setting(seed, values)


# ---------------------------------------------------------------------- the diagram

def freeze_diagram(summary: dict, image_size: int) -> go.Figure:
    """VGG16's five conv blocks and the head as boxes, frozen ones grey, trainable ones orange,
    with parameter counts, and a dashed line where the feature cache cuts."""
    figure = go.Figure()
    boxes = [(f"block {b['block']}", f"{b['convs']} convolution layers,<br>{b['filters']} filters", b["params"],
              b["frozen"]) for b in summary["blocks"]]
    boxes.append(("head", HEAD_LABELS.get(summary["head"]["name"], summary["head"]["name"]).split(" (")[0]
                  .replace(" + softmax", ""), summary["head"]["params"], None))
    for index, (title, detail, params, frozen) in enumerate(boxes):
        colour = HEAD_COLOUR if frozen is None else FROZEN_COLOUR if frozen else TRAINABLE_COLOUR
        state = "trainable" if frozen is None else "frozen" if frozen else "trainable"
        x0, x1 = index * 1.2, index * 1.2 + 1.0
        figure.add_shape(type="rect", x0=x0, x1=x1, y0=0, y1=1, fillcolor=colour, line=dict(color="#333", width=1),
                         layer="below")
        figure.add_trace(go.Scatter(
            x=[(x0 + x1) / 2] * 4, y=[0.85, 0.6, 0.34, 0.13], mode="text", showlegend=False, hoverinfo="skip",
            text=[f"<b>{title}</b>", detail if len(detail) < 40 else detail[:36] + "...",
                  f"{params / 1e6:.2f} million parameters" if params >= 10_000 else f"{params:,} parameters",
                  state],
            textfont=dict(size=11, color="#111")))
    depth = sum(1 for b in summary["blocks"] if b["frozen"])
    if summary.get("cache_cut"):
        x = depth * 1.2 - 0.1
        figure.add_shape(type="line", x0=x, x1=x, y0=-0.25, y1=1.25, line=dict(color="#c0392b", width=3, dash="dash"))
        figure.add_annotation(x=x, y=1.32, showarrow=False, font=dict(color="#c0392b", size=12),
                              text=cache_words(summary))
    figure.add_annotation(x=-0.15, y=0.5, showarrow=False, text=f"input<br>{image_size}x{image_size}",
                          xanchor="right", font=dict(size=11))
    figure.update_xaxes(visible=False, range=[-1.0, len(boxes) * 1.2])
    figure.update_yaxes(visible=False, range=[-0.35, 1.45])
    figure.update_layout(height=230, margin=dict(l=0, r=0, t=10, b=0), plot_bgcolor="white")
    return figure


def cache_words(summary: dict) -> str:
    """The feature cache in words, numbers second: "features saved here once per picture (64 KB: 16x16x128)"."""
    shape = "x".join(str(v) for v in summary["cache_shape"])
    return (f"the frozen part's output is saved here once per picture "
            f"({summary['cache_bytes_per_image'] / 1024:.0f} KB each: {shape} numbers)")


def architecture_section(values: dict, n_classes: int) -> None:
    st.subheader("How much of VGG16 stays frozen")
    st.caption("VGG16 has five blocks of convolutions. Frozen blocks keep their weights; trainable ones learn "
               "from your pictures. With nothing random below the frozen part, its output is computed once and "
               "cached, so every epoch after the first costs almost nothing.")
    depth_widget = setting("freeze_depth", _int_in(values.get("freeze_depth"), 0, 5, DEFAULTS.freeze_depth))
    values["freeze_depth"] = st.slider("Frozen blocks", 0, 5, **depth_widget,
                                       help=f"{glossary.explain('frozen blocks')} 0: every block trains; "
                                            "5: only the head trains.")
    st.caption(f"Now: {glossary.frozen_words(values['freeze_depth'])}.")
    head_widget = setting("head", values.get("head") if values.get("head") in cfg_module.HEADS else DEFAULTS.head)
    values["head"] = st.selectbox("Head (what sits on top of block 5)", list(cfg_module.HEADS), **head_widget,
                                  format_func=lambda h: HEAD_LABELS.get(h, h), help=glossary.explain("head"))
    shown_depth = 5 if values["head"] in cfg_module.CLASSICAL_HEADS else values["freeze_depth"]
    # the image-size widget is drawn further down: read its newest value, not last run's config
    image_size = int(st.session_state.get(KEY + "image_size",
                                          snap(values.get("image_size", DEFAULTS.image_size), IMAGE_SIZES)))
    summary = models.freeze_summary(shown_depth, image_size, n_classes, values["head"])
    st.plotly_chart(freeze_diagram(summary, image_size), width="stretch",
                    key="freeze_diagram", config={"displayModeBar": False, "staticPlot": True})
    frozen, trainable, cache = st.columns(3)
    frozen.metric("Frozen parameters", f"{summary['frozen_params']:,}", help=glossary.explain("parameters"))
    trainable.metric("Trainable parameters", f"{summary['trainable_params']:,}",
                     help=glossary.explain("parameters"))
    if summary["cache_cut"]:
        shape = "x".join(str(v) for v in summary["cache_shape"])
        cache.metric("Saved features per picture (feature cache)", f"{summary['cache_bytes_per_image'] / 1024:.0f} KB",
                     help=f"{glossary.explain('feature cache')} Saved after {summary['cache_cut']}: {shape} "
                          "numbers per picture, each in 2 bytes.")
    else:
        cache.metric("Saved features (feature cache)", "off",
                     help="Nothing is frozen, so every block changes while training and nothing can be saved.")
    if values["head"] in cfg_module.CLASSICAL_HEADS:
        st.info("The SVM and random-forest heads always use the fully frozen network (freeze depth 5).")


def optimizer_section(values: dict) -> None:
    st.subheader("Optimizer and learning rate")
    left, right = st.columns(2)
    optimizer_widget = setting("optimizer", values.get("optimizer") if values.get("optimizer") in cfg_module.OPTIMIZERS
                               else DEFAULTS.optimizer)
    values["optimizer"] = left.radio("Optimizer", list(cfg_module.OPTIMIZERS), **optimizer_widget, horizontal=True,
                                     format_func={"adam": "Adam", "sgd": "SGD with momentum"}.get,
                                     help=glossary.explain("optimizer"))
    if values["optimizer"] == "sgd":
        momentum = float(values.get("momentum", DEFAULTS.momentum) or DEFAULTS.momentum)
        momentum_widget = setting("momentum", min(max(momentum, 0.0), 0.99))
        values["momentum"] = right.slider("Momentum", 0.0, 0.99, step=0.01, **momentum_widget,
                                          help=glossary.explain("momentum"))
    lr_widget = setting("learning_rate", snap(values.get("learning_rate", DEFAULTS.learning_rate), LR_GRID))
    values["learning_rate"] = st.select_slider("Learning rate (10 marks to the right: 10 times larger)",
                                               LR_GRID, **lr_widget, format_func=glossary.decimal,
                                               help=glossary.explain("learning rate"))


def training_section(values: dict) -> None:
    st.subheader("Training")
    a, b, c = st.columns(3)
    epochs_widget = setting("epochs", _int_in(values.get("epochs"), 1, 1000, DEFAULTS.epochs))
    values["epochs"] = a.number_input("Epochs", 1, 1000, step=1, **epochs_widget, help=glossary.explain("epoch"))
    batch_widget = setting("batch_size", _int_in(values.get("batch_size"), 1, 1024, DEFAULTS.batch_size))
    values["batch_size"] = b.number_input("Batch size", 1, 1024, step=1, **batch_widget,
                                          help=glossary.explain("batch size"))
    image_size_setting(c, values)
    augment_widget = setting("augment", bool(values.get("augment", DEFAULTS.augment)))
    values["augment"] = st.checkbox("Augmentation (random flips, rotations, zooms)", **augment_widget,
                                    help=glossary.explain("augmentation"))
    if values["augment"]:
        st.caption("Augmentation changes every picture every epoch, so the feature cache is turned off: "
                   "the frozen blocks run every epoch (much slower on a CPU).")
    two_phase_widget = setting("two_phase", bool(values.get("two_phase", DEFAULTS.two_phase)))
    values["two_phase"] = st.checkbox("Two-phase fine-tuning: first the head with everything frozen, then unfreeze "
                                      "down to the frozen blocks chosen above at a tenth of the learning rate",
                                      **two_phase_widget,
                                    help=glossary.explain("two-phase fine-tuning"))
    if values["two_phase"]:
        head_epochs_widget = setting("head_epochs", _int_in(values.get("head_epochs"), 1, 1000, DEFAULTS.head_epochs))
        values["head_epochs"] = st.number_input("Epochs of the head-only phase", 1, 1000, step=1, **head_epochs_widget)
        if int(values["freeze_depth"]) >= 5:
            st.caption("With all five blocks frozen there is nothing to unfreeze: lower the freeze depth for a "
                       "second phase.")
    with st.expander("More settings"):
        x, y, z = st.columns(3)
        validation_share_setting(x, values)
        dropout_widget = setting("dropout", min(max(float(values.get("dropout") or 0.0), 0.0), 0.9))
        values["dropout"] = y.slider("Dropout (pooling head)", 0.0, 0.9, step=0.05, **dropout_widget,
                                     help=glossary.explain("dropout"))
        seed_setting(z, values)
        stop_widget = setting("early_stopping", bool(values.get("early_stopping", DEFAULTS.early_stopping)))
        values["early_stopping"] = x.checkbox("Early stopping", **stop_widget, help=glossary.explain("early stopping"))
        patience_widget = setting("patience", _int_in(values.get("patience"), 1, 100, DEFAULTS.patience))
        values["patience"] = y.number_input("Patience (epochs)", 1, 100, step=1, **patience_widget)
        cache_widget = setting("cache_features", bool(values.get("cache_features", DEFAULTS.cache_features)))
        values["cache_features"] = z.checkbox("Save the frozen part's features (feature cache)", **cache_widget,
                                              help=glossary.explain("feature cache"))


# The three settings both recipes read, drawn by one function each so both layouts bind the same widget.

def image_size_setting(container, values: dict) -> None:
    size_widget = setting("image_size", snap(values.get("image_size", DEFAULTS.image_size), IMAGE_SIZES))
    values["image_size"] = container.select_slider("Image size (pixels)", IMAGE_SIZES, **size_widget,
                                                   help="Pictures are resized to this square; larger is slower.")


def validation_share_setting(container, values: dict) -> None:
    share = float(values.get("validation_fraction") or DEFAULTS.validation_fraction)
    val_widget = setting("validation_fraction", min(max(share, 0.05), 0.5))
    values["validation_fraction"] = container.slider(
        "Validation share", 0.05, 0.5, step=0.05, **val_widget,
        help=f"{glossary.explain('validation share')} Automatic training holds none out when a class has "
             f"fewer than {auto.FEW_PER_CLASS} pictures: cross-validation measures it instead.")


def seed_setting(container, values: dict) -> None:
    seed_widget = setting("seed", _int_in(values.get("seed"), 0, 2**31 - 1, DEFAULTS.seed))
    values["seed"] = container.number_input("Seed", 0, 2**31 - 1, step=1, **seed_widget, help=glossary.explain("seed"))


def _int_in(value, low, high, default):
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number if low <= number <= high else default


# ---------------------------------------------------------------------- the learning-rate finder

@st.cache_data(show_spinner=False, max_entries=32)
def learning_rate_test(dataset_path: str, settings_json: str, steps: int, _progress=None) -> dict:
    """The range test for these settings on this dataset; cached per dataset and settings."""
    from core import lr_finder

    config = TrainConfig.from_json(settings_json)
    dataset = common.load_dataset(dataset_path, config.image_size)
    return lr_finder.find_learning_rate(config, dataset, steps=steps, progress=_progress)


def lr_finder_section(values: dict, weights_ready: bool) -> None:
    st.subheader("Learning-rate finder")
    st.caption("A short test: train for a few steps while the learning rate rises from 0.000001 to 1; the "
               "loss falls, then blows up. A good rate sits where it falls fastest.",
               help=glossary.explain("learning-rate finder"))
    info = common.current_dataset()
    config, problems = common.validate_config(values)
    steps = common._env_int(common.LR_STEPS_ENV, 100, 10, 1000)
    if st.button("Find a learning rate", key="lr_find", disabled=not info or bool(problems) or not weights_ready):
        settings = config.to_json()
        with st.status("Running the learning-rate test...", expanded=True) as status:
            bar = st.progress(0.0, text="Preparing the model...")
            result = learning_rate_test(info["path"], settings, steps,
                                        _progress=lambda f, m: bar.progress(min(max(float(f), 0.0), 1.0),
                                                                            text=common.plain(m, 120)))
            status.update(label="Learning-rate test finished", state="complete", expanded=False)
        st.session_state["lr_result"] = {"dataset": info["id"], "settings": settings, "result": result}
    if not info:
        st.caption("Pick a dataset on the Data page first.")
    elif not weights_ready:  # the test trains the chosen weights too
        st.caption("The test needs the chosen weights, which are not on this server: see **Weights** above.")
    found = st.session_state.get("lr_result")
    if not found:
        return
    result = found["result"]
    figure, clipped = finder_figure(result)
    common.show_chart(figure, key="lr_curve")
    if clipped:
        st.caption("The loss axis is cut off above a few times the starting loss: the blow-up at the largest "
                   "rates goes off the top, so the useful part (where the loss falls) stays readable.")
    suggested = snap(result["suggested"], LR_GRID)
    st.button(f"Use the suggested learning rate {glossary.decimal(suggested)}", key="lr_apply",
              on_click=apply_learning_rate, args=(result["suggested"],))


FINDER_TOP = 3.0  # the finder's loss axis ends at this many times the starting loss (or the highest loss below it)


def finder_range(losses: list) -> tuple[list[float], bool]:
    """The finder plot's loss axis, [bottom, top], and whether a spike was cut off: from just below the lowest
    loss to FINDER_TOP times the starting loss (the starting loss is the mean of the first few, which are
    noisy), so a blow-up at the largest rates does not flatten the part that matters."""
    finite = [float(v) for v in losses if isinstance(v, (int, float)) and math.isfinite(v)]
    if not finite:
        return [0.0, 1.0], False
    start = sum(finite[:3]) / len(finite[:3])
    low, high = min(finite), max(finite)
    top = max(FINDER_TOP * start, low * 1.5) if start > 0 else high
    clipped = high > top
    top = top if clipped else high
    pad = 0.05 * (top - low or 1.0)
    return [max(0.0, low - pad), top + pad], clipped


def finder_figure(result: dict) -> tuple[go.Figure, bool]:
    """The learning-rate finder's loss against the rate (log scale), the suggestion dashed, the loss axis
    clipped by ``finder_range``. Returns (figure, clipped)."""
    figure = go.Figure(go.Scatter(x=result["learning_rates"], y=result["losses"], mode="lines", name="loss"))
    figure.add_vline(x=result["suggested"], line_dash="dash", line_color="#c0392b")
    y_range, clipped = finder_range(result["losses"])
    figure.update_xaxes(type="log", title_text="learning rate")
    figure.update_yaxes(title_text="training loss" + (" (axis cut off above)" if clipped else ""), range=y_range)
    figure.update_layout(height=300, margin=dict(l=10, r=10, t=40, b=10),
                         title="Loss while the learning rate rises (the dashed line is the suggestion)")
    return figure, clipped


# ---------------------------------------------------------------------- page

def main() -> None:
    st.title("Model")
    values = common.config()
    info = common.current_dataset()
    n_classes = max(2, len(info["classes"])) if info else 4
    st.caption("Choose what to train. Every change is kept for the Train page. Point at a ? to see what a "
               "word means, or open the glossary at the bottom.")
    recipe = recipe_section(values)
    weights = weights_panel.section()
    if recipe == "auto":
        auto_settings_section(values)
    else:
        architecture_section(values, n_classes)
        optimizer_section(values)
        training_section(values)
        advice = cfg_module.learning_rate_advice(values)
        if advice:
            st.warning(advice)
    st.session_state["config"] = values
    weights_panel.remember()
    _, problems = common.validate_config(values)
    if problems:
        common.show_config_problems(problems)
    elif not weights.ready:
        st.warning(f"These settings are valid, but a run would fail: the weights chosen are not on this server "
                   f"(see **Weights** above). {common.plain(common.settings_summary(values), 400)}.")
    else:
        st.success(f"These settings are valid. {common.plain(common.settings_summary(values), 400)}. "
                   "Start training on the **Train** page.")
    if recipe == "manual":
        lr_finder_section(values, weights.ready)
        glossary.show("VGG16", "block", "convolution layer", "filters", "frozen blocks", "parameters", "head",
                      "feature cache", "optimizer", "learning rate", "learning-rate finder", "loss", "epoch",
                      "batch size", "augmentation", "two-phase fine-tuning", "validation share", "seed")
    else:
        glossary.show("VGG16", "ImageNet weights", "cross-validation", "validation share", "seed", "head",
                      "fine-tuning")


common.run_page(main)
