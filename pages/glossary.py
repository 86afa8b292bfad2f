"""The app's technical terms, each explained once in a sentence a student can read, and the plain-words
helpers the pages share: a term's hover text (``explain``), a small glossary on a page (``show``), and
numbers said as people say them (``decimal``, ``frozen_words``).

Plain words are on by default: every page that shows a term either puts its explanation in a widget's
``help=`` (a hover "?") or lists it in the page's glossary expander. Define a term here, never in a page.
"""
from __future__ import annotations

from core import config

TERMS = {
    "accuracy": "The share of pictures the model labels correctly.",
    "validation accuracy": "Accuracy on pictures set aside before training: the model never saw them, so this is "
                           "the fair test.",
    "validation share": "The part of your pictures kept aside to test the model, never used to train it.",
    "epoch": "One pass of training over every training picture.",
    "batch size": "How many pictures the model looks at before each small update of its weights.",
    "learning rate": "How big a step the model takes each time it updates its weights. Too big and training "
                     "jumps around; too small and it crawls.",
    "learning-rate finder": "A quick test that trains a few steps with a growing learning rate and watches the "
                            "loss: a good rate is where the loss falls fastest, before it blows up.",
    "loss": "How wrong the model is, as one number: lower is better. Training lowers it step by step.",
    "optimizer": "The rule that turns the loss into weight updates (Adam adapts its steps by itself; SGD with "
                 "momentum is the classic one).",
    "momentum": "Lets SGD keep some of its previous direction, so it rolls through small bumps.",
    "VGG16": "A well-known image network with 16 layers, trained on the 1.2 million ImageNet photos.",
    "ImageNet weights": "What VGG16 learned from ImageNet's photos: edges, textures, shapes. Starting from them "
                        "is the 'transfer' in transfer learning.",
    "block": "VGG16 is built from five blocks; each has a few convolution layers and halves the picture's size.",
    "convolution layer": "A layer that slides small filters over the picture; each filter lights up where it "
                         "finds its pattern (an edge, a stripe, an eye).",
    "filters": "The patterns one convolution layer looks for; 64 filters means 64 different patterns.",
    "frozen blocks": "Blocks that keep the weights they learned on ImageNet and do not change while training.",
    "parameters": "The numbers (weights) inside the model; training changes the ones that are not frozen.",
    "head": "The small part on top of the network that turns its features into your class labels.",
    "feature cache": "The frozen part always gives the same answer for a picture, so that answer is computed once "
                     "and saved: every epoch after the first skips the frozen blocks and is much faster.",
    "features": "The numbers a network computes for a picture on its way to an answer: what it 'sees' in it.",
    "augmentation": "Small random changes (flips, turns, zooms) to each picture every epoch, so the model sees "
                    "more variety.",
    "dropout": "Switches off a random share of the head's inputs while training, so it cannot lean on a few.",
    "early stopping": "Stops training once the validation loss has not improved for a few epochs (the patience).",
    "seed": "A starting number for everything random (the split, the shuffle): the same seed gives the same run.",
    "two-phase fine-tuning": "First train only the head, then unfreeze some blocks and train gently on.",
    "fine-tuning": "Letting pretrained blocks change a little, at a small learning rate, to suit your pictures.",
    "cross-validation": "Split the training pictures into parts; train on all but one part, test on that one, "
                        "and repeat so every picture is tested once by a model that did not see it.",
    "confusion matrix": "A table of true class (rows) against predicted class (columns): the diagonal is right, "
                        "everything else is a mistake.",
    "precision": "Of the pictures the model called this class, the share that really are.",
    "recall": "Of the pictures that really are this class, the share the model found.",
    "F1": "One score mixing precision and recall (their harmonic mean): 1 is perfect, 0 is useless.",
    "average F1 over classes": "The F1 score of each class, averaged with every class counting the same "
                               "(also called macro F1).",
    "feature map": "A map of the pictures' features, squeezed from many numbers down to 2 so they can be drawn "
                   "(a 2-D projection). Pictures the model finds alike land close together.",
    "Grad-CAM": "A heat map of the parts of a picture that pushed the model towards its answer.",
    "autoencoder": "A network that squeezes a picture through a small bottleneck and rebuilds it; it needs "
                   "no labels.",
    "encoder": "The autoencoder's first half, which squeezes the picture; it becomes the frozen base of a "
               "classifier.",
    "reconstruction loss": "How different the rebuilt picture is from the original: the average squared "
                           "difference of the pixels, halved. Lower is better.",
    "linear probe": "A simple straight-line classifier on one block's frozen features: it shows how useful "
                    "those features are on their own.",
    "scratch": "Training the same network from random weights, with nothing transferred.",
}


def explain(term: str) -> str:
    """The one-sentence explanation of ``term`` (a key of TERMS), for a widget's ``help=``."""
    return TERMS[term]


def show(*terms: str, title: str = "Words on this page") -> None:
    """A small collapsed glossary of ``terms`` (keys of TERMS), in the order given."""
    import streamlit as st

    with st.expander(title, icon=":material/menu_book:"):
        st.markdown("\n".join(f"- **{term[:1].upper() + term[1:]}**: {TERMS[term]}" for term in terms))


def decimal(value) -> str:
    """A number as people write it, never in e-notation: 0.0001, not 1.0e-04 (core.config.decimal)."""
    return config.decimal(value)


def frozen_words(depth, blocks: int = 5) -> str:
    """A freeze depth in words: "5 of 5 blocks frozen", "none frozen" (core.config.frozen_words)."""
    return config.frozen_words(depth, blocks)


HEAD_WORDS = {"gap": "average pooling", "seed": "Flatten + Dense 1024", "svm": "SVM",
              "random_forest": "random forest"}   # the config's head names, as a table or a sentence says them
OPTIMIZER_WORDS = {"adam": "Adam", "sgd": "SGD with momentum"}


def head_words(head) -> str:
    return HEAD_WORDS.get(head, str(head))


def optimizer_words(optimizer) -> str:
    return OPTIMIZER_WORDS.get(optimizer, str(optimizer))
