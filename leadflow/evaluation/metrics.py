"""How well a score ranks the contacts that converted above those that did not.

Plain numpy over whole arrays (one element per contact), no loop over contacts. Every function
takes `scores` (float) and `converted` (bool) of the same length.
"""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TOP_SHARE = 0.1  # the top decile


def base_rate(converted: np.ndarray) -> float:
    """The share of contacts that converted."""
    return float(np.mean(converted)) if len(converted) else float("nan")


def roc_auc(scores: np.ndarray, converted: np.ndarray) -> float:
    """The probability that a converted contact scores above one that did not, a tie counting
    half (Mann–Whitney U over average ranks). NaN when either class is empty."""
    converted = np.asarray(converted, bool)
    positives = int(converted.sum())
    negatives = len(converted) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    # The average rank (1-based) of each distinct value: tied values share it.
    upper = np.cumsum(counts)
    average_rank = upper - (counts - 1) / 2.0
    rank_sum = float(average_rank[inverse][converted].sum())
    u = rank_sum - positives * (positives + 1) / 2.0
    return u / (positives * negatives)


def roc_curve(scores: np.ndarray, converted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rates, true positive rates) of every threshold, from (0, 0) to (1, 1):
    one point per distinct score, highest first (tied contacts enter together)."""
    converted = np.asarray(converted, bool)
    positives = max(int(converted.sum()), 1)
    negatives = max(len(converted) - int(converted.sum()), 1)
    values, inverse = np.unique(-np.asarray(scores, float), return_inverse=True)
    true_by_value = np.bincount(inverse, weights=converted, minlength=len(values))
    all_by_value = np.bincount(inverse, minlength=len(values))
    tp = np.concatenate([[0.0], np.cumsum(true_by_value)])
    fp = np.concatenate([[0.0], np.cumsum(all_by_value - true_by_value)])
    return fp / negatives, tp / positives


def top_decile_lift(scores: np.ndarray, converted: np.ndarray) -> float:
    """The conversion rate of the top 10 % by score over the base rate.

    The top decile holds exactly `0.1 × contacts` contacts (a fraction of one allowed):
    everyone scoring above the boundary value counts whole, and the contacts tied at the
    boundary value count for the share of them that fits (each tied contact weighs
    `places left / contacts tied`), so ties never inflate or shrink the decile and the
    result does not depend on the order of tied contacts."""
    converted = np.asarray(converted, bool)
    scores = np.asarray(scores, float)
    rate = base_rate(converted)
    if len(scores) == 0 or rate == 0:
        return float("nan")
    size = TOP_SHARE * len(scores)
    boundary = np.sort(scores)[::-1][int(np.ceil(size)) - 1]
    above = scores > boundary
    tied = scores == boundary
    places_left = size - int(above.sum())
    weight = places_left / int(tied.sum())
    top_converted = int(converted[above].sum()) + weight * int(converted[tied].sum())
    return (top_converted / size) / rate


def band_rates(
    bands: pa.Array | pa.ChunkedArray, converted: np.ndarray, labels: list[str]
) -> list[dict[str, object]]:
    """Contacts, conversions and rate per band, in the configured order `labels` (a band
    nobody is in has rate None); contacts in no band (a score below every threshold) last,
    as label None, if any."""
    converted = np.asarray(converted, bool)
    rows = []
    for label in [*labels, None]:
        match = pc.is_null(bands) if label is None else pc.fill_null(pc.equal(bands, label), False)
        inside = np.asarray(match.to_numpy(zero_copy_only=False), bool)
        contacts = int(inside.sum())
        if label is None and contacts == 0:
            continue
        hits = int(converted[inside].sum())
        rows.append(
            {
                "label": label,
                "contacts": contacts,
                "converted": hits,
                "rate": hits / contacts if contacts else None,
            }
        )
    return rows
