"""The learning-rate finder's suggestion (core.lr_finder.suggest) on a range test's loss curve of known shape:
the rate where the smoothed loss falls fastest, below the rate of the lowest loss; not the lowest loss itself,
not the first rate tried (the Model page's test can only see that some rate came back)."""
import numpy as np

from core import lr_finder

RATES = np.geomspace(1e-6, 1.0, 100)  # the finder's own range and steps


def range_test_losses(rates):
    """Flat at first, falling fastest at 1e-3 (from about 3 to about 1), lowest near 1e-1, then blowing up."""
    x = np.log10(rates)
    return 2.0 - np.tanh((x + 3) / 0.5) + np.where(x > -1, 10 * (x + 1) ** 2, 0.0)


def test_the_suggestion_is_where_the_smoothed_loss_falls_fastest():
    losses = range_test_losses(RATES)
    suggested = lr_finder.suggest(RATES, losses)
    lowest = RATES[np.argmin(losses)]
    assert 0.05 < lowest < 0.2
    # the raw curve falls fastest at 1e-3; smoothing (10 % a step, 16.5 steps a decade) makes the smoothed
    # curve lag by about 9 steps, about half a decade: the suggestion is between the two, well below lowest
    assert 1e-3 <= suggested <= 1e-2, suggested
    assert suggested <= lowest / 10


def test_a_loss_that_diverges_to_nan_or_inf_changes_nothing_before_it():
    losses = range_test_losses(RATES)
    diverged = losses.copy()
    diverged[-8:] = [np.inf, np.nan] * 4
    assert lr_finder.suggest(RATES, diverged) == lr_finder.suggest(RATES, losses)


def test_too_few_finite_losses_give_the_first_rate():
    losses = np.full(len(RATES), np.nan)
    losses[:4] = [3.0, 2.0, 1.0, 0.5]
    assert lr_finder.suggest(RATES, losses) == RATES[0]


def test_the_finder_answers_the_suggestion_of_its_own_curve(demo_dir):
    from core import ingest
    from core.config import TrainConfig

    dataset = ingest.load_labeled(demo_dir, 32)
    config = TrainConfig.from_dict({"weights": "none", "image_size": 32, "epochs": 1, "batch_size": 8, "seed": 1,
                                    "recipe": "manual", "freeze_depth": 5})
    result = lr_finder.find_learning_rate(config, dataset, steps=20)
    assert result["suggested"] == lr_finder.suggest(result["learning_rates"], result["losses"])
