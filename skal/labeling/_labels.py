"""The final label of each sample from a journal's answers (after undo and aggregation, what a
session trains on), and writing those labels to a CSV or JSON file."""

import csv
import json
import os

import numpy as np

from skal.labeling._aggregate import DawidSkene, majority_vote
from skal.labeling._journal import Journal, JournalError, encode_label

AGGREGATIONS = ("majority", "dawid_skene")
EXPORT_FORMATS = (".csv", ".json")


def labels_by_sample(answers, through=None):
    """sample id -> list of (annotator, label) of the live labels, in answer order."""
    out = {}
    for record in answers:
        if through is not None and record["id"] > through:
            break
        if not record["skipped"]:
            out.setdefault(record["sample_id"], []).append((record["annotator"], record["label"]))
    return out


def check_labels(answers, classes, path):
    """Raise JournalError for a live label outside ``classes`` (an edited journal)."""
    known = {encode_label(c) for c in classes}
    for record in answers:
        if record["skipped"]:
            continue
        try:
            text = encode_label(record["label"])
        except TypeError:
            text = None
        if text not in known:
            # Only LabelingSession.label writes answers and it refuses other labels.
            raise JournalError(
                f"The journal {os.fspath(path)!r} is damaged: answer {record['id']} (sample "
                f"{record['sample_id']!r}) holds the label {record['label']!r}, which is not "
                f"one of the classes {list(classes)}. To go on: restore the journal from a "
                "backup, or correct that answer's label with the sqlite3 shell."
            )


def final_labels(answers, classes, aggregate, seed, through=None):
    """One row per labelled sample, in the order samples were first labelled.

    Parameters
    ----------
    answers : list of dict
        Live answers, oldest first (``Journal.answers()``).
    classes : list
        The class set.
    aggregate : {"majority", "dawid_skene"}
        How several annotators' labels become one.
    seed : int
        Breaks majority-vote ties (the session's seed).
    through : int, default=None
        Only answers with an id up to this.

    Returns
    -------
    rows : list of (sample_id, label, n_annotators)
    """
    by_sample = labels_by_sample(answers, through)
    sids = list(by_sample)
    counts = [len(by_sample[s]) for s in sids]  # one live answer per (sample, annotator)
    annotators = sorted({a for labels in by_sample.values() for a, _ in labels})
    if len(annotators) <= 1:
        labels = [by_sample[s][-1][1] for s in sids]
    else:
        code = {encode_label(c): i for i, c in enumerate(classes)}
        column = {a: j for j, a in enumerate(annotators)}
        matrix = np.full((len(sids), len(annotators)), -1, dtype=np.intp)
        for i, s in enumerate(sids):
            for a, label in by_sample[s]:
                matrix[i, column[a]] = code[encode_label(label)]
        codes = np.arange(len(classes))
        if aggregate == "dawid_skene":
            agg = DawidSkene().fit(matrix, classes=codes).labels_
        else:
            agg = majority_vote(matrix, classes=codes, random_state=seed)
        labels = [classes[int(c)] for c in agg]
    return list(zip(sids, labels, counts, strict=True))


def check_export_path(path):
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    if extension not in EXPORT_FORMATS:
        raise ValueError(
            f"Cannot tell the export format of {path!r}: name the file *.csv or *.json."
        )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"The export's directory {directory!r} does not exist.")
    return path, extension


def write_labels(path, rows):
    """Write ``(sample_id, label, n_annotators)`` rows to ``path`` (.csv or .json).

    The file is replaced whole (written beside it, then renamed), so a reader never sees half
    of it. CSV holds the labels as text; JSON keeps ints as numbers.
    """
    path, extension = check_export_path(path)
    partial = f"{path}.partial"
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        if extension == ".csv":
            writer = csv.writer(handle)
            writer.writerow(["sample_id", "label", "n_annotators"])
            writer.writerows(rows)
        else:
            json.dump(
                [{"sample_id": s, "label": label, "n_annotators": n} for s, label, n in rows],
                handle, indent=1,
            )
            handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    return path


def export_journal(journal_path, path, aggregate="majority"):
    """Write the final labels held in a journal, without its pool; return the row count."""
    if aggregate not in AGGREGATIONS:
        raise ValueError(f"aggregate must be one of {AGGREGATIONS}, got {aggregate!r}.")
    check_export_path(path)
    journal_path = os.fspath(journal_path)
    if not os.path.exists(journal_path) or os.path.getsize(journal_path) == 0:
        raise FileNotFoundError(f"There is no journal at {journal_path!r} to export.")
    with Journal(journal_path) as journal, journal.reading():
        meta, answers = journal.meta(), journal.answers()
    if "classes" not in meta or "seed" not in meta:
        raise JournalError(
            f"The journal {journal_path!r} holds no session (its meta data lacks the classes "
            "or the seed): nothing was labelled through it."
        )
    check_labels(answers, meta["classes"], journal_path)
    rows = final_labels(answers, meta["classes"], aggregate, int(meta["seed"]))
    write_labels(path, rows)
    return len(rows)
