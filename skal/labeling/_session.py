"""LabelingSession: a person (or several) labels a pool while a learner picks the rows, and
every answer is journalled durably before it is acknowledged."""

import hashlib
import numbers
import os
import time
import warnings
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.base import clone

from skal.labeling._journal import (
    READABLE_VERSIONS,
    Journal,
    JournalError,
    PoolMismatchError,
    encode_label,
    pool_fingerprint,
)
from skal.labeling._labels import (
    AGGREGATIONS,
    check_labels,
    final_labels,
    labels_by_sample,
    write_labels,
)
from skal.labeling._synthetic import RoundSynthesizer, SyntheticSamples, check_synthesizer
from skal.labeling._validation import (
    check_annotator,
    check_batch_size,
    check_bool,
    check_classes,
    check_journal_path,
    check_learner,
    check_positive_int,
    check_sample_ids,
    check_seed,
    check_timeout,
)
from skal.learners._base import default_estimator, seed_estimator
from skal.stopping._criteria import advice_on_unlabelled, fresh_criteria
from skal.strategies._base import num_rows, take_rows

Query = namedtuple("Query", ["sample_id", "round", "strategy", "score"])
Query.__doc__ = """One sample proposed to an annotator: its id, the round, and why it was chosen.

``strategy`` names what proposed it (the learner's query strategy, the synthesizer's name
such as ``"GAAL"`` for a synthesised sample, ``"random"`` while the labelled set holds fewer
than two classes, ``"disagreement"`` or ``"redundancy"`` for samples asked again); ``score``
is the value it was chosen by (``None`` without one).
"""

_META_KEYS = {"schema_version", "fingerprint", "n_samples", "classes", "seed"}


def _encoded(label):
    """JSON text of a label, or None for a value no class can have."""
    try:
        return encode_label(label)
    except TypeError:
        return None


class UnknownSampleError(KeyError):
    """A sample id that is not in the session's pool."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


def _round_seed(seed, train_pos, train_y, candidates):
    """The seed of one round's draws, from the session seed and what the round is computed
    from (the labelled rows, their labels and the candidates), never from when it is computed.

    So every round draws afresh (one seed for all rounds replayed the same stream: the same
    tie-breaks, and random picks next to the last round's), while an interrupted session, or
    a batch computed ahead, proposes exactly what an uninterrupted one would.
    """
    digest = hashlib.sha256()
    for rows in (train_pos, candidates):
        digest.update(np.ascontiguousarray(rows, dtype=np.int64).tobytes())
        digest.update(b"\x00")
    digest.update("\x00".join(encode_label(y) for y in train_y).encode())
    words = np.frombuffer(digest.digest()[:16], dtype=np.uint32)
    return int(np.random.SeedSequence([seed, *words.tolist()]).generate_state(1)[0])


def _seed_round(estimator, round_seed):
    """Seed every ``random_state`` parameter of a fresh clone for one round.

    One left at None gets the round's seed; an int the user chose is mixed with it, so it
    still decides the draws but a fresh clone does not replay that int's stream every round.
    """
    params = {}
    for key, value in estimator.get_params(deep=True).items():
        if not (key == "random_state" or key.endswith("__random_state")):
            continue
        if value is None:
            params[key] = round_seed
        elif isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_):
            sequence = np.random.SeedSequence([int(value), round_seed])
            params[key] = int(sequence.generate_state(1)[0])
    return estimator.set_params(**params) if params else estimator


def _propose(learner, X_pool, ids, train_pos, train_y, candidates, batch_size, seed,
             synthetic, synthesizer=None):
    """Pick ``batch_size`` of the ``candidates`` positions: the pure core of a query round.

    Returns ``(sample_ids, scores, strategy_name, made)``, where ``made`` maps the ids of
    newly synthesised samples to their features' JSON text (empty unless ``synthesizer``
    proposes the round). Runs in the query-ahead thread, so it touches nothing but its
    arguments.
    """
    k = min(batch_size, candidates.size)
    if k == 0:
        return [], [], "none", {}
    round_seed = _round_seed(seed, train_pos, train_y, candidates)
    if np.unique(np.asarray(train_y, dtype=object).astype(str)).size < 2:
        rng = np.random.RandomState(round_seed)
        picked = rng.choice(candidates.size, size=k, replace=False)
        return [ids[p] for p in candidates[picked]], [None] * k, "random", {}
    model = _seed_round(clone(learner), round_seed)
    model.fit(synthetic.rows(X_pool, train_pos), np.asarray(train_y))
    if synthesizer is not None:
        made_ids, made_scores, made = synthesizer.propose(model, k, round_seed)
        return made_ids, made_scores, synthesizer.name, made
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        picked, scores = model.query(take_rows(X_pool, candidates), k, return_scores=True)
    strategy = type(model.query_strategy_).__name__
    score_list = [None] * k if scores is None else [float(s) for s in scores]
    return [ids[p] for p in candidates[picked]], score_list, strategy, {}


class LabelingSession:
    """Label a pool by hand, with the learner choosing the rows and a crash-safe journal.

    Every answer (a label or a skip) is committed to a SQLite journal (WAL mode,
    ``synchronous=FULL``) before :meth:`label` returns, together with the annotator, the time,
    the round, and the strategy and score that proposed the sample. Opening an existing
    journal rebuilds the labelled set and the query history from it, so a session killed at
    any moment resumes where it stopped; it also works for several processes (annotators)
    sharing one journal. The journal holds plain data only: resuming runs no pickled code.

    Parameters
    ----------
    learner : estimator
        An unfitted :class:`~skal.ActiveLearner` (or ``CommitteeLearner``), or a plain
        classifier, which is wrapped in ``ActiveLearner``. It is cloned and refitted on the
        labelled rows each round. Each round's ``random_state`` parameters are seeded from
        the session's seed and what the round is computed from (the labelled rows, their
        labels and the candidates; an int you set is mixed in), so rounds draw afresh and a
        resumed session proposes exactly the rows an uninterrupted one would.
    X_pool : array-like, sparse matrix or DataFrame of shape (n_samples, n_features)
        All rows that may be labelled. A dask array or DataFrame stays on its cluster: each
        round scores it where it lives (strategies that take dask pools) and fetches only
        the labelled rows to refit the learner.
    journal : str or path-like
        The journal file; created when missing, resumed when present.
    classes : sequence of str or int
        The label set, at least two unique labels, all strings or all ints (``None``, NaN,
        floats and bools are refused: they compare equal to other labels or stand for a
        skip); any other label is refused by :meth:`label`.
    sample_ids : sequence of str or int, default=None
        Stable ids of the pool's rows (unique; stored as text). ``None`` uses the row numbers
        ``"0"``, ``"1"``, ...; give real ids if the pool's order may change between runs.
    annotator : str, default="annotator"
        Who answers through this session (a non-empty name); :meth:`label` may name another.
    batch_size : int or None, default=None
        Rows per round, a positive int; ``None`` uses the learner's ``batch_size``.
    query_ahead : bool, default=False
        Compute round t+1 in a background thread while round t is being labelled, from the
        labels known when round t was handed out, so the person never waits for a refit.
    aggregate : {"majority", "dawid_skene"}, default="majority"
        How several annotators' labels of one sample become the training label.
    requery_disagreements : bool, default=False
        Before new samples, offer the annotator samples whose labels disagree and that they
        have not labelled.
    labels_per_sample : int, default=1
        Before new samples, offer samples labelled by fewer annotators than this (>= 1).
    random_state : non-negative int or None, default=None
        The session's seed. ``None`` draws one when the journal is created and stores it, so
        a resumed session uses the same seed; an int must match the stored one.
    timeout : float, default=30.0
        Seconds to wait for another process's write lock on the journal.
    synthesizer : object with ``synthesize``, default=None
        Query synthesis, e.g. :class:`~skal.strategies.GAAL`: once two classes are
        labelled, every round asks about new rows it synthesises near the model's decision
        boundary instead of pool rows. The pool must be a numeric array. Each synthesised
        sample gets the id ``"synth-"`` + a hash of its features, which the journal stores
        with the round that proposed it (plain JSON numbers), so a resumed session shows and
        trains on it; :meth:`features` returns its row. It joins the labelled set like any
        answered row; the pool is not changed. The synthesizer's generator is fitted once,
        on the whole pool, seeded from the session's seed when its ``random_state`` is None.

    Attributes
    ----------
    fingerprint_ : str
        SHA-256 of the pool's ids and data, stored in the journal.
    classes_ : list
        The class set.
    seed_ : int
        The session's seed.

    Raises
    ------
    TypeError, ValueError
        A parameter of the wrong type or value (checked before the journal is opened, so no
        file is created), an empty pool, duplicate ids, or a class set that differs from the
        journal's.
    PoolMismatchError
        The journal was written for another pool.
    JournalError
        The journal cannot be created or written (read-only path, disk full, not a journal).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from skal.labeling import LabelingSession
    >>> X = np.random.RandomState(0).normal(size=(50, 2))
    >>> path = os.path.join(tempfile.mkdtemp(), "journal.sqlite")
    >>> with LabelingSession(None, X, path, classes=[0, 1], batch_size=2,
    ...                      random_state=0) as session:
    ...     for query in session.next_batch():
    ...         _ = session.label(query.sample_id, int(X[int(query.sample_id), 0] > 0))
    ...     session.n_labels_
    2
    """

    def __init__(
        self,
        learner,
        X_pool,
        journal,
        *,
        classes,
        sample_ids=None,
        annotator="annotator",
        batch_size=None,
        query_ahead=False,
        aggregate="majority",
        requery_disagreements=False,
        labels_per_sample=1,
        random_state=None,
        timeout=30.0,
        synthesizer=None,
    ):
        # Every parameter is checked before the journal is opened, so a mistake creates no file.
        journal = check_journal_path(journal)
        n = num_rows(X_pool)
        if n == 0:
            raise ValueError("The pool is empty (0 rows): there is nothing to label.")
        sample_ids = check_sample_ids(sample_ids, n)
        classes = check_classes(classes)
        if aggregate not in AGGREGATIONS:
            raise ValueError(
                f"aggregate must be one of {AGGREGATIONS}, got {aggregate!r}; 'majority' is "
                "the default."
            )
        learner = check_learner(learner)
        if getattr(learner, "budget", None) is not None:
            learner = clone(learner).set_params(budget=None)
        self.learner = learner
        self.X_pool = X_pool
        self.sample_ids = sample_ids
        self.annotator = check_annotator(annotator)
        self.batch_size = check_batch_size(batch_size, learner)
        self.query_ahead = check_bool(query_ahead, "query_ahead")
        self.aggregate = aggregate
        self.requery_disagreements = check_bool(requery_disagreements, "requery_disagreements")
        self.labels_per_sample = check_positive_int(labels_per_sample, "labels_per_sample")
        random_state = check_seed(random_state)
        timeout = check_timeout(timeout)
        self.synthesizer = synthesizer
        synthesizer = check_synthesizer(synthesizer, X_pool)
        self._pool_position = {sid: i for i, sid in enumerate(sample_ids)}
        self._position = self._pool_position
        self.fingerprint_ = pool_fingerprint(sample_ids, X_pool)
        self._executor = None
        self._ahead = None
        self._model = None
        self._model_key = None
        self._stop_criteria = None
        self._stop_checked = self._stop_reason = None
        self.journal = Journal(journal, timeout=timeout)
        try:
            self._init_meta(classes, random_state, n)
            self._synthesizer = (
                None if synthesizer is None
                else RoundSynthesizer(synthesizer, X_pool, self.seed_)
            )
            self._reload()
            if self.query_ahead:
                self._resume_ahead()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ setup
    def _init_meta(self, classes, random_state, n):
        seed = (
            int(np.random.SeedSequence().generate_state(1)[0])
            if random_state is None
            else int(random_state)
        )
        meta = self.journal.check_or_set_meta(
            {
                # A new journal is version 1 until it records a synthesised sample.
                "schema_version": READABLE_VERSIONS[0],
                "fingerprint": self.fingerprint_,
                "n_samples": n,
                "classes": classes,
                "seed": seed,
                "created": time.time(),
            }
        )
        missing = _META_KEYS - meta.keys()
        if missing:
            raise JournalError(
                f"The journal {self.journal.path!r} is damaged: its meta data lacks "
                f"{sorted(missing)}. To go on: restore the journal from a backup."
            )
        if meta.get("schema_version") not in READABLE_VERSIONS:
            raise JournalError(
                f"Journal {self.journal.path!r} has schema version "
                f"{meta.get('schema_version')!r}; this skal reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}."
            )
        if meta["fingerprint"] != self.fingerprint_:
            raise PoolMismatchError(
                f"Journal {self.journal.path!r} was written for another pool ({meta['n_samples']}"
                f" rows, fingerprint {meta['fingerprint'][:12]}...) than this one ({n} rows, "
                f"fingerprint {self.fingerprint_[:12]}...). Use the original pool (same ids, "
                "same order, same values) or a new journal file."
            )
        if [encode_label(c) for c in meta["classes"]] != [encode_label(c) for c in classes]:
            raise ValueError(
                f"classes={classes} differ from the journal's classes {meta['classes']}."
            )
        if random_state is not None and int(random_state) != meta["seed"]:
            raise ValueError(
                f"random_state={random_state} differs from the journal's seed {meta['seed']}; "
                "pass random_state=None to resume with the stored seed."
            )
        self.classes_ = meta["classes"]
        self.seed_ = int(meta["seed"])
        self._class_by_text = {encode_label(c): c for c in self.classes_}

    # ------------------------------------------------------------------ state from the journal
    def _reload(self):
        """Rebuild every in-memory view from the journal (the single source of truth)."""
        # The version is read before the snapshot: a commit in between only costs one more
        # reload later. The views come from one snapshot, so they agree with each other even
        # while other processes write (a round never names an answer the session has not seen).
        self._version = self.journal.data_version()
        with self.journal.reading():
            self._answers = self.journal.answers()
            self._rounds = self.journal.rounds()
            self._max_answer_id = self.journal.max_answer_id()
            self._synthetic = SyntheticSamples(self.journal.synthetic(), len(self.sample_ids))
        self._position = {**self._pool_position, **self._synthetic.position}
        for record in self._answers:
            if record["sample_id"] not in self._position:
                raise PoolMismatchError(
                    f"Journal {self.journal.path!r} holds sample id {record['sample_id']!r}, "
                    "which is not in this pool."
                )
        check_labels(self._answers, self.classes_, self.journal.path)

    def _sync(self):
        if self.journal.data_version() != self._version:
            self._reload()

    def _labels_by_sample(self, through=None):
        """sample id -> list of (annotator, label) of live labels, in answer order."""
        return labels_by_sample(self._answers, through)

    def _answered(self, through=None):
        return {
            r["sample_id"] for r in self._answers if through is None or r["id"] <= through
        }

    def _final_labels(self, through=None):
        return final_labels(self._answers, self.classes_, self.aggregate, self.seed_, through)

    def _training_set(self, through=None):
        """Positions and aggregated labels of the labelled samples, in first-label order."""
        rows = self._final_labels(through)
        positions = np.array([self._position[sid] for sid, _, _ in rows], dtype=np.intp)
        return positions, [label for _, label, _ in rows]

    # ------------------------------------------------------------------ public state
    @property
    def n_labels_(self):
        """Number of samples with at least one live label."""
        self._sync()
        return len(self._labels_by_sample())

    def labels(self):
        """The training label of every labelled sample, aggregated across annotators.

        Returns
        -------
        labels : dict
            sample id -> label, in the order samples were first labelled.
        """
        self._sync()
        return {sid: label for sid, label, _ in self._final_labels()}

    def features(self, sample_id):
        """The row of a sample: a pool row, or a synthesised sample's features.

        Parameters
        ----------
        sample_id : str or int

        Returns
        -------
        row : array-like
            The pool's row as the pool holds it; for a synthesised sample a float64 array
            of the pool rows' shape.

        Raises
        ------
        UnknownSampleError
            ``sample_id`` is neither in the pool nor a synthesised sample of the journal.
        """
        self._sync()
        position = self._position[self._check_sample(sample_id)]
        if position >= len(self.sample_ids):
            return self._synthetic.features[position - len(self.sample_ids)]
        return take_rows(self.X_pool, [position])[0]

    def export(self, path):
        """Write the final labels to a CSV or JSON file (the format from its extension).

        One row (CSV) or object (JSON) per labelled sample, in the order samples were first
        labelled: ``sample_id``, ``label`` (after undo and aggregation, the label the session
        trains on, as :meth:`labels` gives it) and ``n_annotators`` (how many annotators
        labelled it; skips do not count). ``skal label --export FILE`` writes the same file.

        Parameters
        ----------
        path : str or path-like
            Ends in ``.csv`` or ``.json``; replaced whole if it exists.

        Returns
        -------
        path : str
        """
        self._sync()
        return write_labels(path, self._final_labels())

    def annotations(self):
        """Every live answer as a list of dicts (``id``, ``sample_id``, ``label``,
        ``skipped``, ``annotator``, ``time``, ``round``, ``strategy``, ``score``)."""
        self._sync()
        return [dict(r) for r in self._answers]

    @property
    def history_(self):
        """The query rounds: one dict per round with ``round``, ``time``, ``annotator``,
        ``strategy``, ``trained_through`` (the last answer id the proposing model saw),
        ``issued_after`` (the last answer id when it was handed out), ``sample_ids`` and
        ``scores``."""
        return [dict(r) for r in self._rounds]

    @property
    def picked_by(self):
        """Which strategy and model pick the samples, e.g.
        ``"MarginSampling on LogisticRegression(max_iter=1000)"`` (at random while the
        labelled set holds fewer than two classes)."""
        learner = self.learner
        strategy = getattr(learner, "query_strategy", None)
        if strategy is None and hasattr(learner, "_default_strategy"):
            strategy = learner._default_strategy()
        strategy = getattr(strategy, "__name__", type(strategy).__name__)
        estimator = getattr(learner, "estimator", None)
        estimator = default_estimator() if estimator is None else estimator
        if type(learner).__name__ != "ActiveLearner":
            return f"{strategy} on a {type(learner).__name__} of {estimator!r}"
        return f"{strategy} on {estimator!r}"

    @property
    def learner_(self):
        """The learner refitted on every live label (refitted lazily when labels change)."""
        self._sync()
        key = self._max_answer_id, len(self._answers)
        if self._model is None or self._model_key != key:
            positions, labels = self._training_set()
            if len({encode_label(v) for v in labels}) < 2:
                raise ValueError(
                    "The labelled set holds fewer than two classes; label more samples before "
                    "asking for a model."
                )
            model = seed_estimator(clone(self.learner), self.seed_, overwrite=False)
            self._model = model.fit(
                self._synthetic.rows(self.X_pool, positions), np.asarray(labels)
            )
            self._model_key = key
        return self._model

    def should_stop(self):
        """Do the learner's stopping criteria say more labels are unlikely to help?

        The criteria are the learner's ``stopping`` parameter (see :mod:`skal.stopping`). They
        are asked once per change of the labels, about the model refitted on every live
        label and the samples without one; the session keeps their state (a resumed
        session starts it afresh). The person labelling may go on: this is advice.

        Returns
        -------
        reason : str or None
            ``"<criterion>: <why>"``, or ``None`` to go on (always, without criteria or
            before two classes are labelled).
        """
        criteria = getattr(self.learner, "stopping", None)
        if not criteria:
            return None
        try:
            model = self.learner_
        except ValueError:  # fewer than two classes labelled: no model to judge
            return None
        if self._stop_checked == self._model_key:
            return self._stop_reason
        if self._stop_criteria is None:
            self._stop_criteria = fresh_criteria(criteria)
        positions, _ = self._training_set()
        self._stop_checked = self._model_key
        self._stop_reason = advice_on_unlabelled(self._stop_criteria, model, self.X_pool,
                                                 positions)
        return self._stop_reason

    # ------------------------------------------------------------------ queries
    def pending(self):
        """The queries of this annotator's latest round that they have not answered yet."""
        self._sync()
        mine = [r for r in self._rounds if r["annotator"] == self.annotator]
        if not mine:
            return []
        last = mine[-1]
        requery = self.requery_disagreements or self.labels_per_sample > 1
        # Without re-querying, a sample someone else answered meanwhile is no longer pending.
        done = {
            r["sample_id"]
            for r in self._answers
            if r["annotator"] == self.annotator or not requery
        }
        return [
            Query(sid, last["round"], last["strategy"], score)
            for sid, score in zip(last["sample_ids"], last["scores"], strict=True)
            if sid not in done
        ]

    def next_batch(self, exclude=None):
        """The samples this annotator should label now, most informative first.

        Unanswered queries of the current round come first; when there are none a new round
        is proposed and journalled. An empty list means the pool is exhausted (or, with
        ``exclude``, that every sample left is excluded).

        Parameters
        ----------
        exclude : iterable of str or int, default=None
            Pool ids not to hand out now, e.g. the samples other annotators are looking at
            (the web app passes them). They are left out of the pending queries returned,
            of the samples asked again and of a new round; the journal's rounds are not
            changed, so an excluded pending query comes back once it is no longer excluded.

        Returns
        -------
        queries : list of Query

        Raises
        ------
        TypeError
            ``exclude`` is not an iterable of ids.
        UnknownSampleError
            ``exclude`` holds an id that is not in the pool.
        """
        excluded = self._check_exclude(exclude)
        pending = [q for q in self.pending() if q.sample_id not in excluded]
        if pending:
            return pending
        requeries = [e for e in self._requery_candidates() if e[0] not in excluded]
        # From the snapshot the round is computed from, not a later read: resuming recomputes
        # from "every answer up to issued_after", which must be what this session saw.
        issued_after = self._max_answer_id
        result = None
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            sids, scores, strategy, made, trained_through = ahead.result()
            # Another annotator may have answered (or be holding) some of them meanwhile.
            answered = self._answered() | excluded
            keep = [(s, c) for s, c in zip(sids, scores, strict=True) if s not in answered]
            if keep:
                result = ([s for s, _ in keep], [c for _, c in keep], strategy, made,
                          trained_through)
        if result is None:
            result = self._compute(issued_after, excluded)
        sids, scores, strategy, made, trained_through = result
        # Samples asked again (disagreement, redundancy) go first, then new ones.
        entries = requeries[: self.batch_size]
        again = {e[0] for e in entries}
        entries += [(s, c, strategy) for s, c in zip(sids, scores, strict=True) if s not in again]
        entries = entries[: self.batch_size]
        if not entries:
            return []
        names = {e[2] for e in entries}
        round_strategy = "+".join(sorted(names)) if len(names) > 1 else entries[0][2]
        number = self.journal.add_round(
            self.annotator,
            round_strategy,
            trained_through,
            issued_after,
            [e[0] for e in entries],
            [e[1] for e in entries],
            synthetic={e[0]: made[e[0]] for e in entries if e[0] in made},
        )
        self._reload()
        if self.query_ahead:
            self._start_ahead(issued_after, [e[0] for e in entries])
        return [Query(sid, number, name, score) for sid, score, name in entries]

    def _check_exclude(self, exclude):
        if exclude is None:
            return set()
        if isinstance(exclude, str | bytes) or not hasattr(exclude, "__iter__"):
            raise TypeError(
                f"exclude must be an iterable of sample ids (or None), got {exclude!r}."
            )
        excluded = set()
        for sample_id in exclude:
            if not isinstance(sample_id, str | numbers.Integral) or isinstance(sample_id, bool):
                raise TypeError(
                    f"exclude must hold str or int sample ids, got {sample_id!r} of type "
                    f"{type(sample_id).__name__}."
                )
            if str(sample_id) not in self._position:
                raise UnknownSampleError(
                    f"exclude holds {sample_id!r}, which is not in this session's pool of "
                    f"{len(self.sample_ids)} rows."
                )
            excluded.add(str(sample_id))
        return excluded

    def _requery_candidates(self):
        if not (self.requery_disagreements or self.labels_per_sample > 1):
            return []
        by_sample = self._labels_by_sample()
        mine = {r["sample_id"] for r in self._answers if r["annotator"] == self.annotator}
        disagree, redundant = [], []
        for sid, labels in by_sample.items():
            if sid in mine:
                continue
            texts = [encode_label(label) for _, label in labels]
            counts = np.unique(texts, return_counts=True)[1]
            share = 1.0 - counts.max() / counts.sum()
            if self.requery_disagreements and share > 0:
                disagree.append((sid, float(share), "disagreement"))
            elif len({a for a, _ in labels}) < self.labels_per_sample:
                redundant.append((sid, None, "redundancy"))
        disagree.sort(key=lambda e: -e[1])
        return disagree + redundant

    def _snapshot(self, through, extra_excluded=()):
        positions, labels = self._training_set(through)
        excluded = self._answered(through) | set(extra_excluded)
        candidates = np.array(
            [i for i, sid in enumerate(self.sample_ids) if sid not in excluded], dtype=np.intp
        )
        return positions, labels, candidates

    def _compute(self, through, extra_excluded=()):
        positions, labels, candidates = self._snapshot(through, extra_excluded)
        # A serial round excludes everything answered so far, not only up to ``through``.
        answered = self._answered()
        candidates = np.array(
            [p for p in candidates if self.sample_ids[p] not in answered], dtype=np.intp
        )
        return (*self._propose(positions, labels, candidates, self._synthetic), through)

    def _propose(self, positions, labels, candidates, synthetic):
        return _propose(
            self.learner, self.X_pool, self.sample_ids, positions, labels, candidates,
            self.batch_size, self.seed_, synthetic, self._synthesizer,
        )

    def _start_ahead(self, through, batch_ids):
        positions, labels, candidates = self._snapshot(through, batch_ids)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skal-ahead")
        synthetic = self._synthetic  # the snapshot the positions refer to

        def job():
            return (*self._propose(positions, labels, candidates, synthetic), through)

        self._ahead = self._executor.submit(job)

    def _resume_ahead(self):
        mine = [r for r in self._rounds if r["annotator"] == self.annotator]
        if mine:
            last = mine[-1]
            self._start_ahead(last["issued_after"], last["sample_ids"])

    # ------------------------------------------------------------------ answers
    def _check_sample(self, sample_id):
        sid = str(sample_id)
        if sid not in self._position:
            raise UnknownSampleError(
                f"Unknown sample id {sample_id!r}: it is not in this session's pool of "
                f"{len(self.sample_ids)} rows."
            )
        return sid

    def _query_context(self, sid, annotator):
        for r in reversed(self._rounds):
            if r["annotator"] == annotator and sid in r["sample_ids"]:
                pos = r["sample_ids"].index(sid)
                return r["round"], r["strategy"], r["scores"][pos]
        return None, None, None

    def label(self, sample_id, label, annotator=None):
        """Record ``label`` for a sample; return the answer's id once it is durably committed.

        Parameters
        ----------
        sample_id : str or int
            A pool id (any sample, not only queried ones).
        label : object
            One of ``classes``.
        annotator : str, default=None
            Who gave it; ``None`` means the session's annotator.

        Returns
        -------
        answer_id : int

        Raises
        ------
        UnknownSampleError
            ``sample_id`` is not in the pool (a ``KeyError``).
        ValueError
            ``label`` is not one of the classes.
        AlreadyAnsweredError
            The annotator already answered this sample (undo it first).
        JournalError
            The journal could not be written; the label was not recorded.
        """
        sid = self._check_sample(sample_id)
        text = _encoded(label)
        if text not in self._class_by_text:
            raise ValueError(f"Label {label!r} is not one of the classes {self.classes_}.")
        return self._answer(sid, self._class_by_text[text], annotator, skipped=False)

    def skip(self, sample_id, annotator=None):
        """Record that the annotator could not label a sample; it is not proposed again.

        Returns
        -------
        answer_id : int
        """
        return self._answer(self._check_sample(sample_id), None, annotator, skipped=True)

    def _answer(self, sid, label, annotator, skipped):
        annotator = self.annotator if annotator is None else check_annotator(annotator)
        self._sync()
        number, strategy, score = self._query_context(sid, annotator)
        answer_id = self.journal.add_answer(
            sid, label, annotator, skipped=skipped, round=number, strategy=strategy, score=score
        )
        self._reload()
        return answer_id

    def undo(self, annotator=None):
        """Withdraw the annotator's most recent answer (label or skip).

        The sample becomes unanswered again and, if it was in their current round, is proposed
        again by :meth:`next_batch`.

        Returns
        -------
        sample_id : str or None
            The sample whose answer was withdrawn; ``None`` when there was nothing to undo.
        """
        annotator = self.annotator if annotator is None else check_annotator(annotator)
        undone = self.journal.undo_last(annotator)
        self._reload()
        return None if undone is None else undone["sample_id"]

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path):
        """Save the current model with joblib (a pickle), for a fast restart of a large model.

        Resuming never needs it: the journal alone rebuilds the session. Loading a pickle runs
        code, so load checkpoints only from files you wrote yourself (see
        :func:`load_checkpoint`). For skorch networks, the estimator's ``save_params`` writes
        the weights alone, which is safer to exchange.
        """
        import joblib

        model = self.learner_
        # The model's own key, so "trained_through" names the answers it was fitted on.
        joblib.dump(
            {"fingerprint": self.fingerprint_, "trained_through": self._model_key[0],
             "model": model},
            path,
        )
        return path

    # ------------------------------------------------------------------ lifecycle
    def close(self):
        """Stop the query-ahead thread and close the journal. Every answer is already saved."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._ahead = None
        if getattr(self, "journal", None) is not None:
            self.journal.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load_checkpoint(path, *, trusted=False, session=None):
    """Load a model saved by :meth:`LabelingSession.save_checkpoint`.

    Parameters
    ----------
    path : str or path-like
    trusted : bool, default=False
        Must be True: a checkpoint is a pickle, and unpickling a file from someone else can
        run arbitrary code. Set it only for files you wrote yourself.
    session : LabelingSession, default=None
        When given, check that the checkpoint was saved for the same pool.

    Returns
    -------
    model : estimator
    """
    if not trusted:
        raise ValueError(
            "Checkpoints are pickles and loading one can run arbitrary code; pass "
            "trusted=True only for a file you saved yourself. The journal alone is enough to "
            "resume a session."
        )
    import joblib

    if not os.path.exists(path):
        raise FileNotFoundError(f"No checkpoint at {os.fspath(path)!r}.")
    content = joblib.load(path)
    if session is not None and content["fingerprint"] != session.fingerprint_:
        raise PoolMismatchError("The checkpoint was saved for another pool.")
    return content["model"]
